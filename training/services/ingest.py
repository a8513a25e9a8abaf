"""Verify and apply the worker's signed reports (docs/worker-contract.md, "Events").

`ingest_event(headers, body)` is the whole webhook, free of HTTP objects: the view passes the
request's headers and raw body and turns the `IngestResult` into a response.

The order of the checks is the contract:

1. the body is a JSON object naming a job id (400 malformed);
2. the Standard Webhooks signature verifies with that job's secret, in constant time, within
   the 5-minute window (401). An unknown job and a never-started one (no secret yet) are checked
   against a random secret and fail the same way, so the answer says nothing about which jobs
   exist. Then the body's `id` is the `webhook-id` header and every field fits the contract and
   its column (400 `{"detail", "errors": {field: message}}`, e.g. `points[3].step`);
3. in one transaction, holding the job's row lock: the JobEvent is inserted first, so the
   unique `webhook_id` decides which of several copies of one event has the effect (the
   others answer 200 `{"duplicate": true}`); then a finished job (409, 410 when cancelled) or
   a superseded attempt (409) rolls everything back, the insert included; otherwise the event
   is applied by type.

Applying is a few indexed queries; anything slow is handed to other services on commit.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from gpu_worker import signing

from ..lifecycle import TERMINAL, WORKER_STAGES, Status, transition
from ..models import JobEvent, MetricPoint, TrainingJob
from . import metric_summaries, monitoring

logger = logging.getLogger(__name__)

EVENT_TYPES = frozenset({
    "started", "stage_changed", "metrics", "heartbeat", "checkpoint_saved", "interrupted",
    "resumed", "error", "validation_results", "completed",
})
SEVERITY = {"error": JobEvent.Severity.ERROR, "interrupted": JobEvent.Severity.WARNING}
# The largest value of a PostgreSQL integer: every step, seq and attempt column is a
# PositiveIntegerField. A bigger number is refused with a 400 naming the field, not a 500.
INT_MAX = 2**31 - 1
SMALLINT_MAX = 2**15 - 1
# MetricPoint's integer columns and their largest value: the worker may send floats (eta_seconds).
INTEGER_FIELDS = {"gpu_memory_used_mb": INT_MAX, "gpu_memory_total_mb": INT_MAX,
                  "gpu_utilization_pct": SMALLINT_MAX, "eta_seconds": INT_MAX}
# PostgreSQL text and jsonb refuse NUL; psycopg cannot encode lone surrogates. The worker's text
# (error messages, trace tails) is stored with U+FFFD in their place rather than refused.
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# exp() of anything larger overflows a float; such a loss has no meaningful perplexity anyway.
MAX_LOSS_FOR_PERPLEXITY = 700.0


@dataclass(frozen=True)
class IngestResult:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """The event is refused with `status`; nothing it carried is written."""

    def __init__(self, status: int, detail: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        body: dict[str, Any] = {"detail": detail}
        if errors:
            body["errors"] = errors
        self.result = IngestResult(status, body)


def _invalid(field_name: str, message: str) -> Refused:
    """A 400 naming the field, as the REST API's errors do."""
    return Refused(400, f"{field_name}: {message}", {field_name: message})


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    job_id: uuid.UUID
    attempt: int
    seq: int | None
    timestamp: str | None
    data: dict[str, Any]


def ingest_event(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> IngestResult:
    """Verify one signed worker report and apply it; never raises for a bad request.

    `now` (unix seconds) replaces the clock for the signature's time window, for tests.
    """
    headers = {name.lower(): value for name, value in headers.items()}
    try:
        message = _parse_json(body)
        job_id = _job_id(message)
        secret = TrainingJob.objects.filter(pk=job_id).values_list("secret", flat=True).first()
        if not secret:
            # Unknown, or never started (no attempt has been given a secret yet): verify against a
            # secret nobody has, so the answer and its timing are those of a bad signature.
            secret = secrets.token_urlsafe(32)
        try:
            webhook_id = signing.verify(secret, headers, body, now=now)
        except signing.SignatureError as exc:
            logger.warning("webhook for job %s refused: %s", job_id, exc)
            raise Refused(401, f"invalid signature: {exc}") from exc
        envelope = _envelope(message, job_id, webhook_id)
        return _apply_once(envelope)
    except Refused as refused:
        return refused.result


# --- Parsing ----------------------------------------------------------------------------------


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        # NaN and Infinity are not JSON (PostgreSQL's jsonb refuses them): read them as null, and
        # so a literal beyond a double's range (1e400), which Python would read as infinity.
        message = json.loads(body, parse_constant=lambda _name: None, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused(400, "the body is not JSON", {"body": "not JSON"}) from exc
    if not isinstance(message, dict):
        raise Refused(400, "the body must be a JSON object", {"body": "must be a JSON object"})
    return _storable(message)


def _finite_float(literal: str) -> float | None:
    value = float(literal)
    return value if math.isfinite(value) else None


def _storable(value: Any) -> Any:
    """`value` with NUL and lone surrogates replaced in every string and key (they cannot be stored)."""
    if isinstance(value, str):
        return UNSTORABLE_CHARACTERS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _job_id(message: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(message["job_id"]))
    except (KeyError, ValueError) as exc:
        raise _invalid("job_id", "missing or not a UUID") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_int(value: Any, field_name: str, *, maximum: int = INT_MAX, required: bool = True) -> int | None:
    """`value` if it is an integer the column holds, None if absent and optional; else Refused."""
    if value is None and not required:
        return None
    if not _is_int(value):
        raise _invalid(field_name, f"must be an integer between 0 and {maximum}")
    if not 0 <= value <= maximum:
        raise _invalid(field_name, f"must be between 0 and {maximum}")
    return value


def _envelope(message: dict[str, Any], job_id: uuid.UUID, webhook_id: str) -> Envelope:
    """The signed body's envelope, checked; raises Refused(400) naming the bad field."""
    if message.get("id") != webhook_id:
        raise Refused(400, "the body's id must equal the webhook-id header",
                      {"id": "must equal the webhook-id header"})
    if len(webhook_id) > JobEvent._meta.get_field("webhook_id").max_length:
        raise _invalid("webhook-id", "too long")
    event_type = message.get("type")
    if event_type not in EVENT_TYPES:
        raise _invalid("type", f"unknown event type {event_type!r}")
    attempt = _bounded_int(message.get("attempt"), "attempt")
    seq = _bounded_int(message.get("seq"), "seq", required=False)
    data = message.get("data")
    if not isinstance(data, dict):
        raise _invalid("data", "must be a JSON object")
    timestamp = message.get("timestamp")
    envelope = Envelope(webhook_id, event_type, job_id, attempt, seq,
                        timestamp if isinstance(timestamp, str) else None, data)
    _check_data(envelope)
    return envelope


# Per type, the integer fields that reach a column: required, or checked only when present.
REQUIRED_STEPS = {"checkpoint_saved": "step", "resumed": "resumed_from_step"}
OPTIONAL_STEPS = {"interrupted": "last_checkpoint_step", "completed": "steps"}


def _check_data(event: Envelope) -> None:
    """The per-type fields the control plane relies on (docs/worker-contract.md), each within
    what its column holds."""
    data = event.data
    if event.type == "stage_changed" and data.get("stage") not in {s.value for s in WORKER_STAGES}:
        raise _invalid("stage", f"unknown stage {data.get('stage')!r}")
    if event.type == "metrics":
        points = data.get("points")
        if not isinstance(points, list):
            raise _invalid("points", "must be a list of objects with a non-negative integer step")
        for index, point in enumerate(points):
            _clean_point(point, f"points[{index}]")
    if event.type in REQUIRED_STEPS:
        _bounded_int(data.get(REQUIRED_STEPS[event.type]), REQUIRED_STEPS[event.type])
    if event.type in OPTIONAL_STEPS:
        _bounded_int(data.get(OPTIONAL_STEPS[event.type]), OPTIONAL_STEPS[event.type], required=False)


# --- Fencing and idempotency ------------------------------------------------------------------


def _apply_once(event: Envelope) -> IngestResult:
    now = timezone.now()
    with transaction.atomic():
        # The UPDATE both records that the worker is alive and takes the job's row lock
        # (PostgreSQL) or the write lock (SQLite) before anything is read, so events of one job
        # apply one at a time and a recovery cannot bump the attempt between our check and our
        # writes. A refusal or a duplicate rolls it back.
        if not TrainingJob.objects.filter(pk=event.job_id).update(last_heartbeat_at=now):
            raise Refused(404, "the job was deleted")  # after its signature verified
        job = TrainingJob.objects.get(pk=event.job_id)
        try:
            # Insert first: of several copies of one event racing here, the unique webhook_id
            # lets exactly one through; the others wait for its commit and then fail.
            with transaction.atomic():
                record = JobEvent.objects.create(
                    job_id=job.pk, event_type=event.type, source="worker",
                    severity=SEVERITY.get(event.type, JobEvent.Severity.INFO),
                    payload=_payload(job, event),
                    webhook_id=event.id, attempt=event.attempt, seq=event.seq,
                    received_at=now, processed=True, processed_at=now,
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
        note = APPLY[event.type](job, event, now)
        if note:
            JobEvent.objects.filter(pk=record.pk).update(processing_error=note)
    body: dict[str, Any] = {"accepted": True, "duplicate": False}
    if note:
        body["ignored"] = note
    return IngestResult(200, body)


def _payload(job: TrainingJob, event: Envelope) -> dict[str, Any]:
    """The JobEvent's payload: the event's data and envelope, and a recovery hint for interruptions."""
    payload = {**event.data, "seq": event.seq, "timestamp": event.timestamp}
    if event.type == "interrupted":
        reported = event.data.get("last_checkpoint_step")
        resume_from = max((s for s in (reported, job.last_checkpoint_step) if _is_int(s)), default=None)
        signal_name = event.data.get("signal") or "SIGTERM"
        payload["recovery"] = {
            "resume_from_step": resume_from,
            "hint": f"the worker stopped on {signal_name}; a new attempt resumes from "
                    + (f"the checkpoint at step {resume_from}" if resume_from is not None
                       else "the start (no committed checkpoint)"),
        }
    return payload


def _fence(job: TrainingJob, event: Envelope) -> IngestResult | None:
    """Refuse reports for finished jobs and from superseded attempts (the worker stops on both)."""
    if job.status == Status.CANCELLED:
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


def apply_started(job: TrainingJob, event: Envelope, now: datetime) -> str:
    # Under "worker", not at the top level: the executor's own keys (pod id, launcher pid)
    # are what poll/cancel use and must not be overwritten by what runs inside.
    reported = {k: event.data.get(k) for k in ("device", "quantization", "host", "pid", "base_model")}
    executor_ref = {**job.executor_ref, "worker": {**reported, "attempt": event.attempt}}
    _update(job, now, executor_ref=executor_ref, started_at=job.started_at or now)
    return ""


def apply_stage_changed(job: TrainingJob, event: Envelope, now: datetime) -> str:
    stage = event.data["stage"]
    # The table refuses backward moves and moves out of terminal states; the attempt guard
    # refuses a superseded attempt even if a recovery slipped in (it cannot: we hold the lock).
    if transition(job.pk, stage, attempt=event.attempt, actor="worker",
                  message=f"worker reported stage {stage}"):
        return ""
    return f"stage {stage} does not follow {job.status}"


def apply_heartbeat(job: TrainingJob, event: Envelope, now: datetime) -> str:
    return ""  # last_heartbeat_at was written with the lock


def apply_checkpoint_saved(job: TrainingJob, event: Envelope, now: datetime) -> str:
    step = event.data["step"]
    if job.last_checkpoint_step is None or step > job.last_checkpoint_step:
        _update(job, now, last_checkpoint_step=step)
    return ""


def apply_resumed(job: TrainingJob, event: Envelope, now: datetime) -> str:
    _update(job, now, resumed_from_step=event.data["resumed_from_step"])
    return ""


def apply_interrupted(job: TrainingJob, event: Envelope, now: datetime) -> str:
    step = event.data.get("last_checkpoint_step")
    if _is_int(step) and (job.last_checkpoint_step is None or step > job.last_checkpoint_step):
        _update(job, now, last_checkpoint_step=step)
    handler = _interruption_handler()
    if handler is not None:
        job_id, attempt = job.pk, event.attempt
        reason = f"worker reported {event.data.get('signal') or 'SIGTERM'}"
        # robust: the event is committed and answered 200 whatever the recovery service does.
        transaction.on_commit(lambda: handler(job_id, attempt, reason), robust=True)
    return ""


def _interruption_handler() -> Callable[[Any, int, str], Any] | None:
    """execution.handle_interruption, once the recovery service provides it."""
    try:
        from . import execution
    except ImportError:
        return None
    return getattr(execution, "handle_interruption", None)


def apply_error(job: TrainingJob, event: Envelope, now: datetime) -> str:
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


def apply_validation_results(job: TrainingJob, event: Envelope, now: datetime) -> str:
    fields: dict[str, Any] = {"results": {**job.results, "validation": event.data}}
    perplexity = (event.data.get("evaluators") or {}).get("perplexity") or {}
    trained = _number(perplexity.get("trained")) if isinstance(perplexity, dict) else None
    if trained is not None:
        fields["latest_perplexity"] = trained
    _update(job, now, **fields)
    return ""


def apply_completed(job: TrainingJob, event: Envelope, now: datetime) -> str:
    data = event.data
    updates: dict[str, Any] = {
        "results": {**job.results, "final": data},
        "progress_percentage": Decimal("100.00"),
        "estimated_time_remaining_minutes": 0,
    }
    started = job.started_at or job.attempt_started_at
    if started is not None:
        updates["actual_duration_minutes"] = max(0, round((now - started).total_seconds() / 60))
    for key, column in (("final_train_loss", "latest_loss"), ("final_eval_loss", "latest_eval_loss")):
        if _number(data.get(key)) is not None:
            updates[column] = _number(data.get(key))
    if _is_int(data.get("steps")) and data["steps"] >= 0:
        updates["current_step"] = data["steps"]
    if transition(job.pk, Status.COMPLETED, attempt=event.attempt, actor="worker",
                  message="the worker completed training", updates=updates):
        monitoring.finish_analysis(job.pk, now=now)
        # The adapter and reports are in storage by now (the worker uploads before it reports
        # completion); cataloguing them lists storage, so it runs as a task after commit.
        from artifacts.tasks import register_job_artifacts

        job_id = str(job.pk)
        transaction.on_commit(lambda: register_job_artifacts.delay(job_id))
        return ""
    return f"a {job.status} job cannot complete"


# --- Metrics ----------------------------------------------------------------------------------


def _number(value: Any, integer: bool = False) -> float | int | None:
    """A finite number (non-negative and rounded for integer columns), or None; an integer too
    big for a double is None too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    if integer:
        return max(0, round(number))
    return number


def _column_value(name: str, value: Any, path: str, maximum: int | None = None) -> float | int | None:
    """A metric value as its column stores it: None for null (or NaN); a 400 naming `path` when
    the column cannot hold it (an integer column beyond its range, a number beyond a double's)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, "must be a number or null")
    try:
        number = float(value)
    except OverflowError:
        raise _invalid(path, "must be a finite number") from None
    if maximum is None:
        return number
    rounded = round(number)
    if not 0 <= rounded <= maximum:
        raise _invalid(path, f"must be between 0 and {maximum}")
    return rounded


def _clean_point(point: Any, path: str = "point") -> dict[str, Any]:
    """One metrics point's step, total_steps and column values, range-checked (Refused names the
    field, e.g. points[3].eta_seconds)."""
    if not isinstance(point, dict):
        raise _invalid(path, "must be an object with a non-negative integer step")
    values = {
        name: _column_value(name, point.get(name), f"{path}.{name}", INTEGER_FIELDS.get(name))
        for name in MetricPoint.VALUE_FIELDS
    }
    if values["perplexity"] is None and values["eval_loss"] is not None and values["eval_loss"] < MAX_LOSS_FOR_PERPLEXITY:
        values["perplexity"] = math.exp(values["eval_loss"])
    return {
        "step": _bounded_int(point.get("step"), f"{path}.step"),
        "total_steps": _column_value("total_steps", point.get("total_steps"), f"{path}.total_steps", INT_MAX),
        "values": values,
    }


def apply_metrics(job: TrainingJob, event: Envelope, now: datetime) -> str:
    # One batch may carry the same step twice (a train log and an eval log): merge them first.
    incoming: dict[int, dict[str, Any]] = {}
    total_steps: int | None = None
    # Checked by _check_data already: this cannot raise.
    for point in sorted((_clean_point(p) for p in event.data["points"]), key=lambda p: p["step"]):
        merged = incoming.setdefault(point["step"], dict.fromkeys(MetricPoint.VALUE_FIELDS))
        merged.update({k: v for k, v in point["values"].items() if v is not None})
        total_steps = point["total_steps"] or total_steps
    if not incoming:
        return "an empty batch"

    existing = {
        row.step: row
        for row in MetricPoint.objects.select_for_update().filter(job_id=job.pk, step__in=list(incoming)).order_by("step")
    }
    to_create, to_update = [], []
    for step, values in incoming.items():
        row = existing.get(step)
        if row is None:
            to_create.append(MetricPoint(job_id=job.pk, attempt=event.attempt, step=step, reported_at=now, **values))
            continue
        # Within an attempt a later partial point (eval_loss only) fills in, never nulls out;
        # a newer attempt that re-trains the step replaces the superseded attempt's figures.
        replace = row.attempt < event.attempt
        for name, value in values.items():
            if value is not None or replace:
                setattr(row, name, value)
        row.attempt, row.reported_at = event.attempt, now
        to_update.append(row)
    MetricPoint.objects.bulk_create(to_create)
    MetricPoint.objects.bulk_update(to_update, [*MetricPoint.VALUE_FIELDS, "attempt", "reported_at"])
    metric_summaries.update_summaries(job.pk, incoming)

    _update_latest(job, event, now, incoming, total_steps)
    monitoring.analyse_metrics(job.pk, [{"step": step, **values} for step, values in incoming.items()], now=now,
                               job=job, total_steps=total_steps)
    return ""


def _update_latest(job: TrainingJob, event: Envelope, now: datetime,
                   points: dict[int, dict[str, Any]], total_steps: int | None) -> None:
    """The job's progress and latest_* from the batch's highest step, if that is news."""
    top = max(points)
    fresh_attempt = False
    if job.current_step is not None and top < job.current_step:
        fresh_attempt = _progress_is_from_older_attempt(job, event.attempt)
        if not fresh_attempt:
            return  # a late batch: what the job shows is newer

    def latest(name: str) -> Any:
        return next((points[s][name] for s in sorted(points, reverse=True) if points[s][name] is not None), None)

    fields: dict[str, Any] = {"current_step": top}
    for name, column in (("train_loss", "latest_loss"), ("eval_loss", "latest_eval_loss"),
                         ("learning_rate", "latest_learning_rate"), ("epoch", "current_epoch")):
        value = latest(name)
        if value is not None:
            fields[column] = value
    if points[top]["eta_seconds"] is not None:
        fields["estimated_time_remaining_minutes"] = math.ceil(points[top]["eta_seconds"] / 60)
    total = total_steps or job.total_steps
    if total_steps:
        fields["total_steps"] = total_steps
    if total:
        progress = min(Decimal(100), Decimal(top * 100) / Decimal(total)).quantize(Decimal("0.01"))
        # Never backwards within an attempt; a new attempt may honestly start lower.
        fields["progress_percentage"] = progress if fresh_attempt else max(progress, job.progress_percentage)
    _update(job, now, **fields)


def _progress_is_from_older_attempt(job: TrainingJob, attempt: int) -> bool:
    """Whether the job's current_step was reported by an attempt before this one.

    The metric row at that step says who reported it; a new attempt that resumes from an
    earlier checkpoint must be able to move progress below what the lost attempt reached.
    """
    reporter = MetricPoint.objects.filter(job_id=job.pk, step=job.current_step).values_list("attempt", flat=True)
    # order_by(): the default ordering by job would join the job table for nothing.
    return any(row_attempt < attempt for row_attempt in reporter.order_by())


APPLY: dict[str, Callable[[TrainingJob, Envelope, datetime], str]] = {
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
