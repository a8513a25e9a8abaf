"""Job states, the one transition table, and the one function that applies it.

Every status change in the system goes through `transition()`: a compare-and-set UPDATE that
only succeeds from a state the table allows, followed (in the same transaction) by a JobEvent.
Two processes racing to move the same job (two beat schedulers, a webhook and a poll) cannot
both win: the loser's UPDATE matches no row and it gets False back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models, transaction
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    PROVISIONING = "provisioning", "Provisioning"
    PREPROCESSING = "preprocessing", "Preprocessing"
    MODEL_LOADING = "model_loading", "Model loading"
    TRAINING = "training", "Training"
    FINALIZING = "finalizing", "Finalizing"
    VALIDATING = "validating", "Validating"
    COMPLETED = "completed", "Completed"
    RECOVERING = "recovering", "Recovering"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
# The stages a worker reports, in the order they happen within one attempt.
WORKER_STAGES = (
    Status.PREPROCESSING,
    Status.MODEL_LOADING,
    Status.TRAINING,
    Status.FINALIZING,
    Status.VALIDATING,
)
# States in which a worker process (pod or subprocess) may be alive.
ACTIVE = frozenset({Status.PROVISIONING, *WORKER_STAGES, Status.RECOVERING})
NOT_STARTED = frozenset({Status.PENDING})


def _forward_from(stage: Status) -> set[Status]:
    """Worker stages may be skipped (a fast stage reported late) but never go backwards."""
    later = list(WORKER_STAGES[WORKER_STAGES.index(stage) + 1:])
    return {*later, Status.COMPLETED, Status.RECOVERING, Status.FAILED, Status.CANCELLED}


TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.QUEUED, Status.CANCELLED, Status.FAILED}),
    Status.QUEUED: frozenset({Status.PROVISIONING, Status.CANCELLED, Status.FAILED}),
    Status.PROVISIONING: frozenset(
        {*WORKER_STAGES, Status.COMPLETED, Status.RECOVERING, Status.FAILED, Status.CANCELLED}
    ),
    **{stage: frozenset(_forward_from(stage)) for stage in WORKER_STAGES},
    # A recovering job gets a new attempt, which starts by provisioning again.
    Status.RECOVERING: frozenset({Status.PROVISIONING, Status.FAILED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def allowed_sources(target: Status) -> frozenset[Status]:
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)


def can_transition(source: str, target: str) -> bool:
    return Status(target) in TRANSITIONS[Status(source)]


class IllegalTransition(Exception):
    """An action the job's current state does not allow; str() is a sentence for the user."""


# Why an action is refused, by the state the job is in; used for 409 answers.
_REFUSALS = {
    "start": "only a pending job can be started",
    "cancel": "only a job that has not finished can be cancelled",
    "delete": "only a job that was never started can be deleted",
    "retry": "only a failed or cancelled job can be retried",
}


def refusal(action: str, job_name: str, status: str) -> IllegalTransition:
    label = Status(status).label.lower()
    return IllegalTransition(f"Job '{job_name}' is {label}: {_REFUSALS[action]}.")


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
    from .models import JobEvent, TrainingJob

    target = Status(target)
    allowed = allowed_sources(target)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    now = timezone.now()
    fields: dict[str, Any] = {"status": target, "updated_at": now, **(updates or {})}
    if target in TERMINAL:
        fields.setdefault("completed_at", now)
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
        JobEvent.objects.create(
            job_id=job_id,
            event_type=JobEvent.Type.STATUS_CHANGED,
            source=actor,
            attempt=attempt,
            severity=JobEvent.Severity.ERROR if target == Status.FAILED else JobEvent.Severity.INFO,
            payload={"from": previous, "to": target.value, "message": message, **(payload or {})},
            processed=True,
            processed_at=now,
        )
    return True
