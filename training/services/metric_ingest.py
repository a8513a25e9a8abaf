"""Applying a `metrics` report: store its points (a newer attempt's figures replace a superseded
attempt's; within an attempt a later partial point fills in, never nulls out), keep the range
summaries current, and move the job's progress and latest_* figures when the batch is news.

Runs inside ingestion's transaction, with the job locked and the report fenced. A batch costs a
fixed number of statements whatever its size, and a re-reported step (a retried batch, a
resumed attempt re-training it) about what a new one does: the points are one upsert, new
steps' summaries are merged in one more.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..models import MetricPoint, TrainingJob
from . import metric_summaries
from . import progress as live_progress
from .reports import Envelope


def apply_metrics(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    # One batch may carry the same step twice (a train log and an eval log): merge them first.
    incoming: dict[int, dict[str, Any]] = {}
    total_steps: int | None = None
    for point in sorted(event.points, key=lambda p: p["step"]):
        merged = incoming.setdefault(point["step"], dict.fromkeys(MetricPoint.VALUE_FIELDS))
        merged.update({k: v for k, v in point["values"].items() if v is not None})
        total_steps = point["total_steps"] or total_steps
    if not incoming:
        return "an empty batch"

    existing = MetricPoint.objects.store_batch(job.pk, event.attempt, incoming, now)
    metric_summaries.update_summaries(job.pk, incoming, existing=existing)

    context["job_updates"].update(_latest(job, event, now, incoming, total_steps))
    # For the hook's receivers (the trend analysis): the batch as stored, merged by step.
    context["points"] = [{"step": step, **values} for step, values in incoming.items()]
    context["total_steps"] = total_steps
    return ""


def _latest(job: TrainingJob, event: Envelope, now: datetime,
            points: dict[int, dict[str, Any]], total_steps: int | None) -> dict[str, Any]:
    """The job's progress and latest_* from the batch's highest step, if that is news (the
    ingestion writes them with the heartbeat, in one UPDATE)."""
    top = max(points)
    fresh_attempt = False
    if job.current_step is not None and top < job.current_step:
        fresh_attempt = _progress_is_from_older_attempt(job, event.attempt)
        if not fresh_attempt:
            return {}  # a late batch: what the job shows is newer

    def latest(name: str) -> Any:
        return next((points[s][name] for s in sorted(points, reverse=True) if points[s][name] is not None), None)

    fields: dict[str, Any] = {"current_step": top}
    for name, column in (("train_loss", "latest_loss"), ("eval_loss", "latest_eval_loss"),
                         ("learning_rate", "latest_learning_rate"), ("epoch", "current_epoch")):
        value = latest(name)
        if value is not None:
            fields[column] = value
    total = total_steps or job.total_steps
    eta = points[top]["eta_seconds"]
    if eta is not None and total and total > top:
        # The worker's training ETA as a step time, so the job's remaining time (training and the
        # stages after it) comes from the same arithmetic as a heartbeat's (services.progress).
        heartbeat = {"step": top, "total_steps": total, "seconds_per_step": eta / (total - top)}
        minutes = live_progress.remaining_minutes(live_progress.remaining(job, heartbeat, now=now))
        if minutes is not None:
            fields["estimated_time_remaining_minutes"] = minutes
    elif eta is not None:
        fields["estimated_time_remaining_minutes"] = math.ceil(eta / 60)
    if total_steps:
        fields["total_steps"] = total_steps
    if total:
        progress = min(Decimal(100), Decimal(top * 100) / Decimal(total)).quantize(Decimal("0.01"))
        # Never backwards within an attempt; a new attempt may honestly start lower.
        fields["progress_percentage"] = progress if fresh_attempt else max(progress, job.progress_percentage)
    return {"updated_at": now, **fields}


def _progress_is_from_older_attempt(job: TrainingJob, attempt: int) -> bool:
    """Whether the job's current_step was reported by an attempt before this one.

    The metric row at that step says who reported it; a new attempt that resumes from an
    earlier checkpoint must be able to move progress below what the lost attempt reached.
    """
    reporter = MetricPoint.objects.filter(job_id=job.pk, step=job.current_step).values_list("attempt", flat=True)
    # order_by(): the default ordering by job would join the job table for nothing.
    return any(row_attempt < attempt for row_attempt in reporter.order_by())
