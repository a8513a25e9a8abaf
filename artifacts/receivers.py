"""What artifacts does when something happens to a job (the job-event hook, training.events)."""

from __future__ import annotations

from training.events import on_job_event
from training.models import JobEvent
from training.states import Status

from .tasks import register_job_artifacts


@on_job_event(JobEvent.Type.STATUS_CHANGED, after_commit=True)
def register_completed_job(event: JobEvent) -> None:
    """A completed job's adapter and reports are in storage by now (the worker uploads before it
    reports completion); cataloguing them lists storage, so it runs as a task after commit."""
    if event.new_status == Status.COMPLETED:
        register_job_artifacts.delay(str(event.job_id))
