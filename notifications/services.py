"""Deciding who is told about what, writing the notifications, and delivering them once.

- `notify_about_event(event)`: the hook's receiver calls it inside the event's transaction (in
  the hook's savepoint, so a failure here never rolls the event back): one `Notification` row
  per (event, recipient, channel); their delivery is enqueued once the transaction commits.
- `deliver_notification(pk)`: claim by compare-and-set, render, send, record the outcome. A
  transient failure is retried with backoff (honouring Retry-After); a permanent one switches
  the user's channel off. The beat sweep (`deliver_due_notifications`) picks up whatever a lost
  task or a vanished worker left behind, so nothing is lost.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from training.models import JobEvent, TrainingJob

from .channels import CHANNELS, TransportError
from .kinds import DEFAULT_KINDS, EventFacts, Kind, backoff_seconds, cost_overrun, kind_of
from .messages import build_message
from .models import Notification, NotificationSettings, UserChannel

logger = logging.getLogger(__name__)


# --- Who is told -------------------------------------------------------------------------------


def may_see(user, job: TrainingJob) -> bool:
    return user.is_active and TrainingJob.objects.visible_to(user).filter(pk=job.pk).exists()


def recipients(job: TrainingJob, kind: str) -> list[tuple[Any, NotificationSettings, list[str]]]:
    """(user, their settings, channels) for everyone who asked to hear `kind` about this job and
    may see it: the owner (with the defaults if they never chose) and whoever follows its
    project or all jobs. A user who may not see the job is never told about it."""
    found: dict[int, tuple[Any, NotificationSettings, list[str]]] = {}
    candidates: list[NotificationSettings] = []
    if job.created_by_id is not None and job.created_by is not None:
        candidates.append(NotificationSettings.for_user(job.created_by))
    others = (NotificationSettings.objects.select_related("user")
              .filter(scope__in=[NotificationSettings.Scope.ALL, NotificationSettings.Scope.PROJECTS])
              .exclude(user_id=job.created_by_id))
    candidates.extend(others)
    for prefs in candidates:
        user = prefs.user
        channels = prefs.channels_for(kind)
        if not channels or not prefs.covers(job) or not may_see(user, job):
            continue
        found[user.pk] = (user, prefs, channels)
    return list(found.values())


# --- Writing notifications --------------------------------------------------------------------


def notify_about_event(event: JobEvent) -> list[Notification]:
    """The notifications an event causes, written now (inside the event's transaction)."""
    facts = EventFacts(event_type=event.event_type, new_status=event.new_status, old_status=event.old_status,
                       anomaly_kind=event.anomaly_kind, severity=event.severity,
                       milestone_percent=event.milestone_percent)
    kind = kind_of(facts)
    if kind is not None and not anyone_wants(kind):
        kind = None  # the common case for milestones and findings: one query, no job read
    if kind is None and event.event_type not in COST_CHECKED:
        return []
    job = _job(event)
    if job is None:
        return []
    created: list[Notification] = []
    if kind is not None:
        # A milestone is told once per job whichever attempt or report reached it first.
        key = (f"milestone:{job.pk}:{event.milestone_percent}" if kind == Kind.MILESTONE
               else f"event:{event.pk}")
        created += create_notifications(job, kind, key=key, event=event)
    if event.event_type in COST_CHECKED:
        created += check_cost_overrun(job)
    return created


# The events after which the running cost is compared with the estimate.
COST_CHECKED = (JobEvent.Type.HEARTBEAT, JobEvent.Type.STATUS_CHANGED)


def anyone_wants(kind: str) -> bool:
    """Whether anybody could be told about this kind: an owner's defaults name it, or some
    user's settings do. Metrics batches raise milestones and findings under the job's lock, so
    the answer for a kind nobody asked about costs one existence query and reads no job."""
    return str(kind) in DEFAULT_KINDS or NotificationSettings.objects.filter(kinds__has_key=str(kind)).exists()


def check_cost_overrun(job: TrainingJob) -> list[Notification]:
    """Once per job: the running cost has passed the estimate by more than 20 %."""
    actual = float(job.actual_cost) if job.actual_cost is not None else None
    estimate = float(job.cost_estimate) if job.cost_estimate is not None else None
    if not cost_overrun(actual, estimate):
        return []
    return create_notifications(job, Kind.COST_OVER_ESTIMATE, key=f"cost:{job.pk}",
                                payload={"actual_cost": str(job.actual_cost), "cost_estimate": str(job.cost_estimate)})


def create_notifications(job: TrainingJob, kind: str, *, key: str, event: JobEvent | None = None,
                         payload: dict[str, Any] | None = None) -> list[Notification]:
    """One row per recipient and channel, each once (`key` + recipient + channel is unique);
    delivery is enqueued on commit. Channels a permanent failure switched off are left out."""
    now = timezone.now()
    created: list[Notification] = []
    wanted = recipients(job, kind)
    endpoints = {(c.user_id, c.kind): c for c in UserChannel.objects.filter(user__in=[u for u, _, _ in wanted])}
    for user, prefs, channels in wanted:
        for channel in channels:
            endpoint = endpoints.get((user.pk, channel))
            if channel != "email" and (endpoint is None or not endpoint.target):
                continue
            if endpoint is not None and not endpoint.enabled:
                continue
            digest = channel == "email" and prefs.digests(kind)
            row = Notification(kind=str(kind), channel=channel, recipient=user, job=job, event=event,
                               dedupe_key=f"{key}:{user.pk}:{channel}", payload=payload or {},
                               status=Notification.Status.DIGEST if digest else Notification.Status.PENDING,
                               next_attempt_at=now, created_at=now)
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                continue  # told already (a redelivered report, another attempt's milestone)
            created.append(row)
    for row in created:
        if row.status == Notification.Status.PENDING:
            enqueue_delivery(row.pk)
    return created


def enqueue_delivery(pk: int, *, countdown: float | None = None) -> None:
    def send() -> None:
        if countdown and settings.CELERY_TASK_ALWAYS_EAGER:
            return  # in-process tasks cannot wait; the sweep (or the next run) retries it
        deliver_notification_task.apply_async((pk,), countdown=countdown)

    # robust: a broker that is down must not turn a committed event into an error for its
    # caller (the worker's webhook); the sweep delivers what was not enqueued.
    transaction.on_commit(send, robust=True)


def _job(event: JobEvent) -> TrainingJob | None:
    job = (getattr(event, "context", None) or {}).get("job")
    if isinstance(job, TrainingJob) and job.pk == event.job_id:
        return job
    return TrainingJob.objects.select_related("created_by").filter(pk=event.job_id).first()


# --- Delivering -------------------------------------------------------------------------------


def endpoint_for(notification: Notification) -> UserChannel:
    found = UserChannel.objects.filter(user=notification.recipient, kind=notification.channel).first()
    return found if found is not None else UserChannel(user=notification.recipient, kind=notification.channel)


def deliver_notification(pk: int, *, now=None) -> str:
    """Send one notification if it is due and nobody else is sending it. Returns what happened
    (sent, retry, failed, skipped, or why nothing was done)."""
    notification = Notification.objects.select_related("recipient", "job", "event").filter(pk=pk).first()
    if notification is None:
        return "gone"
    if not notification.claim(now):
        # Sent, held for a digest, not due yet, or another sender holds it ("taken").
        return "taken" if notification.status == Notification.Status.SENDING else "not due"
    endpoint = endpoint_for(notification)
    if not endpoint.enabled:
        notification.mark_skipped(f"the {notification.channel} channel is switched off: {endpoint.disabled_reason}")
        return "skipped"
    if notification.job is not None and not may_see(notification.recipient, notification.job):
        notification.mark_skipped("the recipient may no longer see this job")
        return "skipped"
    try:
        message = build_message(notification)
        CHANNELS.get(notification.channel).notify(message, endpoint)
    except TransportError as exc:
        return _record_failure(notification, exc)
    except Exception as exc:  # a bug in rendering: keep it, retry later, say what went wrong
        logger.exception("notification %s could not be sent", pk)
        return _record_failure(notification, TransportError(f"{exc.__class__.__name__}: {exc}"))
    notification.mark_sent(message.subject)
    return "sent"


def _record_failure(notification: Notification, exc: TransportError) -> str:
    error = str(exc)
    if exc.permanent or notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        notification.mark_failed(error if exc.permanent else f"gave up after {notification.attempts} tries: {error}")
        if exc.permanent:
            # The email channel may have no row yet (the account's address): make one, off.
            UserChannel.objects.update_or_create(
                user=notification.recipient, kind=notification.channel,
                defaults={"enabled": False, "disabled_reason": error[:2000], "disabled_at": timezone.now()})
        logger.warning("notification %s failed for good: %s", notification.pk, error)
        return "failed"
    delay = backoff_seconds(notification.attempts, base=settings.NOTIFICATION_RETRY_BASE_SECONDS,
                            retry_after=exc.retry_after)
    notification.mark_retry(error, timezone.now() + timedelta(seconds=delay))
    enqueue_delivery(notification.pk, countdown=delay)
    return "retry"


def deliver_due_notifications(*, now=None, limit: int = 500) -> int:
    """The beat sweep: deliver what is due (a retry whose time came, a task that was lost, a
    claim whose sender vanished). Returns how many were attempted."""
    pks = list(Notification.objects.due(now).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    for pk in pks:
        deliver_notification(pk, now=now)
    return len(pks)


def resend(notifications) -> int:
    """Staff's resend: a failed or skipped notification is due again; its channel is switched
    back on (a permanent failure switched it off)."""
    count = 0
    for notification in notifications:
        if notification.resend():
            UserChannel.objects.filter(user=notification.recipient, kind=notification.channel).update(
                enabled=True, disabled_reason="", disabled_at=None)
            enqueue_delivery(notification.pk)
            count += 1
    return count


# --- Tasks (defined beside the service they wrap; tasks.py re-exports them) -------------------


@shared_task(name="notifications.tasks.deliver_notification", bind=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=None)
def deliver_notification_task(self, pk: int) -> str:
    # acks_late + reject_on_worker_lost: a worker killed mid-send gets the task redelivered. The
    # claim (compare-and-set with a lease) lets only one sender through; a redelivery that finds
    # the notification still claimed by a sender that may have died comes back when the lease
    # runs out, and sends only if it was not sent (the beat sweep does the same for lost tasks).
    outcome = deliver_notification(pk)
    if outcome == "taken" and not settings.CELERY_TASK_ALWAYS_EAGER:
        raise self.retry(countdown=settings.NOTIFICATION_CLAIM_LEASE_SECONDS + 1)
    return outcome


@shared_task(name="notifications.tasks.deliver_due_notifications")
def deliver_due_notifications_task() -> int:
    return deliver_due_notifications()
