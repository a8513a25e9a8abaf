"""Job states and the one transition table: which status may follow which.

Pure data and predicates (no queries), so models, forms and every service can read them.
`training.lifecycle.transition` is the one function that applies the table.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models

from core.errors import StateConflict
from gpu_worker.contract import STAGES


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
# The worker's stage names (gpu_worker.contract.STAGES), as job states; Status(...) refuses a
# stage that has no job state, so the two lists cannot drift apart.
WORKER_STAGES = tuple(Status(stage) for stage in STAGES)
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


class IllegalTransition(StateConflict):
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
