"""Is the training run working? Pure functions over metric points: no Django, no I/O.

Everything here takes plain `Point`s (built from MetricPoint rows or webhook payloads by the
caller) and returns plain dataclasses, so the webhook ingestion, the monitoring task, the API
and the completion report can all share one definition of "overfitting", "spike", "best step".
docs/analysis.md states every formula and threshold; the seeds they come from are 003 (quality
score), 001 (anomalies: divergence, z-score spikes, best model) and 004 (trend analysis: best
epoch, overfitting, plateau, continue / stop / use checkpoint).

Conventions shared by every function:

- Points are canonicalised first (`canonical`): one point per step, in step order. Several
  reports of one step are merged field by field, as the ingestion merges them into one
  MetricPoint row (a train log and an eval log of the same step arrive as two partial points).
  Where two reports disagree on a field, the later report (`at`) wins, ties broken by value, so
  the result never depends on arrival order.
- NaN or infinite losses never raise: they mean divergence, and are left out of every window.
- "Held-out loss" is `eval_loss`; a point without one is not an evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

Action = Literal["continue", "stop_early", "use_checkpoint"]
Severity = Literal["info", "warning", "error", "critical"]
Priority = Literal["high", "medium", "low"]

MILESTONES = (25, 50, 75, 100)

# A perfectly flat history has no spread; without a floor any rise over it would be an infinite
# z-score. 0.1% of the mean level means a flat curve needs a >0.4% jump (at z=4) to be a spike.
SPIKE_STD_FLOOR = 1e-3
# A z-score from fewer prior points than this is noise, not evidence.
SPIKE_MIN_HISTORY = 5
# Growth divergence looks at the median of this many latest losses, so one spike (a spike's
# business, not divergence's) never reads as divergence; two high points out of three do.
DIVERGENCE_CONFIRM = 3


@dataclass(frozen=True)
class Point:
    """One step's metrics; `at` is when it was reported (unix seconds)."""

    step: int
    train_loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    at: float = 0.0


VALUE_FIELDS = ("train_loss", "eval_loss", "learning_rate", "tokens_per_second")


def point_from_mapping(data: Mapping[str, Any]) -> Point:
    """A Point from a webhook point or a MetricPoint's values (`reported_at` may be a datetime)."""
    at = data.get("at", data.get("reported_at", 0.0))
    if isinstance(at, datetime):
        at = at.timestamp()
    return Point(step=int(data["step"]), at=float(at or 0.0),
                 **{name: _as_float(data.get(name)) for name in VALUE_FIELDS})


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _rank(value: float | None) -> tuple[int, float]:
    """A total order over None < NaN < numbers (NaN compares false with everything)."""
    if value is None:
        return (0, 0.0)
    if math.isnan(value):
        return (1, 0.0)
    return (2, value)


def _report_key(p: Point) -> tuple:
    """Identity of a report (NaN-safe): exact resends have the same key."""
    return (p.step, _rank(p.at), *(_rank(getattr(p, name)) for name in VALUE_FIELDS))


def merge_reports(reports: Iterable[Point]) -> Point:
    """Several reports of one step as one point: each field from the latest report that has it
    (ties broken by the larger value).

    A function of the set of reports, so no arrival order or resend changes it. (Folding pairs
    would not do: a merged point's single `at` forgets which report each field came from.)
    """
    reports = list(reports)
    if not reports:
        raise ValueError("merge_reports needs at least one report")
    values: dict[str, float | None] = {}
    for name in VALUE_FIELDS:
        candidates = [(_rank(r.at), _rank(getattr(r, name))) for r in reports if getattr(r, name) is not None]
        values[name] = None if not candidates else _unrank(max(candidates)[1])
    return Point(step=reports[0].step, at=_unrank(max(_rank(r.at) for r in reports)) or 0.0, **values)


def _compact(reports: Sequence[Point]) -> list[Point]:
    """The fewest reports that merge, now and with any later reports, as `reports` do: per
    field only the winning (at, value) matters. Canonical, so equal sets give equal lists."""
    winners: dict[tuple[int, float], dict[str, float | None]] = {max(_rank(r.at) for r in reports): {}}
    for name in VALUE_FIELDS:
        candidates = [(_rank(r.at), _rank(getattr(r, name))) for r in reports if getattr(r, name) is not None]
        if candidates:
            at, value = max(candidates)
            winners.setdefault(at, {})[name] = _unrank(value)
    return [Point(step=reports[0].step, at=_unrank(at) or 0.0, **winners[at]) for at in sorted(winners)]


def _unrank(rank: tuple[int, float]) -> float | None:
    return (None, math.nan, rank[1])[rank[0]]


def _by_step(points: Iterable[Point]) -> dict[int, list[Point]]:
    grouped: dict[int, list[Point]] = {}
    for p in points:
        grouped.setdefault(p.step, []).append(p)
    return grouped


def canonical(points: Iterable[Point]) -> list[Point]:
    """One point per step, in step order: duplicates and partial reports merged."""
    grouped = _by_step(points)
    # A lone report is its own merge; skipping merge_reports for it makes a stored history
    # (one MetricPoint per step) about ten times cheaper to canonicalise.
    return [g[0] if len(g := grouped[s]) == 1 else merge_reports(g) for s in sorted(grouped)]


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs (0 when xs do not vary)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --- Per-anchor decisions, shared by the batch functions and the incremental TrendState -----
# Each takes the window the detector looks at when it reaches one point, so the batch scan and
# the incremental scan cannot disagree about what a spike or an overfitting window is.


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation: its step, held-out loss, and the mean training loss since the previous
    evaluation (the training curve smoothed to the evaluation grid; None when no finite training
    loss was logged in between)."""

    step: int
    eval_loss: float
    train_loss: float | None


def _is_spike(history: Sequence[float], value: float, z: float) -> bool:
    """`value` more than z standard deviations above the mean of `history` (which excludes it)."""
    if len(history) < SPIKE_MIN_HISTORY:
        return False
    n = len(history)
    mean = sum(history) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in history) / (n - 1))
    std = max(std, SPIKE_STD_FLOOR * abs(mean), 1e-12)
    return (value - mean) / std > z


def _grew(history: Sequence[float], recent: Sequence[float], factor: float) -> bool:
    """The median of the latest losses is more than `factor` x the minimum of the window before."""
    if len(recent) < DIVERGENCE_CONFIRM or not history:
        return False
    floor = min(history)
    return floor > 0 and _median(recent) > factor * floor


def _overfitting_onset(window: Sequence[EvalRecord], min_rel_rise: float) -> int | None:
    """The onset step if, over the window, held-out loss rises while training loss falls.

    Both slopes by least squares against step; the held-out rise fitted over the window must be
    at least `min_rel_rise` of its mean level, so evaluation noise alone is not overfitting.
    The onset is where the rise starts: the window's lowest held-out loss (earliest on ties).
    """
    if len(window) < 3 or any(r.train_loss is None for r in window):
        return None
    steps = [float(r.step) for r in window]
    evals = [r.eval_loss for r in window]
    trains = [r.train_loss for r in window if r.train_loss is not None]
    eval_slope, train_slope = _slope(steps, evals), _slope(steps, trains)
    rise = eval_slope * (steps[-1] - steps[0])
    mean = sum(evals) / len(evals)
    if eval_slope > 0 and train_slope < 0 and rise >= min_rel_rise * abs(mean):
        return min(window, key=lambda r: (r.eval_loss, r.step)).step
    return None


def _is_plateau(values: Sequence[tuple[int, float]], rel_tol: float) -> bool:
    """The least-squares change over the window is within rel_tol of the window's mean level."""
    if len(values) < 2:
        return False
    steps = [float(s) for s, _ in values]
    losses = [v for _, v in values]
    change = _slope(steps, losses) * (steps[-1] - steps[0])
    return abs(change) <= rel_tol * abs(sum(losses) / len(losses))


def eval_records(points: Iterable[Point]) -> list[EvalRecord]:
    """The evaluations of a run, each with the mean training loss since the previous one."""
    records: list[EvalRecord] = []
    train_sum, train_count = 0.0, 0
    for p in canonical(points):
        if _finite(p.train_loss):
            train_sum, train_count = train_sum + p.train_loss, train_count + 1
        if _finite(p.eval_loss):
            records.append(EvalRecord(p.step, p.eval_loss, train_sum / train_count if train_count else None))
            train_sum, train_count = 0.0, 0
    return records


# --- Trend functions over a whole history ---------------------------------------------------


def best_step(points: Iterable[Point]) -> tuple[int, float] | None:
    """(step, eval_loss) of the lowest finite held-out loss, the earliest step on ties."""
    evals = [(p.eval_loss, p.step) for p in canonical(points) if _finite(p.eval_loss)]
    if not evals:
        return None
    loss, step = min(evals)
    return step, loss


@dataclass(frozen=True)
class Improvement:
    """Early-stopping bookkeeping (as Keras/HF EarlyStopping): the reference loss moves only on
    an evaluation that beats it by more than min_delta."""

    step: int  # the last evaluation that improved
    loss: float  # the reference loss it set
    evaluations_since: int  # evaluations after it
    last_step: int  # the latest step seen


def last_improvement(points: Iterable[Point], min_delta: float = 0.0) -> Improvement | None:
    """The last evaluation that improved held-out loss by more than `min_delta`; None without any."""
    ref: tuple[int, float] | None = None
    since, last_step = 0, None
    for p in canonical(points):
        last_step = p.step
        if not _finite(p.eval_loss):
            continue
        if ref is None or p.eval_loss < ref[1] - min_delta:
            ref, since = (p.step, p.eval_loss), 0
        else:
            since += 1
    if ref is None or last_step is None:
        return None
    return Improvement(ref[0], ref[1], since, last_step)


def steps_since_improvement(points: Iterable[Point], min_delta: float = 0.0) -> int | None:
    """Training steps from the last held-out improvement (by more than min_delta) to the latest
    point; None before the first evaluation."""
    found = last_improvement(points, min_delta)
    return None if found is None else found.last_step - found.step


def detect_overfitting(points: Iterable[Point], window: int = 5, *, min_rel_rise: float = 0.01) -> int | None:
    """Onset step of the first window of `window` evaluations over which held-out loss rises
    (by at least min_rel_rise of its level) while training loss falls; None if none does."""
    records = eval_records(points)
    for end in range(window, len(records) + 1):
        onset = _overfitting_onset(records[end - window:end], min_rel_rise)
        if onset is not None:
            return onset
    return None


def detect_plateau(points: Iterable[Point], window: int = 5, rel_tol: float = 0.01) -> int | None:
    """First step of the first window of `window` evaluations whose fitted held-out change is
    within rel_tol of its level (neither improving nor worsening); None if none is flat."""
    evals = [(r.step, r.eval_loss) for r in eval_records(points)]
    for end in range(window, len(evals) + 1):
        if _is_plateau(evals[end - window:end], rel_tol):
            return evals[end - window][0]
    return None


@dataclass(frozen=True)
class Divergence:
    step: int
    reason: str


def find_divergence(points: Iterable[Point], factor: float = 3.0, window: int = 10) -> Divergence | None:
    """The first sign of divergence, with the reason in words.

    A NaN or infinite training or held-out loss anywhere (the first such step), or a training
    loss whose median over the latest 3 logged points exceeds `factor` x the minimum of the
    `window` logged losses before them (the recent minimum).
    """
    canon = canonical(points)
    bad = next((p for p in canon if _nonfinite(p)), None)
    history: list[float] = []
    for p in canon:
        if bad is not None and p.step >= bad.step:
            break
        if not _finite(p.train_loss):
            continue
        history.append(p.train_loss)
        # Slice the tail only: history[:-3] would copy the whole history at every point (quadratic).
        recent, before = history[-DIVERGENCE_CONFIRM:], history[-(window + DIVERGENCE_CONFIRM):-DIVERGENCE_CONFIRM]
        if _grew(before, recent, factor):
            return Divergence(p.step, _growth_reason(before, recent, factor))
    if bad is not None:
        return Divergence(bad.step, _nonfinite_reason(bad))
    return None


def detect_divergence(points: Iterable[Point], factor: float = 3.0, window: int = 10) -> int | None:
    """Step of the first divergence (see find_divergence), or None."""
    found = find_divergence(points, factor, window)
    return None if found is None else found.step


def _nonfinite(p: Point) -> bool:
    return any(v is not None and not math.isfinite(v) for v in (p.train_loss, p.eval_loss))


def _nonfinite_reason(p: Point) -> str:
    which = "training" if p.train_loss is not None and not math.isfinite(p.train_loss) else "held-out"
    value = p.train_loss if which == "training" else p.eval_loss
    return f"{which} loss became {value} at step {p.step}"


def _growth_reason(before: Sequence[float], recent: Sequence[float], factor: float) -> str:
    return (f"training loss rose to {_median(recent):.4g}, more than {factor:g}x its recent "
            f"minimum {min(before):.4g}")


def detect_spikes(points: Iterable[Point], window: int = 20, z: float = 4.0) -> list[int]:
    """Steps whose training loss is more than z standard deviations above the mean of the
    `window` finite training losses logged before it (the point itself excluded)."""
    spikes: list[int] = []
    history: list[float] = []
    for p in canonical(points):
        if not _finite(p.train_loss):
            continue
        if _is_spike(history[-window:], p.train_loss, z):
            spikes.append(p.step)
        history.append(p.train_loss)
    return spikes


def detect_stall(last_progress_at: float | None, now: float, minutes: float = 15.0) -> bool:
    """No new step for more than `minutes` (False before any progress)."""
    if last_progress_at is None or not math.isfinite(last_progress_at):
        return False
    return now - last_progress_at > minutes * 60.0


# --- Recommendation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    action: Action
    checkpoint_step: int | None
    reason: str


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
                              f"use the checkpoint at step {step} (held-out loss {_fmt(loss)}).")
    if e.best is None or e.last_eval_step is None:
        return Recommendation("continue", None, "No held-out evaluation yet; nothing suggests stopping.")
    (best, best_loss), last_eval = e.best, e.last_eval_step
    if e.overfitting_onset is not None and best < last_eval:
        return Recommendation("use_checkpoint", best, (
            f"Held-out loss has been rising since about step {e.overfitting_onset} while training loss keeps "
            f"falling (overfitting); use the checkpoint at step {best} (best {_fmt(best_loss)})."))
    since = e.evaluations_since_improvement
    if since >= patience:
        by = f" by more than {min_delta:g}" if min_delta > 0 else ""
        stale = f"Held-out loss has not improved{by} for {_plural(since, 'evaluation')} since step {e.improvement_step}"
        if best < last_eval:
            return Recommendation("use_checkpoint", best,
                                  f"{stale} (best {_fmt(best_loss)}); use the checkpoint at step {best}.")
        return Recommendation("stop_early", None,
                              f"{stale}; the latest evaluation (step {best}, {_fmt(best_loss)}) "
                              "is the best, so stop and keep the final adapter.")
    if since == 0:
        return Recommendation("continue", None,
                              f"Held-out loss is still improving (latest best {_fmt(best_loss)} at step {best}).")
    return Recommendation("continue", None, (
        f"Held-out loss last improved at step {e.improvement_step} "
        f"({_plural(since, 'evaluation')} ago, best {_fmt(best_loss)}); "
        f"waiting up to {_plural(patience, 'evaluation')} before stopping."))


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


# --- Milestones -----------------------------------------------------------------------------


def milestone_step(percent: int, total_steps: int) -> int:
    """The first step at which `percent` of total_steps is done (integer maths, no rounding drift)."""
    return -(-percent * total_steps // 100)


def milestones_reached(previously_recorded: set[int], step: int, total_steps: int) -> list[int]:
    """Milestones (25/50/75/100 %) that `step` has crossed and that are not yet recorded.

    The caller records the result; since "crossed" only depends on the highest step, a job's
    milestones come out exactly once each, whatever order or duplication its reports have.
    """
    if total_steps <= 0:
        return []
    return [m for m in MILESTONES if m not in previously_recorded and step * 100 >= m * total_steps]


# --- Incremental analysis -------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    kind: str  # divergence, spike, overfitting, plateau, new_best, stall, milestone
    step: int
    severity: Severity
    message: str
    suggested_action: str


@dataclass(frozen=True)
class TrendConfig:
    spike_window: int = 20
    spike_z: float = 4.0
    divergence_factor: float = 3.0
    divergence_window: int = 10
    overfit_window: int = 5
    overfit_min_rel_rise: float = 0.01
    plateau_window: int = 5
    plateau_rel_tol: float = 0.01
    min_delta: float = 0.0
    stall_minutes: float = 15.0
    patience: int = 5  # evaluations without improvement before the recommendation says stop
    # A point is analysed once this many points with later steps have arrived: a resent or
    # reordered point that arrives before then lands in its place. See docs/analysis.md.
    settle_points: int = 4


@dataclass
class TrendState:
    """What update_trend_state needs to go on without the history. JSON-serialisable through
    to_dict/from_dict (non-finite floats become strings: PostgreSQL's JSONB refuses NaN)."""

    config: TrendConfig = field(default_factory=TrendConfig)
    # Reports of steps not yet analysed (fewer than settle_points later steps seen), in step
    # order, compacted but not merged: merging later reports in must stay order-free.
    pending: list[Point] = field(default_factory=list)
    settled_step: int | None = None  # the last analysed step
    # Rolling windows over analysed points: finite training losses, and evaluation records.
    train_window: list[float] = field(default_factory=list)
    eval_window: list[EvalRecord] = field(default_factory=list)
    interval_train_sum: float = 0.0  # training losses since the last analysed evaluation
    interval_train_count: int = 0
    record_best_step: int | None = None  # running best over analysed evaluations (new_best)
    record_best_loss: float | None = None
    improvement_step: int | None = None  # early-stopping reference (min_delta)
    improvement_loss: float | None = None
    evaluations_since_improvement: int = 0
    # Over every point received, whatever its order: order-free aggregates.
    best_step: int | None = None
    best_eval_loss: float | None = None
    max_step: int | None = None
    last_progress_at: float | None = None  # `at` of the highest step
    milestones: list[int] = field(default_factory=list)
    # What the recommendation needs beyond the windows (recommend_from_state): the first sign of
    # divergence, the best evaluation before it, and where overfitting began.
    divergence_step: int | None = None
    divergence_reason: str | None = None
    best_before_divergence_step: int | None = None
    best_before_divergence_loss: float | None = None
    overfitting_onset: int | None = None
    # Keys of the once-per-job anomalies already reported (divergence, overfitting, plateau,
    # milestone:<percent>, stall:<step>). Spikes and new bests need no key: they are found when
    # their step is analysed, and a step is analysed once, so the state stays a few KB.
    reported: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": {f.name: getattr(self.config, f.name) for f in fields(TrendConfig)},
            "pending": [_point_to_dict(p) for p in self.pending],
            "settled_step": self.settled_step,
            "train_window": [_enc(v) for v in self.train_window],
            "eval_window": [[r.step, _enc(r.eval_loss), _enc(r.train_loss)] for r in self.eval_window],
            "interval_train_sum": _enc(self.interval_train_sum),
            "interval_train_count": self.interval_train_count,
            "record_best_step": self.record_best_step,
            "record_best_loss": _enc(self.record_best_loss),
            "improvement_step": self.improvement_step,
            "improvement_loss": _enc(self.improvement_loss),
            "evaluations_since_improvement": self.evaluations_since_improvement,
            "best_step": self.best_step,
            "best_eval_loss": _enc(self.best_eval_loss),
            "max_step": self.max_step,
            "last_progress_at": _enc(self.last_progress_at),
            "milestones": list(self.milestones),
            "divergence_step": self.divergence_step,
            "divergence_reason": self.divergence_reason,
            "best_before_divergence_step": self.best_before_divergence_step,
            "best_before_divergence_loss": _enc(self.best_before_divergence_loss),
            "overfitting_onset": self.overfitting_onset,
            "reported": list(self.reported),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrendState:
        return cls(
            config=TrendConfig(**data.get("config", {})),
            pending=[_point_from_dict(p) for p in data.get("pending", [])],
            settled_step=data.get("settled_step"),
            train_window=[_dec(v) for v in data.get("train_window", [])],
            eval_window=[EvalRecord(s, _dec(e), _dec(t)) for s, e, t in data.get("eval_window", [])],
            interval_train_sum=_dec(data.get("interval_train_sum")) or 0.0,
            interval_train_count=data.get("interval_train_count", 0),
            record_best_step=data.get("record_best_step"),
            record_best_loss=_dec(data.get("record_best_loss")),
            improvement_step=data.get("improvement_step"),
            improvement_loss=_dec(data.get("improvement_loss")),
            evaluations_since_improvement=data.get("evaluations_since_improvement", 0),
            best_step=data.get("best_step"),
            best_eval_loss=_dec(data.get("best_eval_loss")),
            max_step=data.get("max_step"),
            last_progress_at=_dec(data.get("last_progress_at")),
            milestones=list(data.get("milestones", [])),
            divergence_step=data.get("divergence_step"),
            divergence_reason=data.get("divergence_reason"),
            best_before_divergence_step=data.get("best_before_divergence_step"),
            best_before_divergence_loss=_dec(data.get("best_before_divergence_loss")),
            overfitting_onset=data.get("overfitting_onset"),
            reported=list(data.get("reported", [])),
        )


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _enc(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _dec(value: float | str | None) -> float | None:
    if isinstance(value, str):
        return _NONFINITE[value]
    return None if value is None else float(value)


def _point_to_dict(p: Point) -> dict[str, Any]:
    return {"step": p.step, "at": _enc(p.at), **{n: _enc(getattr(p, n)) for n in VALUE_FIELDS}}


def _point_from_dict(d: Mapping[str, Any]) -> Point:
    return Point(step=d["step"], at=_dec(d.get("at")) or 0.0, **{n: _dec(d.get(n)) for n in VALUE_FIELDS})


def update_trend_state(state: TrendState, new_points: Iterable[Point], *, now: float | None = None,
                       total_steps: int | None = None, final: bool = False,
                       ) -> tuple[TrendState, list[Anomaly]]:
    """Fold a batch of points into the analysis; return the new state and the new anomalies.

    Does not modify `state`. Each anomaly is reported once per job: divergence, overfitting and
    plateau once each, a spike and a new best once per step, a milestone once per percentage, a
    stall once per step it stalls at (pass `now`, e.g. from the monitoring task, to check it).
    `final=True` (the run has ended) analyses the points still waiting for later ones.

    Order: best step, max step, milestones and NaN/inf divergence are order-free aggregates.
    Window detectors (spikes, growth divergence, overfitting, plateau, new best) run over
    points in step order once `settle_points` later points have arrived, so a batch resent or
    reordered within that many points gives exactly what the sorted stream gives. A point that
    arrives later still (its step already analysed) only counts in the order-free aggregates.
    """
    s = _copy(state)
    cfg = s.config
    anomalies: list[Anomaly] = []
    # Aggregates over raw reports, not merged ones: min and max do not care how reports group.
    reports = sorted(new_points, key=_report_key)
    for p in reports:
        _aggregate(s, p)
    bad = next((p for p in reports if _nonfinite(p)), None)
    if bad is not None:
        _report(s, anomalies, "divergence", "divergence", bad.step, "critical",
                f"Training diverged: {_nonfinite_reason(bad)}.", _divergence_action(s))
    for q in reports:
        if _nonfinite(q):
            _note_divergence(s, q.step, _nonfinite_reason(q))
    fresh = [p for p in reports if s.settled_step is None or p.step > s.settled_step]
    waiting = _by_step([*s.pending, *fresh])
    keep = 0 if final else cfg.settle_points
    for step in sorted(waiting)[:max(0, len(waiting) - keep)]:
        _settle(s, merge_reports(waiting.pop(step)), anomalies)
    s.pending = [p for step in sorted(waiting) for p in _compact(waiting[step])]
    if total_steps and s.max_step is not None:
        for m in milestones_reached(set(s.milestones), s.max_step, total_steps):
            s.milestones = sorted([*s.milestones, m])
            _report(s, anomalies, "milestone", f"milestone:{m}", milestone_step(m, total_steps), "info",
                    f"Training {m}% complete (step {s.max_step} of {total_steps}).", "")
    if now is not None and s.max_step is not None and detect_stall(s.last_progress_at, now, cfg.stall_minutes):
        idle = (now - (s.last_progress_at or now)) / 60
        _report(s, anomalies, "stall", f"stall:{s.max_step}", s.max_step, "error",
                f"No training progress for {idle:.0f} minutes (last step {s.max_step}).",
                "Check the worker's heartbeats and logs; the pod may be stuck or gone.")
    return s, anomalies


def _copy(state: TrendState) -> TrendState:
    return replace(state, pending=list(state.pending), train_window=list(state.train_window),
                   eval_window=list(state.eval_window), milestones=list(state.milestones),
                   reported=list(state.reported))


def _aggregate(s: TrendState, p: Point) -> None:
    if _finite(p.eval_loss) and (s.best_eval_loss is None
                                 or (p.eval_loss, p.step) < (s.best_eval_loss, s.best_step)):
        s.best_step, s.best_eval_loss = p.step, p.eval_loss
    if s.max_step is None or p.step > s.max_step:
        s.max_step, s.last_progress_at = p.step, p.at
    elif p.step == s.max_step:
        s.last_progress_at = max(s.last_progress_at or 0.0, p.at, key=_rank)


def _report(s: TrendState, out: list[Anomaly], kind: str, key: str | None, step: int, severity: Severity,
            message: str, action: str) -> None:
    """Append the anomaly unless its once-per-job key was reported before (None: no key needed)."""
    if key is not None:
        if key in s.reported:
            return
        s.reported = sorted([*s.reported, key])
    out.append(Anomaly(kind, step, severity, message, action))


def _divergence_action(s: TrendState) -> str:
    where = f"the checkpoint at step {s.record_best_step}" if s.record_best_step is not None else "the last checkpoint"
    return f"Stop the run; restart from {where} with a lower learning rate (about half) and gradient clipping."


def _note_divergence(s: TrendState, step: int, reason: str) -> None:
    """Keep the earliest sign of divergence (find_divergence's choice on a sorted history) and
    the best settled evaluation before it; evaluations settled later extend that in _settle_eval.
    A growth divergence is only searched for in losses before the first NaN/inf, as there."""
    if s.divergence_step == step and reason.startswith("training") and not (s.divergence_reason or "").startswith(
            "training"):
        # Two reports of one step, a NaN training loss and a NaN held-out loss: name the
        # training loss whichever came first, as _nonfinite_reason does for the merged point.
        s.divergence_reason = reason
        return
    if s.divergence_step is not None and s.divergence_step <= step:
        return
    s.divergence_step, s.divergence_reason = step, reason
    best = (s.record_best_step, s.record_best_loss)
    if best[0] is not None and best[0] < step:
        s.best_before_divergence_step, s.best_before_divergence_loss = best
    else:
        s.best_before_divergence_step, s.best_before_divergence_loss = None, None


def _settle(s: TrendState, p: Point, out: list[Anomaly]) -> None:
    """Run every window detector at point p, the next one in step order."""
    cfg = s.config
    s.settled_step = p.step
    if _finite(p.train_loss):
        loss = p.train_loss
        if _is_spike(s.train_window[-cfg.spike_window:], loss, cfg.spike_z):
            _report(s, out, "spike", None, p.step, "warning",
                    f"Training loss spiked to {_fmt(loss)} at step {p.step}, far above the last "
                    f"{min(len(s.train_window), cfg.spike_window)} logged losses.",
                    "Harmless if the loss recovers; if spikes repeat, lower the learning rate or "
                    "clip gradients (max_grad_norm=1.0).")
        history = [*s.train_window, loss]
        recent = history[-DIVERGENCE_CONFIRM:]
        before = history[:-DIVERGENCE_CONFIRM][-cfg.divergence_window:]
        if _grew(before, recent, cfg.divergence_factor):
            _report(s, out, "divergence", "divergence", p.step, "critical",
                    f"Training diverged: {_growth_reason(before, recent, cfg.divergence_factor)} "
                    f"(step {p.step}).", _divergence_action(s))
            _note_divergence(s, p.step, _growth_reason(before, recent, cfg.divergence_factor))
        keep = max(cfg.spike_window, cfg.divergence_window + DIVERGENCE_CONFIRM)
        s.train_window = history[-keep:]
        s.interval_train_sum += loss
        s.interval_train_count += 1
    if _finite(p.eval_loss):
        _settle_eval(s, p.step, p.eval_loss, out)


def _settle_eval(s: TrendState, step: int, loss: float, out: list[Anomaly]) -> None:
    cfg = s.config
    train = s.interval_train_sum / s.interval_train_count if s.interval_train_count else None
    s.interval_train_sum, s.interval_train_count = 0.0, 0
    keep = max(cfg.overfit_window, cfg.plateau_window)
    s.eval_window = [*s.eval_window, EvalRecord(step, loss, train)][-keep:]
    if s.divergence_step is not None and step < s.divergence_step and (
            s.best_before_divergence_loss is None or loss < s.best_before_divergence_loss):
        s.best_before_divergence_step, s.best_before_divergence_loss = step, loss
    if s.record_best_loss is None or loss < s.record_best_loss:
        s.record_best_step, s.record_best_loss = step, loss
        _report(s, out, "new_best", None, step, "info",
                f"New best held-out loss {_fmt(loss)} at step {step}.",
                f"Keep the checkpoint at step {step}.")
    if s.improvement_loss is None or loss < s.improvement_loss - cfg.min_delta:
        s.improvement_step, s.improvement_loss, s.evaluations_since_improvement = step, loss, 0
    else:
        s.evaluations_since_improvement += 1
    if len(s.eval_window) >= cfg.overfit_window:
        onset = _overfitting_onset(s.eval_window[-cfg.overfit_window:], cfg.overfit_min_rel_rise)
        if onset is not None and s.overfitting_onset is None:
            s.overfitting_onset = onset
        if onset is not None:
            _report(s, out, "overfitting", "overfitting", onset, "warning",
                    f"Held-out loss has been rising since about step {onset} while training loss "
                    f"keeps falling (detected at step {step}).",
                    f"Stop early and use the checkpoint at step {s.record_best_step}; next time train "
                    "fewer epochs, add data, or raise lora_dropout.")
    if len(s.eval_window) >= cfg.plateau_window:
        flat = s.eval_window[-cfg.plateau_window:]
        if _is_plateau([(r.step, r.eval_loss) for r in flat], cfg.plateau_rel_tol):
            _report(s, out, "plateau", "plateau", flat[0].step, "info",
                    f"Held-out loss has been flat since step {flat[0].step} "
                    f"(within {cfg.plateau_rel_tol:.0%} over {cfg.plateau_window} evaluations).",
                    f"If it stays flat, stop early and keep the checkpoint at step {s.record_best_step}.")


# --- Quality score (seed 003) ---------------------------------------------------------------


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
    if not (_finite(initial) and _finite(final)) or initial <= 0:
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
            f"Training loss fell only {reduction:.0%} ({_fmt(initial)} -> {_fmt(final)}); try a "
            "higher learning rate (about 2x), more epochs, or a larger LoRA rank.")))
    return points


def _score_convergence(canon: Sequence[Point], out: list[Suggestion], measured: dict[str, float | None]) -> int:
    """Seed 003: converged 25, not converged 10; converged means the fitted change of the
    training loss over its last 20% of logged points is within +-5% of its level."""
    measured["final_trend"] = None
    if any(_nonfinite(p) for p in canon):
        out.append(Suggestion("convergence", "high", "The loss curve contains NaN or infinite values; "
                              "the run did not converge. Lower the learning rate and clip gradients."))
        return 0
    train = [(p.step, p.train_loss) for p in canon if _finite(p.train_loss)]
    if len(train) < CONVERGENCE_MIN_POINTS:
        out.append(Suggestion("convergence", "low", f"Only {len(train)} training losses were logged, too "
                              "few to judge convergence; log more often (logging_steps)."))
        return 10
    tail = train[-max(CONVERGENCE_MIN_POINTS, math.ceil(CONVERGENCE_TAIL * len(train))):]
    steps, losses = [float(s) for s, _ in tail], [v for _, v in tail]
    level = abs(sum(losses) / len(losses))
    change = _slope(steps, losses) * (steps[-1] - steps[0]) / level if level > 0 else 0.0
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
            f"{_plural(len(spikes), 'loss spike')} (step {shown}); lower the learning rate, clip "
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
            f"use the checkpoint at step {best[0]} (held-out loss {_fmt(best[1])}).")))
        if total_steps and best[0] * 2 <= total_steps:
            out.append(Suggestion("efficiency", "medium", (
                f"The best checkpoint came at step {best[0]} of {total_steps}; about half the "
                "epochs (or early stopping) would give the same adapter for less.")))
    if not (_finite(final_train) and _finite(final_eval)) or final_train <= 0:
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
        f"Held-out loss is {gap:.0%} above training loss ({_fmt(final_eval)} vs {_fmt(final_train)}); "
        "train fewer epochs, add data, or raise lora_dropout (e.g. 0.1).")))
    return 10 if gap < 0.30 else 0


def _score_efficiency(canon: Sequence[Point], tokens: float | None, duration: float | None,
                      out: list[Suggestion], measured: dict[str, float | None]) -> int:
    """How much of the wall time trained at the loop's own speed: utilisation = (tokens /
    duration_seconds) / median reported tokens_per_second. >=85% 10, >=70% 7, >=50% 5, else 3
    (seed 003's 10/7/3 tiers, on a measure our inputs support)."""
    speeds = [p.tokens_per_second for p in canon if _finite(p.tokens_per_second) and p.tokens_per_second > 0]
    if not (_finite(tokens) and _finite(duration)) or tokens <= 0 or duration <= 0 or not speeds:
        measured["utilisation"] = None
        out.append(Suggestion("efficiency", "low", "Efficiency could not be measured: the run needs "
                              "tokens trained, its duration and reported tokens_per_second."))
        return 0
    utilisation = min(1.0, (tokens / duration) / _median(speeds))
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
    if not (_finite(base) and _finite(trained)) or base <= 0:
        measured["perplexity_change"] = None
        return
    change = (trained - base) / base
    measured["perplexity_change"] = change
    if change >= 0:
        out.append(Suggestion("underfitting", "high", (
            f"The adapter did not lower held-out perplexity ({_fmt(base)} -> {_fmt(trained)}); check "
            "the data matches the task, and try a higher learning rate or more epochs.")))
