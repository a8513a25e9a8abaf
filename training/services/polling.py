"""Watching running jobs: poll each current attempt's worker through its executor, keep its bill
current, and decide when the attempt is interrupted.

Rules:

- A worker that is gone, was killed by a signal, exited INTERRUPTED or STOPPED_BY_CONTROL_PLANE
  (gpu_worker.contract.ExitCode) is an interruption at once. Any other exit first gets
  COMPLETION_GRACE_SECONDS for its `completed` or `error` report, which may still be in flight
  (ingestion then moves the job); without one, USER_ERROR fails the job and SUCCESS,
  UNKNOWN_ERROR, INFRASTRUCTURE_ERROR are interruptions (the next attempt resumes from the
  newest committed checkpoint).
- Silence alone (training/liveness.py) does not interrupt a worker the executor reports running
  or starting: start-up (pod start, image pull, imports, model download and load) has
  WORKER_STARTUP_GRACE_SECONDS from the launch before the first event is due; after that (or
  after the last event, HEARTBEAT_STALE_FACTOR intervals) a silent worker is late, which one
  `anomaly` warning (kind heartbeat_stale) per silent spell says; only past
  HEARTBEAT_HARD_LIMIT_SECONDS of silence is it stopped as hung and treated as interrupted.
  "unknown" (could not ask) is never an interruption by itself.
- A job with no recorded launch (RECOVERING, or PROVISIONING waiting out a launch backoff) is
  launched again if its launch task was lost: past its retry_at, or STUCK_LAUNCH_SECONDS
  without change.
- Stalls (alive but not advancing) are the monitoring app's, from the heartbeat events.

Every function takes a job id, re-fetches and returns early when there is nothing to do.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gpu_worker.contract import ExitCode

from ..events import record_event
from ..executors import ExecutorError, PodState, get_executor
from ..lifecycle import ACTIVE, TERMINAL, Status
from ..models import JobAttempt, JobEvent, TrainingJob
from .billing import BILLING_CLOSE_WINDOW, bill, close_billing
from .launching import fail_job, launch_job, launch_recorded
from .recovery import handle_interruption
from .stopping import cancel_quietly

logger = logging.getLogger(__name__)

# How long a worker's terminal report may trail its exit before we stop waiting for it.
COMPLETION_GRACE_SECONDS = 30
# A launch that recorded nothing for this long died with its task; enqueue it again.
STUCK_LAUNCH_SECONDS = settings.CELERY_TASK_TIME_LIMIT + 60


def poll_attempt(job_id: Any) -> PodState | None:
    """Look at the worker of the job's current attempt, bill it, and detect interruptions."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    now = timezone.now()
    attempt = job.current_attempt
    if job.status in TERMINAL:
        close_billing(job, until=(attempt.ended_at if attempt else None) or job.completed_at or now)
        return None
    if job.status == Status.RECOVERING or (job.status == Status.PROVISIONING and not launch_recorded(job)):
        relaunch_if_stuck(job, now)
        return None
    if not job.is_active:
        return None

    executor = get_executor(job.executor)
    try:
        state = executor.poll(job)
    except ExecutorError as exc:
        state = PodState("unknown", detail=str(exc))
    ended_at = attempt.ended_at if attempt else None
    with transaction.atomic():
        current = JobAttempt.objects.locked(job.pk, job.attempt)
        if current is not None:
            if current.note_state(state.state, state.exit_code):
                record_event(
                    job.pk, JobEvent.Type.POD_STATE, source="executor", attempt=job.attempt,
                    severity=JobEvent.Severity.WARNING if state.state in ("gone", "unknown") else JobEvent.Severity.INFO,
                    payload={"state": state.state, "exit_code": state.exit_code, "detail": state.detail},
                    received_at=now)
            if state.state in ("exited", "gone"):
                ended_at = current.note_end(now)
            bill(job, current, until=ended_at or now)
            job.current_attempt = current

    reason = interruption_reason(job, state, now=now, ended_at=ended_at)
    if not reason and state.state in ("running", "starting"):
        warn_if_silent(job, state, now=now)
    if reason == "user_error":
        fail_job(job.pk, job.attempt, "worker_exit",
                 f"The worker stopped with a user error (exit code {ExitCode.USER_ERROR:d}) and its error report "
                 "never arrived.",
                 f"Read the worker log for the reason: {job.attempt_ref.get('log') or 'see the executor'}.",
                 sources=ACTIVE - {Status.RECOVERING})
    elif reason:
        if state.state in ("running", "starting"):
            cancel_quietly(executor, job, wait=True)  # A hung worker must not go on beside its successor.
        handle_interruption(job.pk, job.attempt, reason)
    return state


def interruption_reason(job: TrainingJob, state: PodState, *, now: datetime, ended_at: datetime | None) -> str:
    """Why the current attempt counts as interrupted ("" if it does not; "user_error" to fail)."""
    if state.state == "gone":
        return f"worker gone: {state.detail}"
    if state.state in ("running", "starting"):
        # The executor says the worker is there, so silence alone is lateness (warn_if_silent),
        # not an interruption: a pod still pulling its image or loading a 70B model, or a process
        # importing torch on a loaded machine, sends nothing for a while. Only a worker silent
        # past the hard limit is taken for hung (or a pod that never came up).
        if job.heartbeat_is_hung(now):
            deadlines = job.silence_deadlines()
            silent = int((now - deadlines.since).total_seconds())
            since = "since its last event" if deadlines.started else "since its launch, none at all"
            return (f"no heartbeat for {silent} s ({since}) while the executor reports it {state.state}: "
                    f"taken for hung past HEARTBEAT_HARD_LIMIT_SECONDS={settings.HEARTBEAT_HARD_LIMIT_SECONDS}")
        return ""
    if state.state != "exited":
        return ""  # unknown: we could not ask, which proves nothing
    code = state.exit_code
    if code is not None and code < 0:
        return f"worker killed ({state.detail})"
    if code == ExitCode.INTERRUPTED:
        return f"worker interrupted (exit code {code})"
    if code == ExitCode.STOPPED_BY_CONTROL_PLANE:
        return f"worker stopped by the control plane (exit code {code}) while the attempt was current"
    # RunPod does not report a container's exit code (None): the worker's own terminal report,
    # if any, says how it ended.
    terminal_reports = {
        None: (JobEvent.Type.COMPLETED, JobEvent.Type.ERROR), ExitCode.SUCCESS: (JobEvent.Type.COMPLETED,),
    }.get(code, (JobEvent.Type.ERROR,))
    if _has_worker_event(job, *terminal_reports):
        return ""  # Ingestion owns the terminal report; it moves the job.
    if ended_at is not None and now - ended_at < timedelta(seconds=COMPLETION_GRACE_SECONDS):
        return ""  # The worker's last report may still be in flight.
    if code is None:
        return f"worker exited without a final report ({state.detail or 'exit code unknown'})"
    if code == ExitCode.USER_ERROR:
        return "user_error"  # Retrying a configuration or data error cannot help.
    if code == ExitCode.SUCCESS:
        return "worker exited cleanly but its completed report never arrived"
    return f"worker exited with code {code} without an error report"


def warn_if_silent(job: TrainingJob, state: PodState, *, now: datetime) -> bool:
    """A worker the executor reports running or starting, late with its events but not yet hung:
    say so with one `anomaly` warning per silent spell (keyed by its last sign of life, kept on
    the attempt as `silence_warned`), and leave it running. Returns whether it warned."""
    deadlines = job.silence_deadlines()
    if deadlines is None or now <= deadlines.late_at:
        return False
    key = deadlines.since.isoformat()
    attempt = job.current_attempt
    if attempt is not None and attempt.silence_warned == key:
        return False
    silent = int((now - deadlines.since).total_seconds())
    hung_at = deadlines.hung_at.isoformat(timespec="seconds")
    if deadlines.started:
        message = (f"No heartbeat for {silent} s (expected every {settings.HEARTBEAT_INTERVAL_SECONDS} s), but "
                   f"the executor reports the worker {state.state}, so it is left running. If it stays silent "
                   f"until {hung_at} it is stopped as hung and the job resumes from its last checkpoint.")
        action = ("Check that the worker can reach PUBLIC_BASE_URL (its events queue up while it cannot) and "
                  "its log for a hang.")
    else:
        message = (f"No event from the worker {silent} s after its launch (start-up grace "
                   f"{settings.WORKER_STARTUP_GRACE_SECONDS} s), but the executor reports it {state.state}: still "
                   "starting (image pull, model download or load), or unable to reach the control plane. If it "
                   f"stays silent until {hung_at} it is stopped and launched again.")
        action = ("Check the worker or pod log, and that PUBLIC_BASE_URL is reachable from the worker; raise "
                  "WORKER_STARTUP_GRACE_SECONDS if start-up is normally this slow.")
    with transaction.atomic():
        # Under the job's lock: of two polls racing here, one warns.
        current = JobAttempt.objects.locked(job.pk, job.attempt)
        if current is None or not current.note_silence_warned(key):
            return False
        record_event(
            job.pk, JobEvent.Type.ANOMALY, source="control_plane", attempt=job.attempt,
            severity=JobEvent.Severity.WARNING, received_at=now, anomaly_kind="heartbeat_stale",
            step=job.current_step,
            payload={"kind": "heartbeat_stale", "step": job.current_step, "message": message,
                     "suggested_action": action, "executor_state": state.state, "silent_seconds": silent,
                     "first_event_received": deadlines.started, "hung_at": deadlines.hung_at.isoformat()})
    logger.warning("job %s attempt %s: silent for %s s, executor says %s; not interrupting before %s",
                   job.pk, job.attempt, silent, state.state, hung_at)
    return True


def _has_worker_event(job: TrainingJob, *event_types: str) -> bool:
    return job.events.filter(event_type__in=event_types, attempt=job.attempt).exists()


def relaunch_if_stuck(job: TrainingJob, now: datetime) -> None:
    """Enqueue the launch of a job with no worker whose launch task was lost."""
    attempt = job.current_attempt
    retry_at = attempt.retry_at if attempt is not None else None
    if retry_at is not None and job.status == Status.PROVISIONING:
        # A launch waiting out its backoff: the countdown task launches it; the poll steps in
        # only if that task was lost (or, with in-process tasks, as soon as the wait is over).
        due = retry_at + timedelta(seconds=0 if settings.CELERY_TASK_ALWAYS_EAGER else STUCK_LAUNCH_SECONDS)
        if now >= due:
            logger.warning("job %s: launch retry due since %s; launching", job.pk, retry_at)
            launch_job.delay(str(job.pk))
        return
    since = job.updated_at or job.attempt_started_at
    if since and now - since > timedelta(seconds=STUCK_LAUNCH_SECONDS):
        logger.warning("job %s has been %s with no worker for %s; launching again", job.pk, job.status, now - since)
        launch_job.delay(str(job.pk))


def jobs_to_poll() -> list[str]:
    """Active jobs, plus recently finished ones whose last attempt's bill is still open."""
    ids = [str(pk) for pk in TrainingJob.objects.active().values_list("pk", flat=True)]
    open_bills = JobAttempt.objects.filter(
        job__status__in=TERMINAL, job__completed_at__gte=timezone.now() - BILLING_CLOSE_WINDOW,
        number=F("job__attempt"), billing_closed=False, ref_recorded_at__isnull=False)
    ids += [str(pk) for pk in open_bills.values_list("job_id", flat=True)]
    return ids


def enqueue_polls() -> int:
    """Enqueue one poll per job to watch (inline when tasks run eagerly); returns how many."""
    ids = jobs_to_poll()
    for job_id in ids:
        # A poll that waited longer than the beat period is superseded by the next one.
        poll_job.apply_async((job_id,), expires=60)
    return len(ids)


@shared_task(name="training.tasks.poll_job")
def poll_job(job_id: str) -> None:
    """Poll one job's worker: pod state, cost, interruption."""
    poll_attempt(job_id)


@shared_task(name="training.tasks.poll_active_jobs")
def poll_active_jobs() -> int:
    """The beat task (every 15 s, django-celery-beat PeriodicTask): one poll_job per active job."""
    return enqueue_polls()
