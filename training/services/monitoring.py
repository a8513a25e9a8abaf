"""Trend analysis wired into metric ingestion (docs/analysis.md, "Incremental analysis").

`analyse_metrics(job_id, points)` runs inside the webhook's transaction, after a metrics batch
is stored, with the job's row already locked by the ingestion (that lock is what serialises
the read-update-write of `TrainingJob.trend_state`). It folds the batch into the stored
`TrendState` and writes one JobEvent per new finding: `anomaly` for divergence, spikes,
overfitting, plateaus, new bests and stalls, `milestone` for 25/50/75/100 %. The analyser
reports each finding once per job, so a resent or reordered batch adds no events.

`finish_analysis(job_id)` runs when the job completes: it settles the last points
(`final=True`) and stores the quality score in `TrainingJob.quality`.

Both are a handful of queries and pure-Python arithmetic over a few KB of state; the quality
score reads the job's metric history once, on completion only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import analysis
from ..lifecycle import Status
from ..models import JobEvent, MetricPoint, TrainingJob

logger = logging.getLogger(__name__)

STATE_FIELDS = ("trend_state", "milestones", "total_steps")


def analyse_metrics(job_id: Any, points: Iterable[Mapping[str, Any]], *, now: datetime | None = None,
                    job: TrainingJob | None = None, total_steps: int | None = None) -> list[analysis.Anomaly]:
    """Fold a stored metrics batch into the job's trend state; return (and record) what is new.

    `points` are mappings with "step" and any of the analyser's value fields (a webhook point
    or a MetricPoint's values); they are stamped with `now` unless they carry "at"/"reported_at".
    The caller holds the job's row lock. The ingestion passes the `job` it read under that lock
    (its trend_state and milestones are current: only this module writes them) and the batch's
    `total_steps`, which saves a query per batch.
    """
    now = now or timezone.now()
    stamped = [analysis.point_from_mapping({"reported_at": now, **p}) for p in points]
    known = None
    if job is not None:
        known = {"trend_state": job.trend_state, "milestones": job.milestones,
                 "total_steps": total_steps or job.total_steps}
    return _update(job_id, stamped, now=now, final=False, known=known)


def finish_analysis(job_id: Any, *, now: datetime | None = None) -> analysis.QualityScore | None:
    """The run has ended: analyse the last points and, if it completed, score its quality."""
    now = now or timezone.now()
    _update(job_id, [], now=now, final=True)
    job = TrainingJob.objects.get(pk=job_id)
    if job.status != "completed":
        return None
    score = score_job(job)
    TrainingJob.objects.filter(pk=job_id).update(quality=quality_to_dict(score))
    return score


def check_stall(job_id: Any, *, now: datetime | None = None) -> list[analysis.Anomaly]:
    """For the periodic poll: report a stall (no new step for TrendConfig.stall_minutes) of a
    training job, once. The row lock keeps this read-modify-write of trend_state from racing
    the webhook's, which holds the same lock."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (TrainingJob.objects.select_for_update().filter(pk=job_id, status=Status.TRAINING)
               .values(*STATE_FIELDS).first())
        if row is None:
            return []
        return _update(job_id, [], now=now, final=False, check_stall=True, known=row)


def _update(job_id: Any, points: list[analysis.Point], *, now: datetime, final: bool,
            check_stall: bool = False, known: dict[str, Any] | None = None) -> list[analysis.Anomaly]:
    row = known or TrainingJob.objects.filter(pk=job_id).values(*STATE_FIELDS).first()
    if row is None:
        return []
    state = analysis.TrendState.from_dict(row["trend_state"] or {})
    state, anomalies = analysis.update_trend_state(
        state, points, total_steps=row["total_steps"], final=final,
        now=now.timestamp() if check_stall else None,
    )
    milestones = sorted(set(row["milestones"] or []) | set(state.milestones))
    TrainingJob.objects.filter(pk=job_id).update(trend_state=state.to_dict(), milestones=milestones)
    if anomalies:
        JobEvent.objects.bulk_create([_event(job_id, a, now) for a in anomalies])
    return anomalies


def _event(job_id: Any, anomaly: analysis.Anomaly, now: datetime) -> JobEvent:
    is_milestone = anomaly.kind == "milestone"
    payload = {"kind": anomaly.kind, "step": anomaly.step, "message": anomaly.message,
               "suggested_action": anomaly.suggested_action}
    if is_milestone:
        payload["percent"] = _milestone_percent(anomaly.message)
    return JobEvent(
        job_id=job_id, event_type=JobEvent.Type.MILESTONE if is_milestone else JobEvent.Type.ANOMALY,
        severity=anomaly.severity, source="analysis", payload=payload,
        processed=True, received_at=now, processed_at=now,
    )


def _milestone_percent(message: str) -> int | None:
    # The analyser's message starts "Training 25% complete"; the percentage is the event's key.
    head = message.split("%", 1)[0].rsplit(" ", 1)[-1]
    return int(head) if head.isdigit() else None


# --- Quality and recommendation over the stored history ----------------------------------------


def job_points(job_id: Any) -> list[analysis.Point]:
    """The stored history as analyser points. One row per step, so no report times are needed
    (they only order several reports of one step); reading them would double the cost."""
    rows = MetricPoint.objects.filter(job_id=job_id).order_by("step").values_list("step", *analysis.VALUE_FIELDS)
    return [analysis.Point(*row) for row in rows]


def score_job(job: TrainingJob, points: list[analysis.Point] | None = None) -> analysis.QualityScore:
    points = job_points(job.pk) if points is None else points
    final = (job.results or {}).get("final") or {}
    summary = final.get("summary") or {}
    perplexity = (((job.results or {}).get("validation") or {}).get("evaluators") or {}).get("perplexity") or {}
    initial = next((p.train_loss for p in analysis.canonical(points) if p.train_loss is not None), None)
    return analysis.quality_score(
        points, total_steps=job.total_steps,
        duration_seconds=_float(summary.get("train_runtime_s")),
        tokens=_float(summary.get("tokens_trained")),
        initial_loss=initial,
        final_train_loss=_float(final.get("final_train_loss", job.latest_loss)),
        final_eval_loss=_float(final.get("final_eval_loss", job.latest_eval_loss)),
        perplexity_base=_float(perplexity.get("base")) if isinstance(perplexity, dict) else None,
        perplexity_trained=_float(perplexity.get("trained")) if isinstance(perplexity, dict) else None,
    )


def recommend_job(job_id: Any) -> analysis.Recommendation:
    return analysis.recommend(job_points(job_id))


def quality_to_dict(score: analysis.QualityScore) -> dict[str, Any]:
    data = dataclasses.asdict(score)
    # JSONB refuses NaN and infinities.
    data["measurements"] = {k: (v if v is None or math.isfinite(v) else None)
                            for k, v in data["measurements"].items()}
    return data


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
