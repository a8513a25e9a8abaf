"""Reading a worker's signed report: JSON, signature, envelope, and every field within what
its column holds (docs/worker-contract.md, "Events").

`read_report(headers, body)` returns the checked `Envelope` or raises `Refused` with the answer:

1. the body is a JSON object naming a job id (400 malformed);
2. the Standard Webhooks signature verifies with that job's secret, in constant time, within
   the 5-minute window (401). An unknown job and a never-started one (no secret yet) are checked
   against a random secret and fail the same way, so the answer says nothing about which jobs
   exist. Then the body's `id` is the `webhook-id` header and every field fits the contract and
   its column (400 `{"detail", "errors": {field: message}}`, e.g. `points[3].step`).

Nothing here writes; `training.services.ingest` applies what this accepts.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpu_worker import contract, signing

from ..models import JobEvent, MetricPoint, TrainingJob
from ..states import WORKER_STAGES

logger = logging.getLogger(__name__)

EVENT_TYPES = contract.EVENT_TYPES
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
ESCAPED_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
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


def invalid(field_name: str, message: str) -> Refused:
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
    # A metrics report's points, checked and converted to their columns' values (clean_point).
    points: tuple[dict[str, Any], ...] = ()


def read_report(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> Envelope:
    """The verified, checked report; raises Refused (400/401) saying what is wrong and where.

    `now` (unix seconds) replaces the clock for the signature's time window, for tests.
    """
    headers = {name.lower(): value for name, value in headers.items()}
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
    return _envelope(message, job_id, webhook_id)


# --- Parsing and bounds ----------------------------------------------------------------------------------


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        # NaN and Infinity are not JSON (PostgreSQL's jsonb refuses them): read them as null, and
        # so a literal beyond a double's range (1e400), which Python would read as infinity.
        message = json.loads(body, parse_constant=lambda _name: None, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused(400, "the body is not JSON", {"body": "not JSON"}) from exc
    if not isinstance(message, dict):
        raise Refused(400, "the body must be a JSON object", {"body": "must be a JSON object"})
    # NUL and lone surrogates can only arrive escaped (strict JSON refuses raw control
    # characters; UTF-8 cannot carry surrogates): without such an escape (and without NUL bytes,
    # which UTF-16/32 bodies have) there is nothing to replace, and walking a 1,000-point batch
    # would cost more than the rest of its parsing.
    if b"\x00" not in body and not ESCAPED_UNSTORABLE.search(body):
        return message
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
        raise invalid("job_id", "missing or not a UUID") from exc


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def bounded_int(value: Any, field_name: str, *, maximum: int = INT_MAX, required: bool = True) -> int | None:
    """`value` if it is an integer the column holds, None if absent and optional; else Refused."""
    if value is None and not required:
        return None
    if not is_int(value):
        raise invalid(field_name, f"must be an integer between 0 and {maximum}")
    if not 0 <= value <= maximum:
        raise invalid(field_name, f"must be between 0 and {maximum}")
    return value


def _envelope(message: dict[str, Any], job_id: uuid.UUID, webhook_id: str) -> Envelope:
    """The signed body's envelope, checked; raises Refused(400) naming the bad field."""
    if message.get("id") != webhook_id:
        raise Refused(400, "the body's id must equal the webhook-id header",
                      {"id": "must equal the webhook-id header"})
    if len(webhook_id) > JobEvent._meta.get_field("webhook_id").max_length:
        raise invalid("webhook-id", "too long")
    event_type = message.get("type")
    if event_type not in EVENT_TYPES:
        raise invalid("type", f"unknown event type {event_type!r}")
    attempt = bounded_int(message.get("attempt"), "attempt")
    seq = bounded_int(message.get("seq"), "seq", required=False)
    data = message.get("data")
    if not isinstance(data, dict):
        raise invalid("data", "must be a JSON object")
    timestamp = message.get("timestamp")
    points = _check_data(event_type, data)
    return Envelope(webhook_id, event_type, job_id, attempt, seq, timestamp if isinstance(timestamp, str) else None,
                    data, tuple(points))


# Per type, the integer fields that reach a column: required, or checked only when present.
REQUIRED_STEPS = contract.REQUIRED_STEP_FIELDS
OPTIONAL_STEPS = contract.OPTIONAL_STEP_FIELDS


def _check_data(event_type: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-type fields the control plane relies on (docs/worker-contract.md), each within
    what its column holds; a metrics report's points come back checked (once: applying uses them)."""
    points: list[dict[str, Any]] = []
    if event_type == "stage_changed" and data.get("stage") not in {s.value for s in WORKER_STAGES}:
        raise invalid("stage", f"unknown stage {data.get('stage')!r}")
    if event_type == "metrics":
        raw = data.get("points")
        if not isinstance(raw, list):
            raise invalid("points", "must be a list of objects with a non-negative integer step")
        points = [clean_point(point, f"points[{index}]") for index, point in enumerate(raw)]
    if event_type in REQUIRED_STEPS:
        bounded_int(data.get(REQUIRED_STEPS[event_type]), REQUIRED_STEPS[event_type])
    if event_type in OPTIONAL_STEPS:
        bounded_int(data.get(OPTIONAL_STEPS[event_type]), OPTIONAL_STEPS[event_type], required=False)
    return points


# --- Metric values --------------------------------------------------------------------------------


def number(value: Any, integer: bool = False) -> float | int | None:
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
        raise invalid(path, "must be a number or null")
    try:
        number = float(value)
    except OverflowError:
        raise invalid(path, "must be a finite number") from None
    if maximum is None:
        return number
    rounded = round(number)
    if not 0 <= rounded <= maximum:
        raise invalid(path, f"must be between 0 and {maximum}")
    return rounded


def clean_point(point: Any, path: str = "point") -> dict[str, Any]:
    """One metrics point's step, total_steps and column values, range-checked (Refused names the
    field, e.g. points[3].eta_seconds)."""
    if not isinstance(point, dict):
        raise invalid(path, "must be an object with a non-negative integer step")
    values = {
        name: _column_value(name, point.get(name), f"{path}.{name}", INTEGER_FIELDS.get(name))
        for name in MetricPoint.VALUE_FIELDS
    }
    if values["perplexity"] is None and values["eval_loss"] is not None and values["eval_loss"] < MAX_LOSS_FOR_PERPLEXITY:
        values["perplexity"] = math.exp(values["eval_loss"])
    return {
        "step": bounded_int(point.get("step"), f"{path}.step"),
        "total_steps": _column_value("total_steps", point.get("total_steps"), f"{path}.total_steps", INT_MAX),
        "values": values,
    }
