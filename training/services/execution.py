"""Running jobs: launch an attempt, poll it, recover it, stop it, and account for its cost.

Every function takes a job id, re-fetches, and returns early when there is nothing to do, so a
task that calls it may run twice (Celery redelivery, two beat schedulers) without harm. Status
changes go through `lifecycle.transition` (compare-and-set, guarded by the attempt number).

Rules, in one place:

- launch: QUEUED or RECOVERING moves to PROVISIONING with attempt + 1; a PROVISIONING job with
  no executor ref is a redelivered launch whose process died mid-way and launches the same
  attempt again (the executor's launch is idempotent per attempt). A transient launch failure
  (no capacity, network) keeps the job PROVISIONING and tries the same attempt again after a
  doubling backoff, LAUNCH_RETRY_LIMIT times, each a `launch_retry` event; then the job fails
  with the executor's classified error.
- poll: a worker that is gone, was killed by a signal or exited 4 (interrupted) is an
  interruption at once. Any other exit first gets COMPLETION_GRACE_SECONDS for its `completed`
  or `error` report, which may still be in flight (ingestion then moves the job); without one,
  2 (user error) fails the job and 0, 1, 3 are interruptions (the next attempt resumes from
  the newest committed checkpoint). Silence alone (training/liveness.py) does not interrupt a
  worker the executor reports running or starting: start-up (pod start, image pull, imports,
  model download and load) has WORKER_STARTUP_GRACE_SECONDS from the launch before the first
  event is due; after that (or after the last event, HEARTBEAT_STALE_FACTOR intervals) a silent
  worker is late, which one `anomaly` warning (kind heartbeat_stale) per silent spell says; only
  past HEARTBEAT_HARD_LIMIT_SECONDS of silence is it stopped as hung and treated as interrupted.
  "unknown" (could not ask) is never an interruption by itself.
- cost: `billable_seconds` is the closed attempts' seconds (`executor_ref["billing_base"]`)
  plus the live attempt's, recomputed (not added to) on every poll, so repeated polls never
  double-count; the attempt is closed when it ends.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..executors import ExecutorError, PodState, get_executor
from ..executors.local import work_dir
from ..lifecycle import ACTIVE, TERMINAL, Status, transition
from ..models import JobEvent, TrainingJob
from . import monitoring

logger = logging.getLogger(__name__)

# How long a worker's terminal report may trail its exit before we stop waiting for it.
COMPLETION_GRACE_SECONDS = 30
# A launch that recorded nothing for this long died with its task; enqueue it again.
STUCK_LAUNCH_SECONDS = settings.CELERY_TASK_TIME_LIMIT + 60
# Terminal jobs are polled once more to close the last attempt's bill, for this long.
BILLING_CLOSE_WINDOW = timedelta(hours=6)


# --- Worker configuration ---------------------------------------------------------------------


def worker_is_remote(job: TrainingJob) -> bool:
    """A worker that cannot see this machine's files: a pod, or any worker when storage is S3.

    Remote workers get a signed dataset URL and the signed-URL store (no credentials)."""
    return job.executor != "local" or settings.STORAGE_BACKEND != "filesystem"


def dataset_location(job: TrainingJob) -> str:
    if not worker_is_remote(job):
        return job.training_file.file.path
    from artifacts.storage import presigned_url

    return presigned_url(job.training_file.file.name, "GET", expires=settings.WORKER_URL_TTL_SECONDS)


def store_spec(job: TrainingJob) -> dict:
    if not worker_is_remote(job):
        return {"kind": "local", "root": str(job_store_root(job.pk))}
    from artifacts.services import worker_store_spec

    return worker_store_spec(job.pk)


def build_worker_config(job: TrainingJob) -> dict:
    """gpu_worker's configuration (gpu_worker.config.WorkerConfig) for the job's current attempt."""
    return {
        "job_id": str(job.pk),
        "attempt": job.attempt,
        "base_model": job.configuration["base_model"],
        "dataset": dataset_location(job),
        # A pod writes to its own disk; a local worker to the attempt's directory here.
        "output_dir": "/workspace/worker-output" if job.executor != "local" else str(work_dir(job.pk, job.attempt) / "output"),
        **job.configuration.get("hyperparameters", {}),
        "device": settings.WORKER_DEVICE,
        "store": store_spec(job),
        "resume_from": "latest",
        "webhook_url": f"{settings.PUBLIC_BASE_URL}/api/training/webhook",
        "webhook_secret": job.secret,
        "heartbeat_interval": settings.HEARTBEAT_INTERVAL_SECONDS,
    }


def job_store_root(job_id) -> Path:
    """The job's artifact root in the local store: checkpoints/, adapter/, reports/."""
    return Path(settings.MEDIA_ROOT) / "jobs" / str(job_id)


def hourly_rate_for(job: TrainingJob) -> Decimal:
    row = settings.GPU_TABLE.get(job.gpu_type) or {}
    key = "on_demand_per_hour" if job.gpu_pricing_tier == TrainingJob.PricingTier.ON_DEMAND else "spot_per_hour"
    return Decimal(str(row.get(key, 0)))


# --- Launch -----------------------------------------------------------------------------------


def launch_attempt(job_id) -> None:
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    if job.status in (Status.QUEUED, Status.RECOVERING):
        moved = transition(
            job.pk, Status.PROVISIONING, sources={job.status}, attempt=job.attempt,
            message=f"launching attempt {job.attempt + 1}", payload={"attempt": job.attempt + 1},
            updates={"attempt": F("attempt") + 1, "attempt_started_at": timezone.now(),
                     "last_heartbeat_at": None, "executor_ref": {}},
        )
        if not moved:
            return  # Another launch task (or a cancel) got there first.
        job.refresh_from_db()
    elif not (job.status == Status.PROVISIONING and not launch_recorded(job.executor_ref)):
        return  # Already launched, or finished.

    executor = get_executor(job.executor)
    try:
        result = executor.launch(job, build_worker_config(job))
    except ExecutorError as exc:
        if exc.transient and schedule_launch_retry(job, exc):
            return
        retries = int((job.executor_ref or {}).get("launch_retries", 0))
        message = exc.message + (f" (still failing after {retries} automatic retries)" if retries else "")
        fail_job(job.pk, job.attempt, exc.error_type, message, exc.suggested_fix,
                 details={"transient": exc.transient, "suggested_config": exc.suggested_config,
                          "launch_retries": retries})
        return
    ref = {**result.ref, "billing_base": job.billable_seconds}
    rate = result.hourly_rate or hourly_rate_for(job)
    if not _merge_ref(job, ref, status__in=ACTIVE, hourly_rate=rate):
        # Cancelled (or superseded) while we launched; the stop task found no worker to stop.
        job.executor_ref = ref
        _cancel_quietly(executor, job)
        return
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.LAUNCHED, source="executor", attempt=job.attempt,
                            payload={"executor": job.executor, "ref": _public_ref(ref), "hourly_rate": str(rate)},
                            processed=True, processed_at=timezone.now())


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

    The job stays PROVISIONING with no launch recorded and `retry_at` in its executor_ref. A
    Celery task is enqueued with that countdown; the poll (`_relaunch_if_stuck`) launches it if
    that task is lost, or, with in-process tasks (no countdown there), once retry_at has passed.
    """
    from .. import tasks

    ref = job.executor_ref or {}
    retries = int(ref.get("launch_retries", 0))
    limit = settings.LAUNCH_RETRY_LIMIT
    if retries >= limit:
        return False
    delay = launch_backoff_seconds(retries, settings.LAUNCH_RETRY_BASE_SECONDS, settings.LAUNCH_RETRY_MAX_SECONDS)
    now = timezone.now()
    retry_at = now + timedelta(seconds=delay)
    with transaction.atomic():
        if not _merge_ref(job, {"launch_retries": retries + 1, "retry_at": retry_at.isoformat(),
                                "last_launch_error": exc.error_type},
                          status__in={Status.PROVISIONING}):
            return True  # cancelled (or superseded) meanwhile: nothing to retry
        JobEvent.objects.create(
            job=job, event_type=JobEvent.Type.LAUNCH_RETRY, source="executor", attempt=job.attempt,
            severity=JobEvent.Severity.WARNING, processed=True, processed_at=now,
            payload={"error_type": exc.error_type, "message": exc.message, "suggested_fix": exc.suggested_fix,
                     "retry": retries + 1, "limit": limit, "delay_seconds": delay,
                     "retry_at": retry_at.isoformat()},
        )
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            transaction.on_commit(lambda: tasks.launch_job.apply_async((str(job.pk),), countdown=delay))
    logger.warning("job %s: launch failed (%s); retry %s of %s in %s s", job.pk, exc.error_type,
                   retries + 1, limit, delay)
    return True


def fail_job(job_id, attempt: int | None, error_type: str, message: str, fix: str = "", *,
             details: dict | None = None, sources=None) -> bool:
    return transition(
        job_id, Status.FAILED, attempt=attempt, sources=sources, message=message,
        updates={"error_type": error_type, "error_message": message, "error_suggested_fix": fix,
                 "error_details": details or {}},
    )


# --- Poll -------------------------------------------------------------------------------------


def poll_job(job_id) -> PodState | None:
    """Look at the worker of the job's current attempt, bill it, and detect interruptions."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    now = timezone.now()
    ref = job.executor_ref or {}
    if job.status in TERMINAL:
        close_billing(job, until=_parse(ref.get("ended_at")) or job.completed_at or now)
        return None
    if job.status == Status.RECOVERING or (job.status == Status.PROVISIONING and not launch_recorded(ref)):
        _relaunch_if_stuck(job, now)
        return None
    if not job.is_active:
        return None

    executor = get_executor(job.executor)
    try:
        state = executor.poll(job)
    except ExecutorError as exc:
        state = PodState("unknown", detail=str(exc))
    ref_changes: dict = {}
    if state.state != ref.get("last_state"):
        ref_changes["last_state"] = state.state
        JobEvent.objects.create(
            job=job, event_type=JobEvent.Type.POD_STATE, source="executor", attempt=job.attempt,
            severity=JobEvent.Severity.WARNING if state.state in ("gone", "unknown") else JobEvent.Severity.INFO,
            payload={"state": state.state, "exit_code": state.exit_code, "detail": state.detail},
            processed=True, processed_at=now)
    ended = state.state in ("exited", "gone")
    ended_at = _parse(ref.get("ended_at"))
    if ended and ended_at is None:
        ended_at = now
        ref_changes["ended_at"] = now.isoformat()
    if ref_changes:
        _merge_ref(job, ref_changes)
    bill(job, until=ended_at or now)

    if job.status == Status.TRAINING and state.state == "running":
        monitoring.check_stall(job.pk, now=now)  # alive but not advancing: say so, once
    reason = interruption_reason(job, state, now=now, ended_at=ended_at)
    if not reason and state.state in ("running", "starting"):
        warn_if_silent(job, state, now=now)
    if reason == "user_error":
        fail_job(job.pk, job.attempt, "worker_exit",
                 "The worker stopped with a user error (exit code 2) and its error report never arrived.",
                 f"Read the worker log for the reason: {ref.get('log') or 'see the executor'}.",
                 sources=ACTIVE - {Status.RECOVERING})
    elif reason:
        if state.state in ("running", "starting"):
            _cancel_quietly(executor, job)  # A hung worker must not go on beside its successor.
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
    if code == 4:
        return "worker interrupted (exit code 4)"
    if code == 5:
        return "worker stopped by the control plane (exit code 5) while the attempt was current"
    # RunPod does not report a container's exit code (None): the worker's own terminal report,
    # if any, says how it ended.
    terminal_reports = {
        None: (JobEvent.Type.COMPLETED, JobEvent.Type.ERROR), 0: (JobEvent.Type.COMPLETED,),
    }.get(code, (JobEvent.Type.ERROR,))
    if _has_worker_event(job, *terminal_reports):
        return ""  # Ingestion owns the terminal report; it moves the job.
    if ended_at is not None and now - ended_at < timedelta(seconds=COMPLETION_GRACE_SECONDS):
        return ""  # The worker's last report may still be in flight.
    if code is None:
        return f"worker exited without a final report ({state.detail or 'exit code unknown'})"
    if code == 2:
        return "user_error"  # Retrying a configuration or data error cannot help.
    if code == 0:
        return "worker exited cleanly but its completed report never arrived"
    return f"worker exited with code {code} without an error report"


def warn_if_silent(job: TrainingJob, state: PodState, *, now: datetime) -> bool:
    """A worker the executor reports running or starting, late with its events but not yet hung:
    say so with one `anomaly` warning per silent spell (keyed by its last sign of life, kept in
    executor_ref["silence_warned"]), and leave it running. Returns whether it warned."""
    deadlines = job.silence_deadlines()
    if deadlines is None or now <= deadlines.late_at:
        return False
    key = deadlines.since.isoformat()
    if (job.executor_ref or {}).get("silence_warned") == key:
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
        rows = TrainingJob.objects.filter(pk=job.pk, attempt=job.attempt)
        # Write first (the row lock, as in _merge_ref): of two polls racing here, one warns.
        if not rows.update(executor_ref=F("executor_ref")):
            return False
        current = rows.values_list("executor_ref", flat=True).get() or {}
        if current.get("silence_warned") == key:
            return False
        job.executor_ref = {**current, "silence_warned": key}
        rows.update(executor_ref=job.executor_ref)
        JobEvent.objects.create(
            job=job, event_type=JobEvent.Type.ANOMALY, source="control_plane", attempt=job.attempt,
            severity=JobEvent.Severity.WARNING, processed=True, received_at=now, processed_at=now,
            payload={"kind": "heartbeat_stale", "step": job.current_step, "message": message,
                     "suggested_action": action, "executor_state": state.state, "silent_seconds": silent,
                     "first_event_received": deadlines.started, "hung_at": deadlines.hung_at.isoformat()})
    logger.warning("job %s attempt %s: silent for %s s, executor says %s; not interrupting before %s",
                   job.pk, job.attempt, silent, state.state, hung_at)
    return True


def _has_worker_event(job: TrainingJob, *event_types: str) -> bool:
    return job.events.filter(event_type__in=event_types, attempt=job.attempt).exists()


def _relaunch_if_stuck(job: TrainingJob, now: datetime) -> None:
    from .. import tasks

    retry_at = _parse((job.executor_ref or {}).get("retry_at"))
    if retry_at is not None and job.status == Status.PROVISIONING:
        # A launch waiting out its backoff: the countdown task launches it; the poll steps in
        # only if that task was lost (or, with in-process tasks, as soon as the wait is over).
        due = retry_at + timedelta(seconds=0 if settings.CELERY_TASK_ALWAYS_EAGER else STUCK_LAUNCH_SECONDS)
        if now >= due:
            logger.warning("job %s: launch retry due since %s; launching", job.pk, retry_at)
            tasks.launch_job.delay(str(job.pk))
        return
    since = job.updated_at or job.attempt_started_at
    if since and now - since > timedelta(seconds=STUCK_LAUNCH_SECONDS):
        logger.warning("job %s has been %s with no worker for %s; launching again", job.pk, job.status, now - since)
        tasks.launch_job.delay(str(job.pk))


# --- Recovery ---------------------------------------------------------------------------------


def handle_interruption(job_id, attempt: int, reason: str) -> bool:
    """The worker of `attempt` was interrupted: go to RECOVERING and launch the next attempt,
    or fail once the recovery limit is passed. Returns whether this call acted; of several
    callers for the same attempt (a webhook and a poll) exactly one does."""
    from .. import tasks

    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or job.attempt != attempt or job.status not in ACTIVE or job.status == Status.RECOVERING:
        return False
    now = timezone.now()
    ref = job.executor_ref or {}
    ended_at = _parse(ref.get("ended_at")) or now
    with transaction.atomic():
        moved = transition(
            job.pk, Status.RECOVERING, attempt=attempt, sources=ACTIVE - {Status.RECOVERING},
            message=f"attempt {attempt} interrupted: {reason}", payload={"reason": reason},
            updates={
                "checkpoint_recovery_count": F("checkpoint_recovery_count") + 1,
                "lost_seconds": F("lost_seconds") + lost_seconds(job, now),
                **_billing_updates(job, ended_at),
            },
        )
        if not moved:
            return False  # The other caller won; it relaunches.
        _merge_ref(job, {"ended_at": ended_at.isoformat(), "billing_closed": True})
        count = TrainingJob.objects.values_list("checkpoint_recovery_count", flat=True).get(pk=job.pk)
        if count > settings.MAX_RECOVERIES:
            limit = settings.MAX_RECOVERIES
            fail_job(
                job.pk, attempt, "recovery_limit",
                f"Interrupted {count} times; the recovery limit is {limit}. The last interruption: {reason}.",
                "Spot capacity may be unstable: retry the job on-demand, or raise MAX_RECOVERIES. "
                "Training resumes from the last committed checkpoint.",
                details={"recoveries": count, "limit": limit, "reason": reason},
                sources={Status.RECOVERING},
            )
        else:
            fall_back_to_on_demand(job, count)
            transaction.on_commit(lambda: tasks.launch_job.delay(str(job.pk)))
    return True


def fall_back_to_on_demand(job: TrainingJob, interruptions: int) -> bool:
    """After SPOT_FALLBACK_AFTER_INTERRUPTIONS interruptions of a spot job, run its next
    attempts on-demand (costlier, but not taken away), and say so on the job."""
    after = settings.SPOT_FALLBACK_AFTER_INTERRUPTIONS
    if not after or interruptions < after or job.gpu_pricing_tier != TrainingJob.PricingTier.SPOT:
        return False
    if not TrainingJob.objects.filter(pk=job.pk, gpu_pricing_tier=TrainingJob.PricingTier.SPOT).update(
            gpu_pricing_tier=TrainingJob.PricingTier.ON_DEMAND):
        return False
    job.gpu_pricing_tier = TrainingJob.PricingTier.ON_DEMAND
    JobEvent.objects.create(
        job=job, event_type=JobEvent.Type.FALLBACK, source="control_plane", attempt=job.attempt,
        severity=JobEvent.Severity.WARNING, processed=True, processed_at=timezone.now(),
        payload={"from": "spot", "to": "on_demand", "interruptions": interruptions,
                 "message": f"Interrupted {interruptions}× on spot; the next attempts run on-demand "
                            f"(SPOT_FALLBACK_AFTER_INTERRUPTIONS={after})."},
    )
    return True


def lost_seconds(job: TrainingJob, now: datetime) -> float:
    """Training time since the attempt's last committed checkpoint (or since it started)."""
    last = (job.events.filter(event_type=JobEvent.Type.CHECKPOINT_SAVED, attempt=job.attempt)
            .order_by("-received_at").values_list("received_at", flat=True).first())
    since = last or job.attempt_started_at
    return max(0.0, (now - since).total_seconds()) if since else 0.0


# --- Stop -------------------------------------------------------------------------------------


def stop_attempt(job_id) -> None:
    """Stop the job's worker (SIGTERM, SIGKILL after a grace period) and close its bill."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or not launch_recorded(job.executor_ref):
        return
    executor = get_executor(job.executor)
    try:
        executor.cancel(job)
    except ExecutorError as exc:
        logger.error("could not stop the worker of job %s: %s", job.pk, exc.message)
    job.refresh_from_db()
    if job.status in TERMINAL:
        close_billing(job, until=job.completed_at or timezone.now())


def _cancel_quietly(executor, job: TrainingJob) -> None:
    try:
        executor.cancel(job)
    except ExecutorError as exc:
        logger.error("could not stop the worker of job %s: %s", job.pk, exc.message)


# --- Cost -------------------------------------------------------------------------------------


def _billing_updates(job: TrainingJob, until: datetime) -> dict:
    ref = job.executor_ref or {}
    # Without a recorded launch the billed total is all closed attempts.
    base = float(ref.get("billing_base", job.billable_seconds))
    live = max(0.0, (until - job.attempt_started_at).total_seconds()) if job.attempt_started_at else 0.0
    seconds = base + live
    cost = (Decimal(seconds) / Decimal(3600) * job.hourly_rate).quantize(settings.MONEY)
    return {"billable_seconds": seconds, "actual_cost": cost}


def bill(job: TrainingJob, *, until: datetime) -> None:
    """Recompute billable seconds and actual cost of the current attempt up to `until`."""
    if not launch_recorded(job.executor_ref) or job.executor_ref.get("billing_closed"):
        return
    updates = _billing_updates(job, until)
    TrainingJob.objects.filter(pk=job.pk, attempt=job.attempt).update(**updates)
    for name, value in updates.items():
        setattr(job, name, value)


def close_billing(job: TrainingJob, *, until: datetime) -> None:
    """Bill the attempt one last time and mark it closed (terminal job)."""
    ref = job.executor_ref or {}
    if not launch_recorded(ref) or ref.get("billing_closed"):
        return
    _merge_ref(job, {"billing_closed": True}, **_billing_updates(job, until))


# --- Fan-out ----------------------------------------------------------------------------------


def jobs_to_poll() -> list[str]:
    """Active jobs, plus recently finished ones whose last attempt's bill is still open."""
    ids = [str(pk) for pk in TrainingJob.objects.active().values_list("pk", flat=True)]
    recent = TrainingJob.objects.filter(status__in=TERMINAL, completed_at__gte=timezone.now() - BILLING_CLOSE_WINDOW)
    for pk, ref in recent.values_list("pk", "executor_ref"):
        if launch_recorded(ref) and not ref.get("billing_closed"):
            ids.append(str(pk))
    return ids


def poll_active_jobs() -> int:
    """Enqueue one poll per job to watch (inline when tasks run eagerly); returns how many."""
    from .. import tasks

    ids = jobs_to_poll()
    for job_id in ids:
        # A poll that waited longer than the beat period is superseded by the next one.
        tasks.poll_job.apply_async((job_id,), expires=60)
    return len(ids)


# --- Helpers ----------------------------------------------------------------------------------


def launch_recorded(ref: dict | None) -> bool:
    """Whether launch_attempt stored the executor's ref (ingestion may add keys of its own)."""
    return bool(ref) and "billing_base" in ref


def _merge_ref(job: TrainingJob, changes: dict, **fields) -> bool:
    """Merge `changes` into the current attempt's executor_ref (and write `fields`), without
    losing keys webhook ingestion wrote meanwhile; False if the job moved on (or off `fields`'
    lookups such as status__in)."""
    lookups = {k: fields.pop(k) for k in list(fields) if "__" in k}
    with transaction.atomic():
        # Write first: the UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite)
        # before we read, as ingestion does, so the read-merge-write cannot interleave with it.
        rows = TrainingJob.objects.filter(pk=job.pk, attempt=job.attempt, **lookups)
        if not rows.update(**(fields or {"executor_ref": F("executor_ref")})):
            return False
        current = TrainingJob.objects.values_list("executor_ref", flat=True).get(pk=job.pk)
        job.executor_ref = {**(current or {}), **changes}
        TrainingJob.objects.filter(pk=job.pk).update(executor_ref=job.executor_ref)
    for name, value in fields.items():
        setattr(job, name, value)
    return True


def _public_ref(ref: dict) -> dict:
    return {k: v for k, v in ref.items() if k not in ("billing_base",)}


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


__all__ = [
    "build_worker_config", "fall_back_to_on_demand", "handle_interruption", "launch_attempt",
    "launch_backoff_seconds", "schedule_launch_retry", "poll_active_jobs", "poll_job",
    "stop_attempt", "warn_if_silent",
]
