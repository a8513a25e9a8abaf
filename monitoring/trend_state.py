"""The incremental trend analysis: `TrendState`, what the analyser keeps between metric batches
(a few KB of JSON on the job), and `update_trend_state`, which folds a batch in and returns the
new findings (anomalies and milestones), each once per job however batches are resent or
reordered. Pure: no Django, no I/O. docs/analysis.md, "Incremental analysis".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .milestones import milestone_step, milestones_reached
from .points import (
    VALUE_FIELDS,
    Point,
    by_step,
    compact_reports,
    finite,
    has_nonfinite_loss,
    merge_reports,
    rank,
    report_key,
)
from .trends import (
    DIVERGENCE_CONFIRM,
    EvalRecord,
    detect_stall,
    grew,
    growth_reason,
    is_plateau,
    is_spike,
    nonfinite_reason,
    overfitting_onset,
)
from .wording import fmt

Severity = Literal["info", "warning", "error", "critical"]


@dataclass(frozen=True)
class Anomaly:
    """One finding, reported once: recorded as an `anomaly` JobEvent (a `milestone` one for kind
    "milestone", with its `percent`)."""

    kind: str  # divergence, spike, overfitting, plateau, new_best, stall, milestone
    step: int
    severity: Severity
    message: str
    suggested_action: str
    percent: int | None = None  # milestones only: 25, 50, 75 or 100


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
    reports = sorted(new_points, key=report_key)
    for p in reports:
        _aggregate(s, p)
    bad = next((p for p in reports if has_nonfinite_loss(p)), None)
    if bad is not None:
        _report(s, anomalies, "divergence", "divergence", bad.step, "critical",
                f"Training diverged: {nonfinite_reason(bad)}.", _divergence_action(s))
    for q in reports:
        if has_nonfinite_loss(q):
            _note_divergence(s, q.step, nonfinite_reason(q))
    fresh = [p for p in reports if s.settled_step is None or p.step > s.settled_step]
    waiting = by_step([*s.pending, *fresh])
    keep = 0 if final else cfg.settle_points
    for step in sorted(waiting)[:max(0, len(waiting) - keep)]:
        _settle(s, merge_reports(waiting.pop(step)), anomalies)
    s.pending = [p for step in sorted(waiting) for p in compact_reports(waiting[step])]
    if total_steps and s.max_step is not None:
        for m in milestones_reached(set(s.milestones), s.max_step, total_steps):
            s.milestones = sorted([*s.milestones, m])
            _report(s, anomalies, "milestone", f"milestone:{m}", milestone_step(m, total_steps), "info",
                    f"Training {m}% complete (step {s.max_step} of {total_steps}).", "", percent=m)
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
    if finite(p.eval_loss) and (s.best_eval_loss is None
                                 or (p.eval_loss, p.step) < (s.best_eval_loss, s.best_step)):
        s.best_step, s.best_eval_loss = p.step, p.eval_loss
    if s.max_step is None or p.step > s.max_step:
        s.max_step, s.last_progress_at = p.step, p.at
    elif p.step == s.max_step:
        s.last_progress_at = max(s.last_progress_at or 0.0, p.at, key=rank)


def _report(s: TrendState, out: list[Anomaly], kind: str, key: str | None, step: int, severity: Severity,
            message: str, action: str, percent: int | None = None) -> None:
    """Append the anomaly unless its once-per-job key was reported before (None: no key needed)."""
    if key is not None:
        if key in s.reported:
            return
        s.reported = sorted([*s.reported, key])
    out.append(Anomaly(kind, step, severity, message, action, percent))


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
        # training loss whichever came first, as nonfinite_reason does for the merged point.
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
    if finite(p.train_loss):
        loss = p.train_loss
        if is_spike(s.train_window[-cfg.spike_window:], loss, cfg.spike_z):
            _report(s, out, "spike", None, p.step, "warning",
                    f"Training loss spiked to {fmt(loss)} at step {p.step}, far above the last "
                    f"{min(len(s.train_window), cfg.spike_window)} logged losses.",
                    "Harmless if the loss recovers; if spikes repeat, lower the learning rate or "
                    "clip gradients (max_grad_norm=1.0).")
        history = [*s.train_window, loss]
        recent = history[-DIVERGENCE_CONFIRM:]
        before = history[:-DIVERGENCE_CONFIRM][-cfg.divergence_window:]
        if grew(before, recent, cfg.divergence_factor):
            _report(s, out, "divergence", "divergence", p.step, "critical",
                    f"Training diverged: {growth_reason(before, recent, cfg.divergence_factor)} "
                    f"(step {p.step}).", _divergence_action(s))
            _note_divergence(s, p.step, growth_reason(before, recent, cfg.divergence_factor))
        keep = max(cfg.spike_window, cfg.divergence_window + DIVERGENCE_CONFIRM)
        s.train_window = history[-keep:]
        s.interval_train_sum += loss
        s.interval_train_count += 1
    if finite(p.eval_loss):
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
                f"New best held-out loss {fmt(loss)} at step {step}.",
                f"Keep the checkpoint at step {step}.")
    if s.improvement_loss is None or loss < s.improvement_loss - cfg.min_delta:
        s.improvement_step, s.improvement_loss, s.evaluations_since_improvement = step, loss, 0
    else:
        s.evaluations_since_improvement += 1
    if len(s.eval_window) >= cfg.overfit_window:
        onset = overfitting_onset(s.eval_window[-cfg.overfit_window:], cfg.overfit_min_rel_rise)
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
        if is_plateau([(r.step, r.eval_loss) for r in flat], cfg.plateau_rel_tol):
            _report(s, out, "plateau", "plateau", flat[0].step, "info",
                    f"Held-out loss has been flat since step {flat[0].step} "
                    f"(within {cfg.plateau_rel_tol:.0%} over {cfg.plateau_window} evaluations).",
                    f"If it stays flat, stop early and keep the checkpoint at step {s.record_best_step}.")
