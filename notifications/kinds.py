"""What a notification is about: the kinds a user subscribes to, and which event is which kind.

Pure: no Django, no models, so the mapping from a job event's structured columns to a kind is
tested on its own. The receivers pass the columns in; budgets and validation add their kinds
through job events of their own (they sit below this app and never import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    RECOVERED = "recovered"
    MILESTONE = "milestone"
    ANOMALY_CRITICAL = "anomaly_critical"
    ANOMALY = "anomaly"
    COST_OVER_ESTIMATE = "cost_over_estimate"
    BUDGET_THRESHOLD = "budget_threshold"
    VALIDATION_FINISHED = "validation_finished"
    REVIEW_REQUESTED = "review_requested"
    APPROVED = "approved"
    REJECTED = "rejected"


LABELS: dict[Kind, str] = {
    Kind.COMPLETED: "Job completed",
    Kind.FAILED: "Job failed",
    Kind.CANCELLED: "Job cancelled",
    Kind.INTERRUPTED: "Interrupted (recovery starts)",
    Kind.RECOVERED: "Recovered after an interruption",
    Kind.MILESTONE: "Milestones (25, 50, 75, 100 %)",
    Kind.ANOMALY_CRITICAL: "Critical anomalies (divergence, loss spike)",
    Kind.ANOMALY: "Other findings (new best, overfitting, plateau, stall)",
    Kind.COST_OVER_ESTIMATE: "Cost more than 20 % over the estimate",
    Kind.BUDGET_THRESHOLD: "Budget thresholds",
    Kind.VALIDATION_FINISHED: "Validation finished",
    Kind.REVIEW_REQUESTED: "Review requested",
    Kind.APPROVED: "Model approved",
    Kind.REJECTED: "Model rejected (or changes requested)",
}

# Told at once even to a user who takes a digest: these need someone now.
URGENT = frozenset({Kind.FAILED, Kind.ANOMALY_CRITICAL, Kind.COST_OVER_ESTIMATE, Kind.BUDGET_THRESHOLD})

# The anomaly kinds of monitoring.trend_state that are critical (seed 001): the run is going
# wrong and someone should look now. Every other finding is "normal".
CRITICAL_ANOMALIES = frozenset({"divergence", "spike", "loss_spike", "heartbeat_stale"})

# A user with no settings yet: the owner hears that a job finished or failed, and that QA
# rejected the model or asked for changes, by email.
DEFAULT_KINDS: dict[str, list[str]] = {Kind.COMPLETED: ["email"], Kind.FAILED: ["email"], Kind.REJECTED: ["email"]}

# A review's state (validation.models.ModelReview) -> the kind its event is told as; asking for
# changes is told as a rejection (the message says which).
REVIEW_KINDS: dict[str, Kind] = {"awaiting_review": Kind.REVIEW_REQUESTED, "approved": Kind.APPROVED,
                                 "rejected": Kind.REJECTED, "changes_requested": Kind.REJECTED}

# The cost alert fires once the running cost passes the estimate by this fraction (seed 002).
COST_OVERRUN_FRACTION = 0.20

# Outgoing webhook event types. The first three are the names fine-tuning API users already
# consume (OpenAI's fine_tuning.job.* webhooks); the rest are ours, in the same namespace.
WEBHOOK_TYPES: dict[Kind, str] = {
    Kind.COMPLETED: "fine_tuning.job.succeeded",
    Kind.FAILED: "fine_tuning.job.failed",
    Kind.CANCELLED: "fine_tuning.job.cancelled",
    Kind.INTERRUPTED: "fine_tuning.job.interrupted",
    Kind.RECOVERED: "fine_tuning.job.recovered",
    Kind.MILESTONE: "fine_tuning.job.milestone",
    Kind.ANOMALY_CRITICAL: "fine_tuning.job.anomaly",
    Kind.ANOMALY: "fine_tuning.job.anomaly",
    Kind.COST_OVER_ESTIMATE: "fine_tuning.job.cost_over_estimate",
    Kind.BUDGET_THRESHOLD: "fine_tuning.budget.threshold",
    Kind.VALIDATION_FINISHED: "fine_tuning.job.validation_finished",
    Kind.REVIEW_REQUESTED: "fine_tuning.model.review_requested",
    Kind.APPROVED: "fine_tuning.model.approved",
    Kind.REJECTED: "fine_tuning.model.rejected",
}


@dataclass(frozen=True)
class EventFacts:
    """The structured columns of a JobEvent that decide its kind."""

    event_type: str
    new_status: str = ""
    old_status: str = ""
    anomaly_kind: str = ""
    severity: str = "info"
    milestone_percent: int | None = None


def kind_of(facts: EventFacts) -> Kind | None:
    """The notification kind of a job event, or None for events nobody is told about
    (metrics, heartbeats, stage changes, checkpoints...)."""
    if facts.event_type == "status_changed":
        return {
            "completed": Kind.COMPLETED,
            "failed": Kind.FAILED,
            "cancelled": Kind.CANCELLED,
            "recovering": Kind.INTERRUPTED,
        }.get(facts.new_status)
    if facts.event_type == "resumed":
        return Kind.RECOVERED
    if facts.event_type == "milestone" and facts.milestone_percent in (25, 50, 75, 100):
        return Kind.MILESTONE
    if facts.event_type == "validation_finished":
        return Kind.VALIDATION_FINISHED
    if facts.event_type == "review":  # QA's review of the model: new_status is its state
        return REVIEW_KINDS.get(facts.new_status)
    if facts.event_type == "anomaly":
        critical = facts.anomaly_kind in CRITICAL_ANOMALIES or facts.severity == "critical"
        return Kind.ANOMALY_CRITICAL if critical else Kind.ANOMALY
    return None


def cost_overrun(actual: float | None, estimate: float | None) -> bool:
    """Whether the running cost is more than COST_OVERRUN_FRACTION over a positive estimate."""
    if actual is None or estimate is None or estimate <= 0:
        return False
    return actual > estimate * (1 + COST_OVERRUN_FRACTION)


def backoff_seconds(attempts: int, *, base: float = 30.0, cap: float = 3600.0,
                    retry_after: float | None = None) -> float:
    """When to try again after `attempts` failed tries: base × 2^(n-1) capped, but never sooner
    than the receiver's Retry-After."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, cap * 24))
    return delay
