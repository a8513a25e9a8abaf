"""Celery tasks: thin wrappers over training.services.execution.

Each takes a job's primary key as a string, re-fetches, and returns early when there is nothing
to do, so redelivery (acks_late, CELERY_TASK_REJECT_ON_WORKER_LOST) and duplicate enqueues are
harmless. The work lives in plain functions that tests and the `train` command call directly.
"""

from __future__ import annotations

from celery import shared_task

from .services import execution


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
