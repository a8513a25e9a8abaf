"""The recommendation: continue, stop early, or stop and use an earlier checkpoint, with the
reason in words; from a whole history (`recommend`) or from the incremental state
(`recommend_from_state`, and `trend_summary`, the analysis as the API and dashboard show it).
Once a job has ended, `final_verdict` replaces the advice: what the run achieved (held-out
loss and perplexity before → after), where it was cancelled and what was saved, or why it
failed. Pure: no Django, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from core import humanize

from .points import Point, canonical
from .trend_state import TrendState
from .trends import best_step, detect_overfitting, eval_records, find_divergence, last_improvement
from .wording import fmt, plural

Action = Literal["continue", "stop_early", "use_checkpoint"]


@dataclass(frozen=True)
class Recommendation:
    action: Action
    checkpoint_step: int | None
    reason: str


@dataclass(frozen=True)
class Evidence:
    """What the recommendation rules look at, however it was gathered (a whole history, or the
    incremental state). `divergence` is (step, reason) of the first sign of divergence; `best`
    and `best_before_divergence` are (step, held-out loss)."""

    divergence: tuple[int, str] | None = None
    best_before_divergence: tuple[int, float] | None = None
    best: tuple[int, float] | None = None
    last_eval_step: int | None = None
    overfitting_onset: int | None = None
    improvement_step: int | None = None
    evaluations_since_improvement: int = 0


def advise(e: Evidence, *, patience: int = 5, min_delta: float = 0.0) -> Recommendation:
    """Continue, stop early, or stop and use an earlier checkpoint — with the reason in words.

    In order: a divergence stops the run (back to the best checkpoint before it, if any); an
    overfitting window, or `patience` evaluations without an improvement by more than min_delta,
    stop it at the best held-out step (or keep the latest when that is the best). The checkpoint
    named is the evaluation step; the caller checks a checkpoint was saved there.
    """
    if e.divergence is not None:
        reason = e.divergence[1]
        if e.best_before_divergence is None:
            return Recommendation("stop_early", None, f"Training diverged: {reason}; "
                                  "there is no earlier evaluated checkpoint to fall back to.")
        step, loss = e.best_before_divergence
        return Recommendation("use_checkpoint", step, f"Training diverged: {reason}; "
                              f"use the checkpoint at step {step} (held-out loss {fmt(loss)}).")
    if e.best is None or e.last_eval_step is None:
        return Recommendation("continue", None, "No held-out evaluation yet; nothing suggests stopping.")
    (best, best_loss), last_eval = e.best, e.last_eval_step
    if e.overfitting_onset is not None and best < last_eval:
        return Recommendation("use_checkpoint", best, (
            f"Held-out loss has been rising since about step {e.overfitting_onset} while training loss keeps "
            f"falling (overfitting); use the checkpoint at step {best} (best {fmt(best_loss)})."))
    since = e.evaluations_since_improvement
    if since >= patience:
        by = f" by more than {min_delta:g}" if min_delta > 0 else ""
        stale = f"Held-out loss has not improved{by} for {plural(since, 'evaluation')} since step {e.improvement_step}"
        if best < last_eval:
            return Recommendation("use_checkpoint", best,
                                  f"{stale} (best {fmt(best_loss)}); use the checkpoint at step {best}.")
        return Recommendation("stop_early", None,
                              f"{stale}; the latest evaluation (step {best}, {fmt(best_loss)}) "
                              "is the best, so stop and keep the final adapter.")
    if since == 0:
        return Recommendation("continue", None,
                              f"Held-out loss is still improving (latest best {fmt(best_loss)} at step {best}).")
    return Recommendation("continue", None, (
        f"Held-out loss last improved at step {e.improvement_step} "
        f"({plural(since, 'evaluation')} ago, best {fmt(best_loss)}); "
        f"waiting up to {plural(patience, 'evaluation')} before stopping."))


def recommend(points: Iterable[Point], *, patience: int = 5, min_delta: float = 0.0,
              overfit_window: int = 5, min_rel_rise: float = 0.01,
              divergence_factor: float = 3.0, divergence_window: int = 10) -> Recommendation:
    """advise() on the evidence of a whole history."""
    canon = canonical(points)
    diverged = find_divergence(canon, divergence_factor, divergence_window)
    if diverged is not None:
        return advise(Evidence(divergence=(diverged.step, diverged.reason),
                               best_before_divergence=best_step(p for p in canon if p.step < diverged.step)))
    records = eval_records(canon)
    improvement = last_improvement(canon, min_delta)
    return advise(Evidence(
        best=best_step(canon),
        last_eval_step=records[-1].step if records else None,
        overfitting_onset=detect_overfitting(canon, overfit_window, min_rel_rise=min_rel_rise),
        improvement_step=improvement.step if improvement else None,
        evaluations_since_improvement=improvement.evaluations_since if improvement else 0,
    ), patience=patience, min_delta=min_delta)


def recommend_from_state(state: TrendState) -> Recommendation:
    """advise() on the evidence kept in the incremental state, without the history.

    Updated as each metrics batch is folded in (update_trend_state), so the API and the
    dashboard answer without reading the history. It sees the analysed (settled) points, so it
    trails the newest by TrendConfig.settle_points; once the run has ended (final=True) it is
    recommend() of the whole history with patience=config.patience (property-tested).
    """
    s = state
    if s.divergence_step is not None:
        before = (None if s.best_before_divergence_step is None or s.best_before_divergence_loss is None
                  else (s.best_before_divergence_step, s.best_before_divergence_loss))
        return advise(Evidence(divergence=(s.divergence_step, s.divergence_reason or "see the divergence event"),
                               best_before_divergence=before))
    return advise(Evidence(
        best=None if s.record_best_step is None or s.record_best_loss is None else (s.record_best_step,
                                                                                    s.record_best_loss),
        last_eval_step=s.eval_window[-1].step if s.eval_window else None,
        overfitting_onset=s.overfitting_onset,
        improvement_step=s.improvement_step,
        evaluations_since_improvement=s.evaluations_since_improvement,
    ), patience=s.config.patience, min_delta=s.config.min_delta)


def trend_summary(state: TrendState) -> dict[str, Any]:
    """The analysis as the metrics API and the dashboard show it (JSON-safe)."""
    advice = recommend_from_state(state)
    steps_since = (state.max_step - state.improvement_step
                   if state.max_step is not None and state.improvement_step is not None else None)
    return {
        "best_step": state.best_step,
        "best_eval_loss": state.best_eval_loss if state.best_eval_loss is None or math.isfinite(
            state.best_eval_loss) else None,
        "latest_step": state.max_step,
        "analysed_through_step": state.settled_step,
        "steps_since_improvement": steps_since,
        "evaluations_since_improvement": state.evaluations_since_improvement,
        "diverged_at_step": state.divergence_step,
        "overfitting_since_step": state.overfitting_onset,
        "plateau": "plateau" in state.reported,
        "recommendation": {"action": advice.action, "checkpoint_step": advice.checkpoint_step,
                           "reason": advice.reason},
    }


# --- The final verdict of a finished job -------------------------------------------------------

Ending = Literal["completed", "failed", "cancelled"]
VerdictKind = Literal["improved", "worse", "unchanged", "finished", "cancelled", "failed"]
ERROR_CHARS = 300  # the dashboard and the terminal show the start; the error panel has all of it


@dataclass(frozen=True)
class Outcome:
    """What a finished job left behind, as its final verdict needs it (gathered by
    monitoring.services.job_outcome). Perplexities are the validation step's (token-weighted
    over the held-out set's assistant tokens, base model and trained adapter); `eval_loss`
    and `eval_step` are the Trainer's last periodic evaluation, used only without them."""

    ending: Ending
    stage: str = ""  # where it ended, in words ("Training"); "" when it never started one
    step: int | None = None
    total_steps: int | None = None
    checkpoint_step: int | None = None
    perplexity_base: float | None = None
    perplexity_trained: float | None = None
    eval_loss: float | None = None
    eval_step: int | None = None
    heldout_samples: int | None = None  # what the validation perplexity was measured on
    heldout_tokens: int | None = None
    error: str = ""
    error_type: str = ""
    suggested_fix: str = ""
    advice: Recommendation | None = None  # the analyser's last advice, for a run that overfitted or diverged
    # cancelled: the worker has not yet reported how it stopped (it checkpoints its last completed
    # step on SIGTERM), so `checkpoint_step` may still move; job_outcome decides when it has.
    worker_stopping: bool = False

    @property
    def loss_base(self) -> float | None:
        """The base model's held-out loss: the log of its perplexity (mean NLL per token)."""
        return _log(self.perplexity_base)

    @property
    def loss_trained(self) -> float | None:
        return _log(self.perplexity_trained)


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    headline: str  # one or two words: "finished", "cancelled", "failed"
    reason: str


def final_verdict(o: Outcome) -> Verdict:
    """What a finished job achieved, in words; never "continue".

    completed: held-out loss and perplexity before → after (from the validation step), or the
    Trainer's last held-out loss when validation reported none; an earlier checkpoint the
    analyser found better is named. cancelled: the step it stopped at and whether a checkpoint
    was saved (while the worker is still stopping, that it is saving one, not "none"). failed: the stage, the error and its suggested fix.
    """
    if o.ending == "failed":
        where = f" during {o.stage}" if o.stage else ""
        error = o.error.strip().rstrip(".") or "the worker gave no reason"
        if len(error) > ERROR_CHARS:
            error = error[:ERROR_CHARS].rstrip() + "…"
        kind = f" ({o.error_type})" if o.error_type and o.error_type != "unknown" else ""
        fix = f" Suggested fix: {o.suggested_fix.strip()}" if o.suggested_fix.strip() else ""
        return Verdict("failed", "failed", f"Failed{where}: {error}{kind}.{fix}")
    if o.ending == "cancelled":
        return Verdict("cancelled", "cancelled", _cancelled_reason(o))
    return _completed_verdict(o)


def _cancelled_reason(o: Outcome) -> str:
    # The worker checkpoints its last completed step as it stops, and that step's metrics can be
    # refused after the cancel (410): the job got at least as far as its checkpoint.
    step = o.step if o.checkpoint_step is None else max(o.step or 0, o.checkpoint_step)
    o = replace(o, step=step)
    if o.step is None:
        where = f" during {o.stage}" if o.stage else " before training started"
        stopped = f"Cancelled{where}"
    else:
        of = f" of {humanize.integer(o.total_steps)}" if o.total_steps else ""
        stopped = f"Cancelled at step {humanize.integer(o.step)}{of}"
    if o.worker_stopping:
        # Its last word is still on the way: "no checkpoint" now would be taken back seconds later.
        saving = " and saving a checkpoint of its last completed step" if o.step is not None else ""
        so_far = (f" (the latest saved so far is at step {humanize.integer(o.checkpoint_step)})"
                  if o.checkpoint_step is not None else "")
        return f"{stopped}; the worker is stopping{saving}{so_far}…"
    if o.checkpoint_step is not None:
        return f"{stopped}; the checkpoint at step {humanize.integer(o.checkpoint_step)} was saved."
    return f"{stopped}; no checkpoint was saved."


def _completed_verdict(o: Outcome) -> Verdict:
    base, trained = o.loss_base, o.loss_trained
    hint = ""
    if o.advice is not None and o.advice.action == "use_checkpoint":
        hint = f" The analyser: {o.advice.reason}"
    if base is None or trained is None:
        if o.eval_loss is not None and math.isfinite(o.eval_loss):
            at = f" at step {humanize.integer(o.eval_step)}" if o.eval_step is not None else ""
            return Verdict("finished", "finished", (
                f"Finished: held-out loss {humanize.significant(o.eval_loss)}{at} (the Trainer's evaluation; "
                f"the validation step reported no perplexity).{hint}"))
        return Verdict("finished", "finished",
                       f"Finished; no held-out evaluation was reported, so there is no result to compare.{hint}")
    perplexity = (f"perplexity {humanize.change(o.perplexity_base, o.perplexity_trained)} "
                  f"({humanize.percent(abs(improvement_pct(o.perplexity_base, o.perplexity_trained) or 0))}")
    loss = humanize.change(base, trained)
    if humanize.significant(base) == humanize.significant(trained):
        return Verdict("unchanged", "finished",
                       f"Finished: held-out loss unchanged at {humanize.significant(trained)}; "
                       f"perplexity {humanize.significant(o.perplexity_trained)}.{hint}")
    if trained < base:
        return Verdict("improved", "finished",
                       f"Finished: held-out loss improved from {loss.replace(' → ', ' to ')}; {perplexity} lower).{hint}")
    return Verdict("worse", "finished, worse", (
        f"Finished, but the adapter made held-out loss worse: {loss}; {perplexity} higher). "
        f"Check the data and the learning rate before using it.{hint}"))


def improvement_pct(base: float | None, trained: float | None) -> float | None:
    """(base − trained) / base × 100: positive when the trained perplexity is lower."""
    if base is None or trained is None or not (math.isfinite(base) and math.isfinite(trained)) or base <= 0:
        return None
    return (base - trained) / base * 100.0


def _log(perplexity: float | None) -> float | None:
    if perplexity is None or not math.isfinite(perplexity) or perplexity <= 0:
        return None
    return math.log(perplexity)
