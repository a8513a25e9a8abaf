"""Existing jobs get their JobAttempt rows: the current attempt from `executor_ref`, the earlier
ones from the job's events, as best they can be known.

The rule, for a job on attempt N (N >= 1; a job never launched gets none):

- Attempt k began at the `status_changed` event to provisioning whose payload says attempt k
  (else its `launched` event; for N, `attempt_started_at` first). Its `launched` event gives the
  executor, the executor's ref, the hourly rate and when the launch was recorded; its `started`
  event the worker's report and started_at; its `resumed` event resumed_from_step; its last
  `pod_state` event with an exit code, the exit code. Its pricing tier is on-demand after a
  `fallback` event of an earlier attempt, spot before one, else the job's.
- An earlier attempt (k < N) ended at its `status_changed` event to recovering (outcome
  interrupted, with that event's reason; else outcome failed, reason unknown), and its bill is
  closed. Its billable seconds are the job's closed seconds (`executor_ref["billing_base"]`)
  shared in proportion to each attempt's launch-to-end time (evenly if none is known), so the
  attempts sum to the job's `billable_seconds` exactly.
- Attempt N: executor ref = `executor_ref` without its control keys, which become the row's
  fields (billing_closed, ended_at, retry_at, launch_retries, last_launch_error, last_state,
  silence_warned, worker); the launch is recorded if `billing_base` is there; billable seconds =
  `billable_seconds - billing_base`; rate = the job's `hourly_rate`. Outcome: the job's
  completed/failed/cancelled, interrupted while RECOVERING, else running.
- Lost seconds of an interrupted attempt: the time from its last `checkpoint_saved` before the
  interruption (else its launch) to the interruption, as the recovery computed it then; scaled so
  the attempts sum to the job's `lost_seconds` (shared evenly if none can be computed). Lost
  dollars: those seconds at the attempt's rate.

The job's own columns (cost, lost seconds, recovery count) are kept as they are. Reversing
rebuilds `executor_ref` from the current attempt's row.
"""

from datetime import datetime
from decimal import Decimal

from django.db import migrations

CONTROL_KEYS = ("billing_base", "billing_closed", "ended_at", "retry_at", "launch_retries", "last_launch_error",
                "last_state", "silence_warned", "worker")
OUTCOMES = {"completed": "completed", "failed": "failed", "cancelled": "cancelled", "recovering": "interrupted"}


def _when(value):
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _seconds(start, end):
    return max(0.0, (end - start).total_seconds()) if start and end else None


def _decimal(value, default):
    try:
        return Decimal(str(value)) if value is not None else default
    except ArithmeticError:
        return default


def _share(total, weights):
    """`total` split over the keys of `weights` in proportion (evenly when none is known)."""
    if not weights:
        return {}
    known = {k: w for k, w in weights.items() if w}
    if not known:
        return {k: total / len(weights) for k in weights}
    whole = sum(known.values())
    return {k: total * (known.get(k, 0) / whole) for k in weights}


def attempts_of(job, events, JobAttempt):
    ref = job.executor_ref if isinstance(job.executor_ref, dict) else {}
    by = {}
    for event in events:
        by.setdefault(event.event_type, []).append(event)

    def first(event_type, number, test=lambda e: True):
        return next((e for e in by.get(event_type, []) if e.attempt == number and test(e)), None)

    def to(status):
        return lambda e: (e.payload or {}).get("to") == status

    fallbacks = sorted(e.attempt for e in by.get("fallback", []) if e.attempt is not None)
    rows, durations, losses = {}, {}, {}
    for number in range(1, job.attempt + 1):
        current = number == job.attempt
        provisioning = next((e for e in by.get("status_changed", []) if to("provisioning")(e)
                             and (e.payload or {}).get("attempt") == number), None)
        launched = first("launched", number)
        recovering = first("status_changed", number, to("recovering"))
        launch = (launched.payload or {}) if launched else {}
        launched_at = ((job.attempt_started_at if current else None) or (provisioning and provisioning.received_at)
                       or (launched and launched.received_at) or job.created_at)
        if fallbacks:
            tier = "on_demand" if any(f < number for f in fallbacks) else "spot"
        else:
            tier = job.gpu_pricing_tier
        row = JobAttempt(
            job_id=job.pk, number=number, executor=launch.get("executor") or job.executor, pricing_tier=tier,
            gpu_type=job.gpu_type, hourly_rate=_decimal(launch.get("hourly_rate"), job.hourly_rate),
            ref=launch.get("ref") or {}, launched_at=launched_at,
            ref_recorded_at=launched.received_at if launched else None)
        started = first("started", number)
        if started:
            row.started_at = started.received_at
            row.worker = {k: (started.payload or {}).get(k) for k in ("device", "quantization", "host", "pid",
                                                                     "base_model")}
        resumed = first("resumed", number)
        if resumed and isinstance((resumed.payload or {}).get("resumed_from_step"), int):
            row.resumed_from_step = resumed.payload["resumed_from_step"]
        codes = [e.payload.get("exit_code") for e in by.get("pod_state", []) if e.attempt == number
                 and isinstance((e.payload or {}).get("exit_code"), int)]
        row.exit_code = codes[-1] if codes else None
        if recovering:
            row.ended_at = recovering.received_at
            row.outcome, row.reason = "interrupted", str((recovering.payload or {}).get("reason") or "")
            checkpoints = [e.received_at for e in by.get("checkpoint_saved", []) if e.attempt == number
                           and e.received_at <= recovering.received_at]
            losses[number] = _seconds(max(checkpoints) if checkpoints else launched_at, recovering.received_at)
        if current:
            control = {k: ref.get(k) for k in CONTROL_KEYS}
            row.ref = {k: v for k, v in ref.items() if k not in CONTROL_KEYS}
            row.hourly_rate = job.hourly_rate
            row.ref_recorded_at = ((launched and launched.received_at) or job.attempt_started_at
                                   if "billing_base" in ref else None)
            if "billing_base" in ref:
                row.billable_seconds = max(0.0, job.billable_seconds - float(ref["billing_base"] or 0))
            row.ended_at = _when(control["ended_at"]) or row.ended_at
            row.billing_closed = bool(control["billing_closed"]) or job.status == "recovering"
            row.retry_at = _when(control["retry_at"])
            row.launch_retries = int(control["launch_retries"] or 0)
            row.last_launch_error = str(control["last_launch_error"] or "")[:64]
            row.last_state = str(control["last_state"] or "")[:16]
            row.silence_warned = str(control["silence_warned"] or "")[:40]
            if isinstance(control["worker"], dict):
                row.worker = control["worker"]
            if job.status in OUTCOMES:
                row.outcome = OUTCOMES[job.status]
        else:
            row.billing_closed = True
            if not recovering:
                row.outcome, row.reason = "failed", "ended before attempts were recorded; how is not known"
            durations[number] = _seconds(launched_at, row.ended_at)
        rows[number] = row

    closed = float(ref.get("billing_base") or 0) if "billing_base" in ref else max(
        0.0, job.billable_seconds - rows[job.attempt].billable_seconds)
    for number, seconds in _share(closed, durations).items():
        rows[number].billable_seconds = seconds
    interrupted = [n for n, row in rows.items() if row.outcome == "interrupted"]
    for number, seconds in _share(job.lost_seconds, {n: losses.get(n) for n in interrupted}).items():
        row = rows[number]
        row.lost_seconds = seconds
        row.lost_cost = Decimal(seconds) / Decimal(3600) * row.hourly_rate
    return list(rows.values())


def forwards(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    JobEvent = apps.get_model("training", "JobEvent")
    JobAttempt = apps.get_model("training", "JobAttempt")
    for job in TrainingJob.objects.filter(attempt__gte=1).order_by("pk").iterator(chunk_size=500):
        events = list(JobEvent.objects.filter(job_id=job.pk).order_by("received_at", "id"))
        JobAttempt.objects.bulk_create(attempts_of(job, events, JobAttempt))


def backwards(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    JobAttempt = apps.get_model("training", "JobAttempt")
    for job in TrainingJob.objects.filter(attempt__gte=1).iterator(chunk_size=500):
        attempt = JobAttempt.objects.filter(job_id=job.pk, number=job.attempt).first()
        if attempt is None:
            continue
        ref = dict(attempt.ref)
        if attempt.ref_recorded_at is not None:
            ref["billing_base"] = max(0.0, job.billable_seconds - attempt.billable_seconds)
        control = {"billing_closed": attempt.billing_closed or None,
                   "ended_at": attempt.ended_at.isoformat() if attempt.ended_at else None,
                   "retry_at": attempt.retry_at.isoformat() if attempt.retry_at else None,
                   "launch_retries": attempt.launch_retries or None, "last_launch_error": attempt.last_launch_error,
                   "last_state": attempt.last_state, "silence_warned": attempt.silence_warned,
                   "worker": attempt.worker}
        ref.update({k: v for k, v in control.items() if v})
        TrainingJob.objects.filter(pk=job.pk).update(executor_ref=ref)


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0009_job_attempts"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
