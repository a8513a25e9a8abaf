"""Launching an attempt: move the job to PROVISIONING with the next attempt number, ask its
executor to start the worker, and record what it started.

Rules:

- QUEUED or RECOVERING moves to PROVISIONING with attempt + 1 and a new JobAttempt row, in one
  transaction. A PROVISIONING job whose attempt has no recorded launch is a redelivered launch
  whose process died mid-way: it launches the same attempt again (the executor's launch is
  idempotent per attempt). Anything else is already launched, or finished: nothing to do.
- The executor's ref and rate are recorded only while the job is still active on that attempt;
  a job cancelled (or superseded) meanwhile has the new worker stopped at once.
- A transient launch failure (no capacity, network) keeps the job PROVISIONING and tries the same
  attempt again after a doubling backoff, LAUNCH_RETRY_LIMIT times, each a `launch_retry` event;
  then, or at once for a permanent failure, the job fails with the executor's classified error.

Every function takes a job id, re-fetches and returns early when there is nothing to do, so a
task may run twice (Celery redelivery, two beat schedulers) without harm.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..events import record_event
from ..executors import ExecutorError, get_executor
from ..lifecycle import ACTIVE, Status, transition
from ..models import JobAttempt, JobEvent, TrainingJob
from . import worker_config
from .billing import close_billing, hourly_rate_for
from .stopping import cancel_quietly

logger = logging.getLogger(__name__)


def launch_attempt(job_id: Any) -> None:
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    if job.status in (Status.QUEUED, Status.RECOVERING):
        with transaction.atomic():
            moved = transition(
                job.pk, Status.PROVISIONING, sources={job.status}, attempt=job.attempt,
                message=f"launching attempt {job.attempt + 1}", payload={"attempt": job.attempt + 1},
                updates={"attempt": F("attempt") + 1, "attempt_started_at": timezone.now(),
                         "last_heartbeat_at": None},
            )
            if not moved:
                return  # Another launch task (or a cancel) got there first.
            job.refresh_from_db()
            JobAttempt.for_job(job).save()
    elif not (job.status == Status.PROVISIONING and not launch_recorded(job)):
        return  # Already launched, or finished.

    executor = get_executor(job.executor)
    try:
        result = executor.launch(job, worker_config.build_worker_config(job))
    except ExecutorError as exc:
        if exc.transient and schedule_launch_retry(job, exc):
            return
        retries = JobAttempt.objects.of(job.pk, job.attempt).values_list("launch_retries", flat=True).first() or 0
        message = exc.message + (f" (still failing after {retries} automatic retries)" if retries else "")
        if fail_job(job.pk, job.attempt, exc.error_type, message, exc.suggested_fix,
                    details={"transient": exc.transient, "suggested_config": exc.suggested_config,
                             "launch_retries": retries}):
            job.refresh_from_db()
            close_billing(job, until=timezone.now(), reason=message)
        return
    rate = result.hourly_rate or hourly_rate_for(job)
    with transaction.atomic():
        attempt = JobAttempt.objects.locked(job.pk, job.attempt, status__in=ACTIVE)
        if attempt is not None:
            TrainingJob.objects.filter(pk=job.pk).update(hourly_rate=rate)
            attempt.record_launch(result.ref, rate, timezone.now())
    if attempt is None:
        # Cancelled (or superseded) while we launched; the stop task found no worker to stop.
        job.current_attempt = JobAttempt.for_job(job, ref=result.ref)
        cancel_quietly(executor, job)
        return
    job.hourly_rate, job.current_attempt = rate, attempt
    record_event(job.pk, JobEvent.Type.LAUNCHED, source="executor", attempt=job.attempt,
                 payload={"executor": job.executor, "ref": result.ref, "hourly_rate": str(rate)})


def launch_recorded(job: TrainingJob) -> bool:
    """Whether the executor's launch of the current attempt returned and was stored."""
    attempt = job.current_attempt
    return attempt is not None and attempt.launch_recorded


def launch_backoff_seconds(retry: int, base: int, cap: int) -> int:
    """Seconds to wait before automatic launch retry number `retry` (0-based): base x 2^retry,
    capped. Pure; Hypothesis-tested (never below base, never above cap, never decreasing)."""
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry}")
    return min(cap, base * (2 ** min(retry, 32)))


def schedule_launch_retry(job: TrainingJob, exc: ExecutorError) -> bool:
    """A transient launch failure (no capacity, network): try the same attempt again after a
    backoff, visibly (a `launch_retry` event says why and when). False once LAUNCH_RETRY_LIMIT
    retries are spent: the caller fails the job with the executor's explanation.

    The job stays PROVISIONING with no launch recorded and the attempt's `retry_at` set. A Celery
    task is enqueued with that countdown; the poll (polling.relaunch_if_stuck) launches it if that
    task is lost, or, with in-process tasks (no countdown there), once retry_at has passed.
    """
    limit = settings.LAUNCH_RETRY_LIMIT
    with transaction.atomic():
        attempt = JobAttempt.objects.locked(job.pk, job.attempt, status__in={Status.PROVISIONING})
        if attempt is None:
            return True  # cancelled (or superseded) meanwhile: nothing to retry
        retries = attempt.launch_retries
        if retries >= limit:
            return False
        delay = launch_backoff_seconds(retries, settings.LAUNCH_RETRY_BASE_SECONDS, settings.LAUNCH_RETRY_MAX_SECONDS)
        retry_at = timezone.now() + timedelta(seconds=delay)
        attempt.note_launch_retry(exc.error_type, retry_at)
        record_event(
            job.pk, JobEvent.Type.LAUNCH_RETRY, source="executor", attempt=job.attempt,
            severity=JobEvent.Severity.WARNING,
            payload={"error_type": exc.error_type, "message": exc.message, "suggested_fix": exc.suggested_fix,
                     "retry": retries + 1, "limit": limit, "delay_seconds": delay,
                     "retry_at": retry_at.isoformat()},
        )
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            transaction.on_commit(lambda: launch_job.apply_async((str(job.pk),), countdown=delay))
    logger.warning("job %s: launch failed (%s); retry %s of %s in %s s", job.pk, exc.error_type,
                   retries + 1, limit, delay)
    return True


def fail_job(job_id: Any, attempt: int | None, error_type: str, message: str, fix: str = "", *,
             details: dict | None = None, sources: set[Status] | frozenset[Status] | None = None) -> bool:
    """Move the job to FAILED with a classified error (type, message, suggested fix, details)."""
    return transition(
        job_id, Status.FAILED, attempt=attempt, sources=sources, message=message,
        updates={"error_type": error_type, "error_message": message, "error_suggested_fix": fix,
                 "error_details": details or {}},
    )


@shared_task(name="training.tasks.launch_job")
def launch_job(job_id: str) -> None:
    """Launch the job's next attempt (QUEUED/RECOVERING), or finish a launch that died mid-way."""
    launch_attempt(job_id)
