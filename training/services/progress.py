"""Where a running job is and how long it has left, for every view of it (the API's job detail,
the dashboard, `manage.py train`'s progress line) and for the job's
`estimated_time_remaining_minutes`, which the ingestion keeps current.

The figures come from the current attempt's latest heartbeat (gpu_worker.callbacks.JobState:
stage, step, total steps, the measured seconds per step, validation samples done/total and the
seconds per sample) and the job's estimate; the arithmetic is the pure
`training.estimate.remaining_time`. A finished job has no remaining time and no live progress.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..estimate import Progress, Remaining, remaining_time
from ..models import JobEvent, TrainingJob
from .reports import INT_MAX, number


def latest_heartbeat(job: TrainingJob) -> tuple[dict[str, Any], datetime | None]:
    """The current attempt's newest heartbeat data (checked: numbers or None) and when it came."""
    row = (JobEvent.objects.filter(job_id=job.pk, event_type=JobEvent.Type.HEARTBEAT, attempt=job.attempt)
           .order_by("-received_at", "-id").values_list("payload", "received_at").first())
    if row is None:
        return {}, None
    return read_heartbeat(row[0]), row[1]


def read_heartbeat(data: Any) -> dict[str, Any]:
    """A heartbeat's progress fields as numbers (or None): the worker's data is not trusted."""
    data = data if isinstance(data, dict) else {}
    ints = ("step", "total_steps", "validation_done", "validation_total")
    floats = ("seconds_per_step", "seconds_per_validation_sample")
    checked: dict[str, Any] = {name: _int(data.get(name)) for name in ints}
    checked.update({name: number(data.get(name)) for name in floats})
    if checked["total_steps"] == 0:
        checked["total_steps"] = None
    return checked


def _int(value: Any) -> int | None:
    """A count that fits the job's integer columns, else None (a wild value is no progress)."""
    value = number(value, integer=True)
    return value if value is not None and value <= INT_MAX else None


def stage_started_at(job: TrainingJob) -> datetime | None:
    """When the job entered its current status (its newest status_changed event)."""
    return (JobEvent.objects.filter(job_id=job.pk, event_type=JobEvent.Type.STATUS_CHANGED,
                                    new_status=job.status)
            .order_by("-received_at", "-id").values_list("received_at", flat=True).first())


def remaining(job: TrainingJob, heartbeat: dict[str, Any], *, reported_at: datetime | None = None,
              now: datetime | None = None, stage_since: datetime | None = None) -> Remaining | None:
    """What is left of `job` given a heartbeat's (checked) data; None for a finished job.

    A measured figure was true when the heartbeat left the worker: the time since is taken off.
    A job with no estimate has nothing to go on until a step or sample is timed: None, not 0s.
    """
    if job.is_terminal:
        return None
    now = now or timezone.now()
    since = stage_since if stage_since is not None else stage_started_at(job)
    estimate = job.estimate or {}
    result = remaining_time(Progress(
        status=job.status,
        stage_elapsed_seconds=(now - since).total_seconds() if since else 0.0,
        stage_minutes=_floats(estimate.get("stages")),
        throughput_minutes=_floats(estimate.get("throughput_minutes")),
        estimated_total_steps=int(number(estimate.get("total_steps"), integer=True) or 0),
        step=heartbeat.get("step") if heartbeat.get("step") is not None else job.current_step,
        total_steps=heartbeat.get("total_steps") or job.total_steps,
        seconds_per_step=heartbeat.get("seconds_per_step"),
        validation_done=heartbeat.get("validation_done"),
        validation_total=heartbeat.get("validation_total"),
        seconds_per_validation_sample=heartbeat.get("seconds_per_validation_sample"),
    ))
    if result is not None and result.basis == "estimate" and not estimate.get("stages"):
        return None
    if result is not None and result.basis == "measured" and reported_at is not None:
        gone = max((now - reported_at).total_seconds(), 0.0)
        taken = min(gone, result.stage_seconds)
        result = Remaining(result.stage_seconds - taken, result.total_seconds - taken, result.basis, result.overdue)
    return result


def remaining_minutes(result: Remaining | None) -> int | None:
    """For estimated_time_remaining_minutes: None when finished or beyond what the column holds."""
    if result is None or not math.isfinite(result.total_seconds):
        return None
    minutes = math.ceil(result.total_seconds / 60)
    return minutes if minutes <= INT_MAX else None


def job_progress(job: TrainingJob, *, now: datetime | None = None) -> dict[str, Any]:
    """The live progress as the API and the dashboard show it (JSON-safe).

    `step`/`total_steps`: the heartbeat's if newer than the last metrics batch; `validation`:
    samples done of total while validating; `eta_seconds`: the whole job's remaining time,
    `stage_eta_seconds`: the current stage's; `basis`: "measured" or "estimate"; `overdue`:
    the stage ran past its estimate. A finished job: its final step, everything else null.
    """
    empty = {"stage": job.status, "step": job.current_step, "total_steps": job.total_steps, "validation": None,
             "eta_seconds": None, "stage_eta_seconds": None, "basis": None, "overdue": False}
    if job.is_terminal or not job.was_started:
        return empty
    heartbeat, reported_at = latest_heartbeat(job)
    result = remaining(job, heartbeat, reported_at=reported_at, now=now)
    step = max((s for s in (job.current_step, heartbeat.get("step")) if s is not None), default=None)
    validation = None
    if job.status == "validating" and heartbeat.get("validation_total"):
        validation = {"done": heartbeat.get("validation_done") or 0, "total": heartbeat["validation_total"]}
    return {**empty, "step": step, "total_steps": heartbeat.get("total_steps") or job.total_steps,
            "validation": validation,
            "eta_seconds": round(result.total_seconds) if result else None,
            "stage_eta_seconds": round(result.stage_seconds) if result else None,
            "basis": result.basis if result else None, "overdue": bool(result and result.overdue)}


def _floats(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if number(v) is not None}
