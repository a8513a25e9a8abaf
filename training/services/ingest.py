"""Applying the worker's reports (docs/worker-contract.md, "Events"), once each, to the job.

`ingest_event(headers, body)` is the whole webhook, free of HTTP objects: the view passes the
request's headers and raw body and turns the `IngestResult` into a response.
`training.services.reports` reads and checks the report (400/401); then, in one transaction,
holding the job's row lock: the JobEvent is inserted first, so the unique `webhook_id` decides
which of several copies of one event has the effect (the others answer 200
`{"duplicate": true}`); then a finished job (409, 410 when cancelled) or a superseded attempt
(409) rolls everything back, the insert included; otherwise the event is applied by type and,
once it has taken effect, announced through the job-event hook (training.events), whose
receivers (trend analysis, artifacts) run as the hook documents.

Applying is a few indexed queries; anything slow is handed to other services on commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..events import announce_event, record_event
from ..lifecycle import TERMINAL, Status, transition
from ..models import JobAttempt, JobEvent, TrainingJob
from . import progress
from .metric_ingest import apply_metrics
from .recovery import handle_interruption
from .reports import EVENT_TYPES, Envelope, IngestResult, Refused, is_int, number, read_report

logger = logging.getLogger(__name__)

SEVERITY = {"error": JobEvent.Severity.ERROR, "interrupted": JobEvent.Severity.WARNING}


def ingest_event(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> IngestResult:
    """Verify one signed worker report and apply it; never raises for a bad request.

    `now` (unix seconds) replaces the clock for the signature's time window, for tests.
    """
    try:
        return _apply_once(read_report(headers, body, now=now))
    except Refused as refused:
        return refused.result


# --- Fencing and idempotency ------------------------------------------------------------------


def _apply_once(event: Envelope) -> IngestResult:
    now = timezone.now()
    with transaction.atomic():
        # Take the job's lock before anything is read, so events of one job apply one at a time
        # and a recovery cannot bump the attempt between our check and our writes. A refusal or
        # a duplicate rolls everything back.
        job = _lock_job(event.job_id)
        try:
            # Insert first: of several copies of one event racing here, the unique webhook_id
            # lets exactly one through; the others wait for its commit and then fail.
            with transaction.atomic():
                record = record_event(
                    job.pk, event.type, source="worker", severity=SEVERITY.get(event.type, JobEvent.Severity.INFO),
                    attempt=event.attempt, payload=_payload(job, event), webhook_id=event.id, seq=event.seq,
                    step=_step(event), received_at=now, announce=False,  # announced once it took effect
                )
        except IntegrityError:
            transaction.set_rollback(True)
            return IngestResult(200, {"accepted": True, "duplicate": True})
        refusal = _fence(job, event)
        if refusal is not None:
            transaction.set_rollback(True)
            logger.info("job %s refused %s seq %s of attempt %s: %s", job.pk, event.type,
                        event.seq, event.attempt, refusal.body["detail"])
            return refusal
        context: dict[str, Any] = {"job": job, "now": now, "job_updates": {}}
        note = APPLY[event.type](job, event, now, context)
        # Every accepted report is a sign of life; written with what applying it changed on the
        # job (a metrics batch's progress), in one UPDATE.
        TrainingJob.objects.filter(pk=job.pk).update(last_heartbeat_at=now, **context.pop("job_updates"))
        if note:
            JobEvent.objects.filter(pk=record.pk).update(processing_error=note)
        else:
            # Receivers that must agree with the report (the trend analysis) run here, still under
            # the job's lock and in report order; the others once this commits.
            record.context = context
            announce_event(record)
    body: dict[str, Any] = {"accepted": True, "duplicate": False}
    if note:
        body["ignored"] = note
    return IngestResult(200, body)


def _lock_job(job_id: Any) -> TrainingJob:
    # PostgreSQL: the job's row lock. SQLite has none and ignores FOR UPDATE; its transactions
    # take the database's write lock when they begin (transaction_mode IMMEDIATE, settings).
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).order_by().first()
    if job is None:
        raise Refused(404, "the job was deleted")  # after its signature verified
    return job


def _step(event: Envelope) -> int | None:
    """The step the report is about, for the event's structured column."""
    name = {"checkpoint_saved": "step", "resumed": "resumed_from_step", "interrupted": "last_checkpoint_step",
            "completed": "steps"}.get(event.type)
    if name is None and event.type == "metrics":
        steps = [p["step"] for p in event.data["points"]]
        return max(steps) if steps else None
    value = event.data.get(name) if name else None
    return value if is_int(value) else None


def _payload(job: TrainingJob, event: Envelope) -> dict[str, Any]:
    """The JobEvent's payload: the event's data and envelope, and a recovery hint for interruptions."""
    payload = {**event.data, "seq": event.seq, "timestamp": event.timestamp}
    if event.type == "interrupted":
        reported = event.data.get("last_checkpoint_step")
        resume_from = max((s for s in (reported, job.last_checkpoint_step) if is_int(s)), default=None)
        signal_name = event.data.get("signal") or "SIGTERM"
        if job.status == Status.CANCELLED:
            payload["cancelled"] = {"checkpoint_step": reported if is_int(reported) else None, "hint": (
                "the job was cancelled; the worker stopped "
                + ("when told of the cancel " if signal_name == "cancel" else f"on {signal_name} ")
                + (f"with its checkpoint at step {reported} committed" if is_int(reported)
                   else "without a committed checkpoint"))}
            return payload
        payload["recovery"] = {
            "resume_from_step": resume_from,
            "hint": f"the worker stopped on {signal_name}; a new attempt resumes from "
                    + (f"the checkpoint at step {resume_from}" if resume_from is not None
                       else "the start (no committed checkpoint)"),
        }
    return payload


# What a cancelled job still takes from its current attempt: the worker's last word on the
# checkpoint it saved as it stopped, so the job can say truthfully whether one exists.
CANCELLED_LAST_WORDS = frozenset({"checkpoint_saved", "interrupted"})


def _fence(job: TrainingJob, event: Envelope) -> IngestResult | None:
    """Refuse reports for finished jobs and from superseded attempts (the worker stops on both)."""
    if job.status == Status.CANCELLED:
        if event.type in CANCELLED_LAST_WORDS and event.attempt == job.attempt:
            return None
        return IngestResult(410, {"detail": "the job was cancelled"})
    if job.status in TERMINAL:
        return IngestResult(409, {"detail": f"the job is {job.status}"})
    if event.attempt < job.attempt:
        return IngestResult(409, {"detail": f"attempt {event.attempt} was superseded by attempt {job.attempt}"})
    if event.attempt != job.attempt:
        return IngestResult(409, {"detail": f"attempt {event.attempt} is not the job's attempt {job.attempt}"})
    return None


# --- Applying, by type ------------------------------------------------------------------------
# Each function runs inside the transaction, with the job locked and fenced, and returns "" or
# the reason the event was stored without effect (answered 200: the worker must not retry it).


def _update(job: TrainingJob, now: datetime, **fields: Any) -> None:
    TrainingJob.objects.filter(pk=job.pk).update(updated_at=now, **fields)


def apply_started(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    # On the attempt's `worker`, beside (never over) the executor's own ref (pod id, launcher
    # pid) that poll/cancel use; the attempt's first report also sets its started_at.
    reported = {k: event.data.get(k) for k in ("device", "quantization", "precision", "host", "pid", "base_model")}
    JobAttempt.objects.record_worker_started(job.pk, event.attempt, {**reported, "attempt": event.attempt}, now)
    _update(job, now, started_at=job.started_at or now)
    return ""


def apply_stage_changed(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    stage = event.data["stage"]
    # The table refuses backward moves and moves out of terminal states; the attempt guard
    # refuses a superseded attempt even if a recovery slipped in (it cannot: we hold the lock).
    if transition(job.pk, stage, attempt=event.attempt, actor="worker",
                  message=f"worker reported stage {stage}"):
        return ""
    return f"stage {stage} does not follow {job.status}"


def apply_heartbeat(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    # last_heartbeat_at is written with the lock. The heartbeat is where the total steps and the
    # measured step time first arrive (before any metrics batch on a slow machine): the job's
    # total and remaining time follow them at once. Its step stays in the event (the progress
    # service reads it): current_step is the metrics' to move, or a late batch would look new.
    heartbeat = progress.read_heartbeat(event.data)
    updates = context["job_updates"]
    if heartbeat["total_steps"] is not None and heartbeat["total_steps"] != job.total_steps:
        updates["total_steps"] = heartbeat["total_steps"]
    minutes = progress.remaining_minutes(progress.remaining(job, heartbeat, now=now))
    if minutes is not None:
        updates["estimated_time_remaining_minutes"] = minutes
    return ""


def apply_checkpoint_saved(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    step = event.data["step"]
    if job.last_checkpoint_step is None or step > job.last_checkpoint_step:
        _update(job, now, last_checkpoint_step=step)
    return ""


def apply_resumed(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    _update(job, now, resumed_from_step=event.data["resumed_from_step"])
    JobAttempt.objects.record_resumed(job.pk, event.attempt, event.data["resumed_from_step"])
    return ""


def apply_interrupted(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    step = event.data.get("last_checkpoint_step")
    if is_int(step) and (job.last_checkpoint_step is None or step > job.last_checkpoint_step):
        _update(job, now, last_checkpoint_step=step)
    if job.status == Status.CANCELLED:
        return ""  # the cancel's own stop: recorded, nothing to recover
    job_id, attempt = job.pk, event.attempt
    reason = f"worker reported {event.data.get('signal') or 'SIGTERM'}"
    # robust: the event is committed and answered 200 whatever the recovery service does.
    transaction.on_commit(lambda: handle_interruption(job_id, attempt, reason), robust=True)
    return ""


def apply_error(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    data = event.data
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    error_details = {**details, "exit_code": data.get("exit_code"), "attempt": event.attempt}
    updates = {
        "error_type": str(data.get("error_type") or "unknown")[:64],
        "error_message": str(data.get("message") or ""),
        "error_suggested_fix": str(data.get("suggested_fix") or ""),
        "error_details": error_details,
    }
    if transition(job.pk, Status.FAILED, attempt=event.attempt, actor="worker",
                  # Masked before the cut, so no part of the secret survives it.
                  message=job.mask_secret(updates["error_message"])[:500], updates=updates):
        return ""
    return f"a {job.status} job cannot fail"


# Per-item lists an evaluator reports (replies, option scores, per-sample sums): kept in the
# event's payload, where the validation app reads them, not copied onto the job's row.
PER_ITEM_KEYS = frozenset({"items", "per_sample"})


def compact_validation(data: dict[str, Any]) -> dict[str, Any]:
    evaluators = data.get("evaluators")
    if not isinstance(evaluators, dict):
        return data
    return {**data, "evaluators": {
        name: ({k: v for k, v in result.items() if k not in PER_ITEM_KEYS} if isinstance(result, dict) else result)
        for name, result in evaluators.items()}}


def apply_validation_results(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    fields: dict[str, Any] = {"results": {**job.results, "validation": compact_validation(event.data)}}
    perplexity = (event.data.get("evaluators") or {}).get("perplexity") or {}
    trained = number(perplexity.get("trained")) if isinstance(perplexity, dict) else None
    if trained is not None:
        fields["latest_perplexity"] = trained
    _update(job, now, **fields)
    return ""


def apply_completed(job: TrainingJob, event: Envelope, now: datetime, context: dict[str, Any]) -> str:
    data = event.data
    updates: dict[str, Any] = {
        "results": {**job.results, "final": data},
        "progress_percentage": Decimal("100.00"),
    }
    started = job.started_at or job.attempt_started_at
    if started is not None:
        updates["actual_duration_minutes"] = max(0, round((now - started).total_seconds() / 60))
    for key, column in (("final_train_loss", "latest_loss"), ("final_eval_loss", "latest_eval_loss")):
        if number(data.get(key)) is not None:
            updates[column] = number(data.get(key))
    if is_int(data.get("steps")) and data["steps"] >= 0:
        updates["current_step"] = data["steps"]
    if transition(job.pk, Status.COMPLETED, attempt=event.attempt, actor="worker",
                  message="the worker completed training", updates=updates):
        # The status_changed event this recorded is announced through the hook: the final
        # analysis and the artifacts' registration hang on it.
        return ""
    return f"a {job.status} job cannot complete"


APPLY: dict[str, Callable[[TrainingJob, Envelope, datetime, dict[str, Any]], str]] = {
    "started": apply_started,
    "stage_changed": apply_stage_changed,
    "metrics": apply_metrics,
    "heartbeat": apply_heartbeat,
    "checkpoint_saved": apply_checkpoint_saved,
    "resumed": apply_resumed,
    "interrupted": apply_interrupted,
    "error": apply_error,
    "validation_results": apply_validation_results,
    "completed": apply_completed,
}
assert set(APPLY) == EVENT_TYPES
