"""What notifications does when something happens to a job (the job-event hook, training.events).

One receiver for every event, in the recording transaction (the hook's default timing): the
notification rows are written with the event, in the hook's savepoint, so an event never
exists without its notifications and a failure here never rolls the event back. Sending
happens after commit, in tasks.
"""

from __future__ import annotations

from training.events import on_job_event
from training.models import JobEvent

from .services import notify_about_event

TOLD = (JobEvent.Type.STATUS_CHANGED, JobEvent.Type.RESUMED, JobEvent.Type.MILESTONE,
        JobEvent.Type.ANOMALY, JobEvent.Type.HEARTBEAT, JobEvent.Type.VALIDATION_FINISHED,
        JobEvent.Type.REVIEW)


@on_job_event(*TOLD)
def notify_on_event(event: JobEvent) -> None:
    notify_about_event(event)
