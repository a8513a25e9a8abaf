"""Stopping a job's worker: SIGTERM (the worker commits an emergency checkpoint), SIGKILL after
a grace period, then the attempt's bill closed.

The stop returns as soon as the signal is sent: the executor escalates to SIGKILL on its own
(the local supervisor, a pod's termination), so a cancel through the API, the admin or Ctrl-C in
`manage.py train` answers at once, also when tasks run in-process (CELERY_TASK_ALWAYS_EAGER).

Rules: only a recorded launch has a worker to stop; a failure to stop is logged, never raised
(the cancel has already happened; the poll closes the bill of a worker that lingers).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.utils import timezone

from ..executors import Executor, ExecutorError, get_executor
from ..lifecycle import TERMINAL
from ..models import TrainingJob
from .billing import close_billing

logger = logging.getLogger(__name__)


def stop_attempt(job_id: Any) -> None:
    """Stop the job's worker (SIGTERM, SIGKILL after a grace period) and close its bill."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    attempt = job.current_attempt
    if attempt is None or not attempt.launch_recorded:
        if attempt is not None and job.status in TERMINAL:
            close_billing(job, until=timezone.now())  # cancelled before its worker was recorded
        return
    cancel_quietly(get_executor(job.executor), job)
    job.refresh_from_db()
    if job.status in TERMINAL:
        close_billing(job, until=job.completed_at or timezone.now())


def cancel_quietly(executor: Executor, job: TrainingJob, *, wait: bool = False) -> None:
    """Ask the worker to stop; with `wait`, also wait (a grace period at most) until it is gone."""
    try:
        executor.cancel(job)
        if wait and not executor.wait_stopped(job):
            logger.error("the worker of job %s was still there after its stop grace period", job.pk)
    except ExecutorError as exc:
        logger.error("could not stop the worker of job %s: %s", job.pk, exc.message)


@shared_task(name="training.tasks.stop_job_execution")
def stop_job_execution(job_id: str) -> None:
    """Stop the worker of a cancelled job and record its final cost."""
    stop_attempt(job_id)
