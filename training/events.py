"""The job-event hook: the one way a JobEvent is recorded, and how the apps above learn of it.

`record_event` writes the row (worker reports, status changes, launches, anomalies, actions all
come through here) and then announces it. Apps above `training` (monitoring, artifacts, and the
coming budgets, validation and notifications) subscribe with `on_job_event`; `training` never
imports them.

    @on_job_event(JobEvent.Type.STATUS_CHANGED)
    def register_artifacts(event: JobEvent) -> None: ...

Two timings, one mechanism:

- default: the receiver runs inside the recording transaction, right after the row is written,
  in a savepoint of its own. Derived state that must agree with the event (the trend analysis
  of a metrics batch, under the job's row lock the ingestion holds, in report order) uses it.
- `after_commit=True`: the receiver runs once the transaction has committed, never for one
  that rolled back (a refused or duplicate report). Side effects (enqueue a task, send an email)
  use it.

Either way a receiver's failure is logged and swallowed: it never rolls back the event, the
ingestion or the transition that recorded it (the savepoint takes back only the receiver's own
writes), and the other receivers still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import JobEvent

logger = logging.getLogger(__name__)

Receiver = Callable[[JobEvent], Any]


@dataclass(frozen=True)
class Subscription:
    receiver: Receiver
    event_types: frozenset[str]  # empty: every event
    after_commit: bool

    def wants(self, event: JobEvent) -> bool:
        return not self.event_types or event.event_type in self.event_types


_subscriptions: list[Subscription] = []


def on_job_event(*event_types: str, after_commit: bool = False) -> Callable[[Receiver], Receiver]:
    """Decorator: call the receiver with each recorded JobEvent of these types (all if none).

    Register from an AppConfig.ready() (import the module of receivers there), once."""

    def connect(receiver: Receiver) -> Receiver:
        subscription = Subscription(receiver, frozenset(str(t) for t in event_types), after_commit)
        if subscription not in _subscriptions:
            _subscriptions.append(subscription)
        return receiver

    return connect


def disconnect(receiver: Receiver) -> None:
    """For tests: stop calling `receiver`."""
    _subscriptions[:] = [s for s in _subscriptions if s.receiver is not receiver]


def subscriptions() -> list[Subscription]:
    return list(_subscriptions)


def record_event(
    job_id: Any,
    event_type: str,
    *,
    source: str,
    severity: str = JobEvent.Severity.INFO,
    attempt: int | None = None,
    payload: dict[str, Any] | None = None,
    announce: bool = True,
    **fields: Any,
) -> JobEvent:
    """Write one JobEvent and (unless `announce=False`: the caller announces it once the event
    has taken effect, as webhook ingestion does) tell the subscribers.

    `fields` are the other JobEvent columns: the structured ones (`old_status`, `new_status`,
    `anomaly_kind`, `milestone_percent`, `step`) and the webhook's (`webhook_id`, `seq`,
    `received_at`)."""
    fields.setdefault("received_at", timezone.now())
    event = JobEvent.objects.create(job_id=job_id, event_type=event_type, source=source, severity=severity,
                                    attempt=attempt, payload=payload or {}, **fields)
    if announce:
        announce_event(event)
    return event


def record_events(events: Iterable[JobEvent]) -> list[JobEvent]:
    """Write several unsaved JobEvents in one INSERT and announce each, in order."""
    created = JobEvent.objects.bulk_create(list(events))
    for event in created:
        announce_event(event)
    return created


def announce_event(event: JobEvent) -> None:
    """Run the event's subscribers: in-transaction ones now, each in a savepoint; the others on
    commit. Failures are logged, never raised."""
    for subscription in _subscriptions:
        if not subscription.wants(event):
            continue
        if subscription.after_commit:
            transaction.on_commit(lambda s=subscription: _call(s.receiver, event))
        else:
            _call_in_savepoint(subscription.receiver, event)


def _call_in_savepoint(receiver: Receiver, event: JobEvent) -> None:
    try:
        with transaction.atomic():
            receiver(event)
    except Exception:
        logger.exception("job %s: the %s receiver %s failed; the event stands", event.job_id,
                         event.event_type, _name(receiver))


def _call(receiver: Receiver, event: JobEvent) -> None:
    try:
        receiver(event)
    except Exception:
        logger.exception("job %s: the %s receiver %s failed after commit; the event stands", event.job_id,
                         event.event_type, _name(receiver))


def _name(receiver: Receiver) -> str:
    return f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)!s}"
