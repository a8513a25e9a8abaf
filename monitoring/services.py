"""The trend analysis against the database: the pure analysers (points, trends, trend_state,
recommendation, quality) applied to a job's stored state and history (docs/analysis.md,
"Incremental analysis"). receivers.py calls these from the job-event hook.

`analyse_metrics(job_id, points)` runs inside the webhook's transaction, after a metrics batch
is stored, with the job's row already locked by the ingestion (that lock is what serialises
the read-update-write of `TrainingJob.trend_state`). It folds the batch into the stored
`TrendState` and records one JobEvent per new finding through training.events: `anomaly` for
divergence, spikes, overfitting, plateaus, new bests and stalls, `milestone` for 25/50/75/100 %.
The analyser reports each finding once per job, so a resent or reordered batch adds no events.

`finish_analysis(job_id)` runs when the job completes: it settles the last points
(`final=True`) and stores the quality score in `TrainingJob.quality`.

`check_stall(job_id)` reports a training job whose steps stopped advancing, once per step.

Each is a handful of queries and pure-Python arithmetic over a few KB of state; the quality
score reads the job's metric history once, on completion only. `trend_analysis`,
`recommend_job` and `score_job` are what the API, the dashboard and `manage.py watch` show;
once a job has ended, `job_outcome` and `job_verdict` replace the advice with what it achieved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from training.events import record_events
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob

from .points import VALUE_FIELDS, Point, canonical, point_from_mapping
from .quality import QualityScore, quality_score
from .recommendation import (
    Outcome,
    Recommendation,
    Verdict,
    final_verdict,
    recommend,
    recommend_from_state,
    trend_summary,
)
from .trend_state import Anomaly, TrendState, update_trend_state

logger = logging.getLogger(__name__)

STATE_FIELDS = ("trend_state", "milestones", "total_steps")
SOURCE = "analysis"  # JobEvent.source of every finding recorded here


def analyse_metrics(job_id: Any, points: Iterable[Mapping[str, Any]], *, now: datetime | None = None,
                    job: TrainingJob | None = None, total_steps: int | None = None) -> list[Anomaly]:
    """Fold a stored metrics batch into the job's trend state; return (and record) what is new.

    `points` are mappings with "step" and any of the analyser's value fields (a webhook point
    or a MetricPoint's values); they are stamped with `now` unless they carry "at"/"reported_at".
    The caller holds the job's row lock. The ingestion passes the `job` it read under that lock
    (its trend_state and milestones are current: only this module writes them) and the batch's
    `total_steps`, which saves a query per batch.
    """
    now = now or timezone.now()
    stamped = [point_from_mapping({"reported_at": now, **p}) for p in points]
    known = None
    if job is not None:
        known = {"trend_state": job.trend_state, "milestones": job.milestones,
                 "total_steps": total_steps or job.total_steps}
    return _update(job_id, stamped, now=now, final=False, known=known)


def finish_analysis(job_id: Any, *, now: datetime | None = None) -> QualityScore | None:
    """The run has ended: analyse the last points and, if it completed, score its quality."""
    now = now or timezone.now()
    _update(job_id, [], now=now, final=True)
    job = TrainingJob.objects.get(pk=job_id)
    if job.status != Status.COMPLETED:
        return None
    score = score_job(job)
    TrainingJob.objects.filter(pk=job_id).update(quality=quality_to_dict(score))
    return score


def check_stall(job_id: Any, *, now: datetime | None = None, job: TrainingJob | None = None) -> list[Anomaly]:
    """Report a stall (no new step for TrendConfig.stall_minutes) of a training job, once.

    The row lock keeps this read-modify-write of trend_state from racing the webhook's, which
    holds the same lock. A caller that already holds it and read the job under it (a heartbeat's
    ingestion) passes `job`, which saves the read. Nothing is written unless a stall is new."""
    now = now or timezone.now()
    with transaction.atomic():
        if job is not None:
            if job.status != Status.TRAINING:
                return []
            row: dict[str, Any] | None = {name: getattr(job, name) for name in STATE_FIELDS}
        else:
            row = (TrainingJob.objects.select_for_update().filter(pk=job_id, status=Status.TRAINING)
                   .values(*STATE_FIELDS).first())
        if row is None:
            return []
        return _update(job_id, [], now=now, final=False, check_stall=True, known=row)


def _update(job_id: Any, points: list[Point], *, now: datetime, final: bool,
            check_stall: bool = False, known: dict[str, Any] | None = None) -> list[Anomaly]:
    row = known or TrainingJob.objects.filter(pk=job_id).values(*STATE_FIELDS).first()
    if row is None:
        return []
    state = TrendState.from_dict(row["trend_state"] or {})
    state, anomalies = update_trend_state(
        state, points, total_steps=row["total_steps"], final=final,
        now=now.timestamp() if check_stall else None,
    )
    # With no new points, all an update can add is a finding (a stall, a milestone): a stall
    # check that found nothing new changed nothing, so it writes nothing (it runs per heartbeat).
    if anomalies or not check_stall:
        milestones = sorted(set(row["milestones"] or []) | set(state.milestones))
        TrainingJob.objects.filter(pk=job_id).update(trend_state=state.to_dict(), milestones=milestones)
    if anomalies:
        record_events([_event(job_id, a, now) for a in anomalies])
    return anomalies


def _event(job_id: Any, anomaly: Anomaly, now: datetime) -> JobEvent:
    """The JobEvent of one finding: structured columns for receivers, payload keys for people
    (the API and the dashboard show kind, step, message, suggested_action, percent)."""
    payload: dict[str, Any] = {"kind": anomaly.kind, "step": anomaly.step, "message": anomaly.message,
                               "suggested_action": anomaly.suggested_action}
    if anomaly.kind == "milestone":
        payload["percent"] = anomaly.percent
        return JobEvent(job_id=job_id, event_type=JobEvent.Type.MILESTONE, severity=anomaly.severity,
                        source=SOURCE, payload=payload, received_at=now, step=anomaly.step,
                        milestone_percent=anomaly.percent)
    return JobEvent(job_id=job_id, event_type=JobEvent.Type.ANOMALY, severity=anomaly.severity,
                    source=SOURCE, payload=payload, received_at=now, step=anomaly.step,
                    anomaly_kind=anomaly.kind)


# --- Quality and recommendation over the stored state and history ------------------------------


def trend_analysis(job: TrainingJob) -> dict[str, Any]:
    """Best step, overfitting/divergence/plateau and the recommendation, from the trend state
    the ingestion keeps current (no history read): the metrics API's `analysis` and the
    dashboard's advice."""
    return trend_summary(TrendState.from_dict(job.trend_state or {}))


def job_points(job_id: Any) -> list[Point]:
    """The stored history as analyser points. One row per step, so no report times are needed
    (they only order several reports of one step); reading them would double the cost."""
    rows = MetricPoint.objects.filter(job_id=job_id).order_by("step").values_list("step", *VALUE_FIELDS)
    return [Point(*row) for row in rows]


def score_job(job: TrainingJob, points: list[Point] | None = None) -> QualityScore:
    points = job_points(job.pk) if points is None else points
    final = (job.results or {}).get("final") or {}
    summary = final.get("summary") or {}
    perplexity = validation_perplexity(job)
    initial = next((p.train_loss for p in canonical(points) if p.train_loss is not None), None)
    return quality_score(
        points, total_steps=job.total_steps,
        duration_seconds=_float(summary.get("train_runtime_s")),
        tokens=_float(summary.get("tokens_trained")),
        initial_loss=initial,
        final_train_loss=_float(final.get("final_train_loss", job.latest_loss)),
        final_eval_loss=_float(final.get("final_eval_loss", job.latest_eval_loss)),
        perplexity_base=_float(perplexity.get("base")),
        perplexity_trained=_float(perplexity.get("trained")),
    )


def recommend_job(job_id: Any) -> Recommendation:
    return recommend(job_points(job_id))


def quality_to_dict(score: QualityScore) -> dict[str, Any]:
    data = dataclasses.asdict(score)
    # JSONB refuses NaN and infinities.
    data["measurements"] = {k: (v if v is None or math.isfinite(v) else None)
                            for k, v in data["measurements"].items()}
    return data


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- What a finished job achieved --------------------------------------------------------------

# Where a job can stop, as words after "during".
STAGE_WORDS = {Status.PROVISIONING: "provisioning", Status.PREPROCESSING: "preprocessing",
               Status.MODEL_LOADING: "model loading", Status.TRAINING: "training",
               Status.FINALIZING: "finalization", Status.VALIDATING: "validation",
               Status.RECOVERING: "recovery"}


def last_evaluation(job_id: Any) -> tuple[int, float] | None:
    """The step and held-out loss of the Trainer's latest periodic evaluation (one query): the
    eval_loss the metrics table shows, whose exp() is its perplexity column."""
    row = (MetricPoint.objects.filter(job_id=job_id, eval_loss__isnull=False).order_by("-step")
           .values_list("step", "eval_loss").first())
    return (row[0], row[1]) if row is not None else None


def validation_perplexity(job: TrainingJob) -> dict[str, Any]:
    """The validation step's perplexity evaluator ({"base", "trained", "improvement_pct",
    "samples", "tokens"}), from the validation_results the job stored; {} when there is none.
    The same figures are ModelArtifact.perplexity_* and summary.json's validation.perplexity."""
    evaluators = ((job.results or {}).get("validation") or {}).get("evaluators") or {}
    perplexity = evaluators.get("perplexity") if isinstance(evaluators, dict) else None
    return perplexity if isinstance(perplexity, dict) else {}


# After a cancel the worker gets SIGTERM, checkpoints its last completed step and reports it
# (`interrupted`); a worker silent this long after the cancel is presumed dead.
WORKER_STOP_WAIT = timedelta(minutes=2)
# The reports that are a worker's last word: after the cancel the ingestion takes only
# `interrupted` (and `checkpoint_saved`, which comes before it) from the current attempt.
WORKER_END_EVENTS = (JobEvent.Type.INTERRUPTED, JobEvent.Type.ERROR, JobEvent.Type.COMPLETED)


def worker_stopping(job: TrainingJob, now: datetime | None = None) -> bool:
    """A cancelled job whose current attempt's worker has not yet reported how it stopped, so
    the checkpoint it saves as it stops may still arrive. False once it has reported (an end
    event of that attempt received since the cancel), once the attempt was seen ended, and
    WORKER_STOP_WAIT after the cancel; also when no worker of the attempt ever reported.
    At most two queries, and none for a job cancelled long ago."""
    now = now or timezone.now()
    cancelled_at = job.completed_at
    if job.status != Status.CANCELLED or cancelled_at is None or now - cancelled_at >= WORKER_STOP_WAIT:
        return False
    attempt = job.current_attempt
    if attempt is None or attempt.started_at is None:  # no worker of this attempt ever ran
        return False
    # The cancel closes the attempt's bill at the cancel time (stopping.stop_attempt), which
    # sets ended_at to it: that says nothing of the worker. Another time is the executor's sighting.
    if attempt.ended_at is not None and attempt.ended_at != cancelled_at:
        return False
    return not JobEvent.objects.filter(job_id=job.pk, attempt=job.attempt, event_type__in=WORKER_END_EVENTS,
                                       received_at__gte=cancelled_at).exists()


def job_outcome(job: TrainingJob, *, last_eval: tuple[int, float] | None | bool = False,
                now: datetime | None = None) -> Outcome | None:
    """What a finished job left, for final_verdict; None while it has not ended.

    `last_eval` is last_evaluation(job.pk) when the caller has it (False: read it here, one
    query, and only when validation reported no perplexity)."""
    if not job.is_terminal:
        return None
    perplexity = validation_perplexity(job)
    base, trained = _float(perplexity.get("base")), _float(perplexity.get("trained"))
    if last_eval is False:
        last_eval = last_evaluation(job.pk) if job.status == Status.COMPLETED and (base is None or trained is None) else None
    final = (job.results or {}).get("final") or {}
    eval_step, eval_loss = last_eval if isinstance(last_eval, tuple) else (None, None)
    if eval_loss is None and _float(final.get("final_eval_loss")) is not None:
        eval_step, eval_loss = job.current_step, _float(final.get("final_eval_loss"))
    advice = None
    if job.status == Status.COMPLETED and job.trend_state:
        advice = recommend_from_state(TrendState.from_dict(job.trend_state))
    return Outcome(
        ending=job.status, stage=STAGE_WORDS.get(job.current_stage, ""),
        step=job.current_step, total_steps=job.total_steps, checkpoint_step=job.last_checkpoint_step,
        perplexity_base=base, perplexity_trained=trained, eval_loss=eval_loss, eval_step=eval_step,
        heldout_samples=_int(perplexity.get("samples")), heldout_tokens=_int(perplexity.get("tokens")),
        error=str(job.mask_secret(job.error_message or "")), error_type=job.error_type,
        suggested_fix=str(job.mask_secret(job.error_suggested_fix or "")), advice=advice,
        worker_stopping=worker_stopping(job, now),
    )


def job_verdict(job: TrainingJob, outcome: Outcome | None = None) -> Verdict | None:
    """final_verdict of a finished job (None while it runs: then the advice applies)."""
    outcome = outcome or job_outcome(job)
    return final_verdict(outcome) if outcome is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
