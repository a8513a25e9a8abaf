"""What monitoring does when something happens to a job: its receivers on the job-event hook
(training.events), connected by MonitoringConfig.ready().

All three run inside the recording transaction (the hook's default timing), under the job's row
lock the ingestion holds, so the trend state agrees with the events in report order; a failure
is logged by the hook and never rolls back the ingestion.

- `metrics`: fold the stored batch into the trend state (anomaly and milestone events).
- `status_changed` to completed: settle the last points and store the quality score.
- `heartbeat` of a training job: the stall check (alive but not advancing), once per step.
"""

from __future__ import annotations

import logging
from typing import Any

from training.events import on_job_event
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint

from . import services
from .points import VALUE_FIELDS

logger = logging.getLogger(__name__)


def _context(event: JobEvent) -> dict[str, Any]:
    """What the ingestion knew when it announced the event (training.events: `event.context`)."""
    return getattr(event, "context", None) or {}


@on_job_event(JobEvent.Type.METRICS)
def analyse_metrics_batch(event: JobEvent) -> None:
    """Fold a stored metrics batch into the trend state, as the ingestion cleaned and merged it."""
    context = _context(event)
    if "points" in context:
        services.analyse_metrics(event.job_id, context["points"], now=context.get("now") or event.received_at,
                                 job=context.get("job"), total_steps=context.get("total_steps"))
        return
    if event.processing_error:
        return  # stored without effect: nothing was written to analyse
    # Announced without the ingestion's context: the batch's steps, as stored (one row per step,
    # its reports already merged; reported_at stamps them as `now` would).
    steps = sorted({p["step"] for p in (event.payload or {}).get("points", [])
                    if isinstance(p, dict) and isinstance(p.get("step"), int)})
    rows = MetricPoint.objects.filter(job_id=event.job_id, step__in=steps).order_by("step").values(
        "step", "reported_at", *VALUE_FIELDS)
    services.analyse_metrics(event.job_id, list(rows), now=event.received_at)


@on_job_event(JobEvent.Type.STATUS_CHANGED)
def finish_on_completion(event: JobEvent) -> None:
    """The job completed: settle the points still waiting for later ones, score its quality."""
    if event.new_status == Status.COMPLETED:
        services.finish_analysis(event.job_id, now=event.received_at)


@on_job_event(JobEvent.Type.HEARTBEAT)
def check_stall_on_heartbeat(event: JobEvent) -> None:
    """A heartbeat of a training job whose steps have not advanced: one stall event per step.
    No write unless the stall is new."""
    context = _context(event)
    services.check_stall(event.job_id, now=context.get("now") or event.received_at, job=context.get("job"))
