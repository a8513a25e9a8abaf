"""Celery tasks, under their historical names (`training.tasks.<name>`).

Each task is defined next to the service function it wraps and only re-exported here, so Celery's
autodiscovery finds them and `from training import tasks; tasks.launch_job` keeps working. Each
takes a job's primary key as a string, re-fetches, and returns early when there is nothing to do,
so redelivery (acks_late, CELERY_TASK_REJECT_ON_WORKER_LOST) and duplicate enqueues are harmless.
"""

from __future__ import annotations

from .services.datasets import validate_dataset  # noqa: F401
from .services.launching import launch_job  # noqa: F401
from .services.polling import poll_active_jobs, poll_job  # noqa: F401
from .services.stopping import stop_job_execution  # noqa: F401
