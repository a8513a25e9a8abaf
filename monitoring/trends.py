"""Trend detectors: what a run's metric history shows (best step, overfitting, plateau,
divergence, spikes, stall). Pure: no Django, no I/O. docs/analysis.md states every formula.

Two levels, one definition: the per-anchor decisions (`is_spike`, `grew`, `overfitting_onset`,
`is_plateau`) each take the window a detector looks at when it reaches one point, and both the
whole-history functions here and the incremental `TrendState` (trend_state.py) call them, so the
batch scan and the incremental scan cannot disagree about what a spike or an overfitting window is.

Divergence here is the analyser's soft rule (3x the recent minimum, median of 3 points): it flags
and advises, it stops nothing. The worker's own stop rule is gpu_worker.contract's
DIVERGENCE_STOP_FACTOR / DIVERGENCE_STOP_PATIENCE; docs/worker-contract.md ("Divergence") sets
the two side by side and says why they differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .points import Point, canonical, finite, has_nonfinite_loss
from .stats import median, slope

# A perfectly flat history has no spread; without a floor any rise over it would be an infinite
# z-score. 0.1% of the mean level means a flat curve needs a >0.4% jump (at z=4) to be a spike.
SPIKE_STD_FLOOR = 1e-3
# A z-score from fewer prior points than this is noise, not evidence.
SPIKE_MIN_HISTORY = 5
# Growth divergence looks at the median of this many latest losses, so one spike (a spike's
# business, not divergence's) never reads as divergence; two high points out of three do.
DIVERGENCE_CONFIRM = 3


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


def is_spike(history: Sequence[float], value: float, z: float) -> bool:
    """`value` more than z standard deviations above the mean of `history` (which excludes it)."""
    if len(history) < SPIKE_MIN_HISTORY:
        return False
    n = len(history)
    mean = sum(history) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in history) / (n - 1))
    std = max(std, SPIKE_STD_FLOOR * abs(mean), 1e-12)
    return (value - mean) / std > z


def grew(history: Sequence[float], recent: Sequence[float], factor: float) -> bool:
    """The median of the latest losses is more than `factor` x the minimum of the window before."""
    if len(recent) < DIVERGENCE_CONFIRM or not history:
        return False
    floor = min(history)
    return floor > 0 and median(recent) > factor * floor


def overfitting_onset(window: Sequence[EvalRecord], min_rel_rise: float) -> int | None:
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
    eval_slope, train_slope = slope(steps, evals), slope(steps, trains)
    rise = eval_slope * (steps[-1] - steps[0])
    mean = sum(evals) / len(evals)
    if eval_slope > 0 and train_slope < 0 and rise >= min_rel_rise * abs(mean):
        return min(window, key=lambda r: (r.eval_loss, r.step)).step
    return None


def is_plateau(values: Sequence[tuple[int, float]], rel_tol: float) -> bool:
    """The least-squares change over the window is within rel_tol of the window's mean level."""
    if len(values) < 2:
        return False
    steps = [float(s) for s, _ in values]
    losses = [v for _, v in values]
    change = slope(steps, losses) * (steps[-1] - steps[0])
    return abs(change) <= rel_tol * abs(sum(losses) / len(losses))


def eval_records(points: Iterable[Point]) -> list[EvalRecord]:
    """The evaluations of a run, each with the mean training loss since the previous one."""
    records: list[EvalRecord] = []
    train_sum, train_count = 0.0, 0
    for p in canonical(points):
        if finite(p.train_loss):
            train_sum, train_count = train_sum + p.train_loss, train_count + 1
        if finite(p.eval_loss):
            records.append(EvalRecord(p.step, p.eval_loss, train_sum / train_count if train_count else None))
            train_sum, train_count = 0.0, 0
    return records


# --- Trend functions over a whole history ---------------------------------------------------


def best_step(points: Iterable[Point]) -> tuple[int, float] | None:
    """(step, eval_loss) of the lowest finite held-out loss, the earliest step on ties."""
    evals = [(p.eval_loss, p.step) for p in canonical(points) if finite(p.eval_loss)]
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
        if not finite(p.eval_loss):
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
        onset = overfitting_onset(records[end - window:end], min_rel_rise)
        if onset is not None:
            return onset
    return None


def detect_plateau(points: Iterable[Point], window: int = 5, rel_tol: float = 0.01) -> int | None:
    """First step of the first window of `window` evaluations whose fitted held-out change is
    within rel_tol of its level (neither improving nor worsening); None if none is flat."""
    evals = [(r.step, r.eval_loss) for r in eval_records(points)]
    for end in range(window, len(evals) + 1):
        if is_plateau(evals[end - window:end], rel_tol):
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
    bad = next((p for p in canon if has_nonfinite_loss(p)), None)
    history: list[float] = []
    for p in canon:
        if bad is not None and p.step >= bad.step:
            break
        if not finite(p.train_loss):
            continue
        history.append(p.train_loss)
        # Slice the tail only: history[:-3] would copy the whole history at every point (quadratic).
        recent, before = history[-DIVERGENCE_CONFIRM:], history[-(window + DIVERGENCE_CONFIRM):-DIVERGENCE_CONFIRM]
        if grew(before, recent, factor):
            return Divergence(p.step, growth_reason(before, recent, factor))
    if bad is not None:
        return Divergence(bad.step, nonfinite_reason(bad))
    return None


def detect_divergence(points: Iterable[Point], factor: float = 3.0, window: int = 10) -> int | None:
    """Step of the first divergence (see find_divergence), or None."""
    found = find_divergence(points, factor, window)
    return None if found is None else found.step


def nonfinite_reason(p: Point) -> str:
    """The divergence reason for a point with a NaN or infinite loss (the training loss first)."""
    which = "training" if p.train_loss is not None and not math.isfinite(p.train_loss) else "held-out"
    value = p.train_loss if which == "training" else p.eval_loss
    return f"{which} loss became {value} at step {p.step}"


def growth_reason(before: Sequence[float], recent: Sequence[float], factor: float) -> str:
    """The divergence reason for a training loss that grew past `factor` x its recent minimum."""
    return (f"training loss rose to {median(recent):.4g}, more than {factor:g}x its recent "
            f"minimum {min(before):.4g}")


def detect_spikes(points: Iterable[Point], window: int = 20, z: float = 4.0) -> list[int]:
    """Steps whose training loss is more than z standard deviations above the mean of the
    `window` finite training losses logged before it (the point itself excluded)."""
    spikes: list[int] = []
    history: list[float] = []
    for p in canonical(points):
        if not finite(p.train_loss):
            continue
        if is_spike(history[-window:], p.train_loss, z):
            spikes.append(p.step)
        history.append(p.train_loss)
    return spikes


def detect_stall(last_progress_at: float | None, now: float, minutes: float = 15.0) -> bool:
    """No new step for more than `minutes` (False before any progress)."""
    if last_progress_at is None or not math.isfinite(last_progress_at):
        return False
    return now - last_progress_at > minutes * 60.0
