"""The quality score of a finished run (seed 003): five components out of 100, a grade, and
prioritised suggestions. Pure: no Django, no I/O. docs/analysis.md has the tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .points import Point, canonical, finite, has_nonfinite_loss
from .stats import median, slope
from .trends import best_step, detect_overfitting, detect_spikes, find_divergence
from .wording import fmt, plural

Priority = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Suggestion:
    category: str  # convergence, overfitting, underfitting, efficiency, stability
    priority: Priority
    text: str


@dataclass(frozen=True)
class QualityScore:
    score: int  # 0-100, the sum of the components
    components: dict[str, int]
    grade: str
    suggestions: list[Suggestion]
    # The figures the components were scored on (None where they could not be measured).
    measurements: dict[str, float | None] = field(default_factory=dict)


COMPONENT_MAX = {"loss_reduction": 30, "convergence": 25, "stability": 20, "overfitting_gap": 15, "efficiency": 10}
GRADES = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# Convergence: the training loss's fitted change over the last CONVERGENCE_TAIL of its logged
# points, relative to its level, within +-CONVERGENCE_TOL (and at least CONVERGENCE_MIN_POINTS).
CONVERGENCE_TAIL = 0.2
CONVERGENCE_TOL = 0.05
CONVERGENCE_MIN_POINTS = 5


def quality_score(points: Iterable[Point], *, total_steps: int | None, duration_seconds: float | None,
                  tokens: float | None, initial_loss: float | None, final_train_loss: float | None,
                  final_eval_loss: float | None, perplexity_base: float | None = None,
                  perplexity_trained: float | None = None) -> QualityScore:
    """Score a finished run out of 100 (seed 003's five factors) with prioritised suggestions.

    A component whose inputs are missing or not finite scores 0 and says so in a suggestion;
    nothing here raises on NaN. docs/analysis.md has the tables.
    """
    canon = canonical(points)
    suggestions: list[Suggestion] = []
    measurements: dict[str, float | None] = {}
    components = {
        "loss_reduction": _score_loss_reduction(initial_loss, final_train_loss, suggestions, measurements),
        "convergence": _score_convergence(canon, suggestions, measurements),
        "stability": _score_stability(canon, suggestions, measurements),
        "overfitting_gap": _score_overfitting(canon, final_train_loss, final_eval_loss, total_steps,
                                              suggestions, measurements),
        "efficiency": _score_efficiency(canon, tokens, duration_seconds, suggestions, measurements),
    }
    _perplexity_suggestion(perplexity_base, perplexity_trained, suggestions, measurements)
    score = sum(components.values())
    grade = next(g for floor, g in GRADES if score >= floor)
    suggestions.sort(key=lambda s: PRIORITY_ORDER[s.priority])
    return QualityScore(score, components, grade, suggestions, measurements)


def _score_loss_reduction(initial: float | None, final: float | None, out: list[Suggestion],
                          measured: dict[str, float | None]) -> int:
    """Seed 003: >80% reduction 30, >60% 25, >40% 20, >20% 10, otherwise 5 — here 5 needs some
    reduction (> 0) and a loss that did not fall at all scores 0."""
    if not (finite(initial) and finite(final)) or initial <= 0:
        measured["loss_reduction"] = None
        out.append(Suggestion("stability", "high", (
            f"The initial or final training loss is missing or not finite ({initial} -> {final}); "
            "check the run for divergence and lower the learning rate if it blew up.")))
        return 0
    reduction = (initial - final) / initial
    measured["loss_reduction"] = reduction
    points = next((p for floor, p in ((0.8, 30), (0.6, 25), (0.4, 20), (0.2, 10), (0.0, 5)) if reduction > floor), 0)
    if points <= 10:
        out.append(Suggestion("underfitting", "high" if points <= 5 else "medium", (
            f"Training loss fell only {reduction:.0%} ({fmt(initial)} -> {fmt(final)}); try a "
            "higher learning rate (about 2x), more epochs, or a larger LoRA rank.")))
    return points


def _score_convergence(canon: Sequence[Point], out: list[Suggestion], measured: dict[str, float | None]) -> int:
    """Seed 003: converged 25, not converged 10; converged means the fitted change of the
    training loss over its last 20% of logged points is within +-5% of its level."""
    measured["final_trend"] = None
    if any(has_nonfinite_loss(p) for p in canon):
        out.append(Suggestion("convergence", "high", "The loss curve contains NaN or infinite values; "
                              "the run did not converge. Lower the learning rate and clip gradients."))
        return 0
    train = [(p.step, p.train_loss) for p in canon if finite(p.train_loss)]
    if len(train) < CONVERGENCE_MIN_POINTS:
        out.append(Suggestion("convergence", "low", f"Only {len(train)} training losses were logged, too "
                              "few to judge convergence; log more often (logging_steps)."))
        return 10
    tail = train[-max(CONVERGENCE_MIN_POINTS, math.ceil(CONVERGENCE_TAIL * len(train))):]
    steps, losses = [float(s) for s, _ in tail], [v for _, v in tail]
    level = abs(sum(losses) / len(losses))
    change = slope(steps, losses) * (steps[-1] - steps[0]) / level if level > 0 else 0.0
    measured["final_trend"] = change
    if -CONVERGENCE_TOL <= change <= CONVERGENCE_TOL:
        return 25
    if change < 0:
        out.append(Suggestion("convergence", "medium", (
            f"Training loss was still falling at the end ({change:.0%} over the last "
            f"{len(tail)} logged points); train more epochs or steps.")))
    else:
        out.append(Suggestion("stability", "high", (
            f"Training loss rose {change:.0%} over the last {len(tail)} logged points; lower the "
            "learning rate or shorten the schedule.")))
    return 10


def _score_stability(canon: Sequence[Point], out: list[Suggestion], measured: dict[str, float | None]) -> int:
    """Seed 003 scores gradient stability 20/5; our points carry the loss, so: diverged (NaN/inf
    or growth, see find_divergence) 0, otherwise 20 less 5 per loss spike, at least 5."""
    diverged = find_divergence(canon)
    spikes = detect_spikes(canon)
    measured["spikes"] = float(len(spikes))
    if diverged is not None:
        out.append(Suggestion("stability", "high", f"Training diverged ({diverged.reason}); lower the "
                              "learning rate (about half), clip gradients, and lengthen warmup."))
        return 0
    if spikes:
        priority: Priority = "low" if len(spikes) == 1 else ("medium" if len(spikes) <= 3 else "high")
        shown = ", ".join(str(s) for s in spikes[:5]) + (", ..." if len(spikes) > 5 else "")
        out.append(Suggestion("stability", priority, (
            f"{plural(len(spikes), 'loss spike')} (step {shown}); lower the learning rate, clip "
            "gradients (max_grad_norm=1.0), or lengthen warmup.")))
    return 20 - 5 * min(3, len(spikes))


def _score_overfitting(canon: Sequence[Point], final_train: float | None, final_eval: float | None,
                       total_steps: int | None, out: list[Suggestion],
                       measured: dict[str, float | None]) -> int:
    """Seed 003: relative gap (eval - train) / train below 10% 15, below 30% 10, otherwise 0."""
    onset = detect_overfitting(canon)
    best = best_step(canon)
    if onset is not None and best is not None:
        out.append(Suggestion("overfitting", "high", (
            f"Held-out loss started rising around step {onset} while training loss kept falling; "
            f"use the checkpoint at step {best[0]} (held-out loss {fmt(best[1])}).")))
        if total_steps and best[0] * 2 <= total_steps:
            out.append(Suggestion("efficiency", "medium", (
                f"The best checkpoint came at step {best[0]} of {total_steps}; about half the "
                "epochs (or early stopping) would give the same adapter for less.")))
    if not (finite(final_train) and finite(final_eval)) or final_train <= 0:
        measured["overfitting_gap"] = None
        out.append(Suggestion("overfitting", "medium", (
            "No finite final held-out loss to compare with training loss; keep an evaluation "
            "split so overfitting can be measured.")))
        return 0
    gap = (final_eval - final_train) / final_train
    measured["overfitting_gap"] = gap
    if gap < 0.10:
        return 15
    out.append(Suggestion("overfitting", "medium" if gap < 0.30 else "high", (
        f"Held-out loss is {gap:.0%} above training loss ({fmt(final_eval)} vs {fmt(final_train)}); "
        "train fewer epochs, add data, or raise lora_dropout (e.g. 0.1).")))
    return 10 if gap < 0.30 else 0


def _score_efficiency(canon: Sequence[Point], tokens: float | None, duration: float | None,
                      out: list[Suggestion], measured: dict[str, float | None]) -> int:
    """How much of the wall time trained at the loop's own speed: utilisation = (tokens /
    duration_seconds) / median reported tokens_per_second. >=85% 10, >=70% 7, >=50% 5, else 3
    (seed 003's 10/7/3 tiers, on a measure our inputs support)."""
    speeds = [p.tokens_per_second for p in canon if finite(p.tokens_per_second) and p.tokens_per_second > 0]
    if not (finite(tokens) and finite(duration)) or tokens <= 0 or duration <= 0 or not speeds:
        measured["utilisation"] = None
        out.append(Suggestion("efficiency", "low", "Efficiency could not be measured: the run needs "
                              "tokens trained, its duration and reported tokens_per_second."))
        return 0
    utilisation = min(1.0, (tokens / duration) / median(speeds))
    measured["utilisation"] = utilisation
    points = next(p for floor, p in ((0.85, 10), (0.70, 7), (0.50, 5), (0.0, 3)) if utilisation >= floor)
    if points < 10:
        out.append(Suggestion("efficiency", "medium" if points <= 5 else "low", (
            f"Only {utilisation:.0%} of the wall time trained at the loop's speed; evaluate less "
            "often, check data loading, and check for interruptions or stalls.")))
    return points


def _perplexity_suggestion(base: float | None, trained: float | None, out: list[Suggestion],
                           measured: dict[str, float | None]) -> None:
    """Not scored (seed 003 has no perplexity factor), but an adapter that does not beat the
    base model on held-out perplexity is the most important thing to say."""
    if not (finite(base) and finite(trained)) or base <= 0:
        measured["perplexity_change"] = None
        return
    change = (trained - base) / base
    measured["perplexity_change"] = change
    if change >= 0:
        out.append(Suggestion("underfitting", "high", (
            f"The adapter did not lower held-out perplexity ({fmt(base)} -> {fmt(trained)}); check "
            "the data matches the task, and try a higher learning rate or more epochs.")))
