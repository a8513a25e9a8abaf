"""Celery tasks: thin wrappers over training.services.execution.

Each takes a job's primary key as a string, re-fetches, and returns early when there is nothing
to do, so redelivery (acks_late, CELERY_TASK_REJECT_ON_WORKER_LOST) and duplicate enqueues are
harmless. The work lives in plain functions that tests and the `train` command call directly.
"""

from __future__ import annotations

from celery import shared_task

from .services import datasets, execution

# Validating a dataset near the upload limit (1 GiB by default) takes longer than the default
# CELERY_TASK_TIME_LIMIT allows a launch or a poll.
DATASET_TASK_TIME_LIMIT = 6 * 3600


@shared_task
def launch_job(job_id: str) -> None:
    """Launch the job's next attempt (QUEUED/RECOVERING), or finish a launch that died mid-way."""
    execution.launch_attempt(job_id)


@shared_task
def stop_job_execution(job_id: str) -> None:
    """Stop the worker of a cancelled job and record its final cost."""
    execution.stop_attempt(job_id)


@shared_task
def poll_job(job_id: str) -> None:
    """Poll one job's worker: pod state, cost, interruption."""
    execution.poll_job(job_id)


@shared_task
def poll_active_jobs() -> int:
    """The beat task (every 15 s, django-celery-beat PeriodicTask): one poll_job per active job."""
    return execution.poll_active_jobs()


@shared_task(time_limit=DATASET_TASK_TIME_LIMIT, soft_time_limit=DATASET_TASK_TIME_LIMIT - 60)
def validate_dataset(blob_id: str) -> None:
    """Validate an uploaded dataset's stored bytes (streaming) and publish the results to every
    record over them; progress is stored on the blob as it goes. A no-op once validated."""
    datasets.validate_blob(blob_id)
