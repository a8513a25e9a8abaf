"""The one function that changes a job's status, by the table in `training.states`.

Every status change in the system goes through `transition()`: a compare-and-set UPDATE that
only succeeds from a state the table allows, followed (in the same transaction) by a
`status_changed` JobEvent recorded through the job-event hook (training.events). Two processes
racing to move the same job (two beat schedulers, a webhook and a poll) cannot both win: the
loser's UPDATE matches no row and it gets False back.

The states and the table are re-exported here, so `from training.lifecycle import Status,
transition` reads as one vocabulary.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from .events import record_event
from .models import JobEvent, TrainingJob
from .states import (
    ACTIVE,
    NOT_STARTED,
    TERMINAL,
    TRANSITIONS,
    WORKER_STAGES,
    IllegalTransition,
    Status,
    allowed_sources,
    can_transition,
    refusal,
)

__all__ = [
    "ACTIVE", "NOT_STARTED", "TERMINAL", "TRANSITIONS", "WORKER_STAGES", "IllegalTransition", "Status",
    "allowed_sources", "can_transition", "refusal", "transition",
]


def transition(
    job_id: Any,
    target: Status | str,
    *,
    sources: frozenset[Status] | set[Status] | None = None,
    attempt: int | None = None,
    message: str = "",
    actor: str = "system",
    payload: dict | None = None,
    updates: dict | None = None,
) -> bool:
    """Move the job to `target` if, and only if, its current state allows it.

    `sources` narrows the states to move from (e.g. only from RECOVERING); `attempt` makes the
    change conditional on the job still being on that attempt (reports from a superseded
    attempt must not move the job). `updates` are written in the same UPDATE. Returns whether
    this call made the change; exactly one of several racing callers gets True.
    """
    target = Status(target)
    allowed = allowed_sources(target)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    now = timezone.now()
    fields: dict[str, Any] = {"status": target, "updated_at": now, **(updates or {})}
    if target in TERMINAL:
        fields.setdefault("completed_at", now)
        # A finished job has no time left: every view shows its end, not a stale countdown.
        fields.setdefault("estimated_time_remaining_minutes", None)
    if target in WORKER_STAGES:
        fields.setdefault("current_stage", target.value)
    with transaction.atomic():
        # Read the old status inside the transaction for the event's record; the UPDATE's
        # WHERE clause, not this read, is what decides who wins.
        previous = TrainingJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        rows = TrainingJob.objects.filter(pk=job_id, status__in=allowed)
        if attempt is not None:
            rows = rows.filter(attempt=attempt)
        if rows.update(**fields) != 1:
            return False  # Someone else moved it first, or the move is not allowed from here.
        record_event(
            job_id, JobEvent.Type.STATUS_CHANGED, source=actor, attempt=attempt,
            severity=JobEvent.Severity.ERROR if target == Status.FAILED else JobEvent.Severity.INFO,
            payload={"from": previous, "to": target.value, "message": message, **(payload or {})},
            old_status=previous or "", new_status=target.value, received_at=now,
        )
    return True
