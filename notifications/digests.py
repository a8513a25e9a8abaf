"""Digests: a user who chose an hourly or daily digest gets their non-urgent email
notifications as one email per period.

`services.create_notifications` holds those rows back (status DIGEST); failures, critical
anomalies and the cost and budget alerts are never held (kinds.URGENT). `send_due_digests`
(beat, every 5 minutes) sends one digest to each user whose period has passed since their last
digest (`NotificationSettings.last_digest_at`), or since their oldest held row for a first one.
A user who switched digests off with rows still held gets them at the next run.

Once, however many senders run: per user, in one transaction under the lock of their settings
row,
  1. the held rows are read and the period checked;
  2. one `Notification` of kind "digest" is written, its dedupe key the user, the period's start
     and the first row it includes (a racing sender's insert fails on the unique key), its
     payload the ids of the rows it includes;
  3. those rows become DIGESTED (UPDATE ... WHERE status = 'digest' AND id IN (...)) and
     last_digest_at moves to now.
A digest row therefore never exists without its rows marked, nor the reverse. The digest row
is then delivered like any notification (`services.deliver_notification`: claim by
compare-and-set, retry with backoff, a permanent failure switches the channel off), and the
beat sweep retries what a down mail server refused, so nothing is lost.

`build_digest_message(notification)` renders the digest when it is sent: the included rows
grouped by job, each with what happened, when and at which step, and a link to the job's
dashboard; a job the recipient may no longer see is left out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from core import humanize
from training.models import TrainingJob

from .channels import Message
from .kinds import LABELS, Kind
from .messages import job_url, settings_url, site_url
from .models import Notification, NotificationSettings
from .services import deliver_notification

PERIODS: dict[str, timedelta] = {
    NotificationSettings.Digest.HOURLY: timedelta(hours=1),
    NotificationSettings.Digest.DAILY: timedelta(days=1),
}
# One email holds at most this many items; the rest wait for the next digest.
MAX_ITEMS = 500
KIND = "digest"

# How a line of a digest names what happened (kinds.LABELS name what one subscribes to).
LINE_LABELS: dict[str, str] = {
    Kind.COMPLETED: "Completed", Kind.CANCELLED: "Cancelled", Kind.INTERRUPTED: "Interrupted (recovery starts)",
    Kind.RECOVERED: "Recovered", Kind.MILESTONE: "Milestone", Kind.ANOMALY: "Finding",
    Kind.VALIDATION_FINISHED: "Validation finished", Kind.REVIEW_REQUESTED: "Review requested",
    Kind.APPROVED: "Approved", Kind.REJECTED: "Rejected",
}


def send_due_digests(now: datetime | None = None) -> int:
    """Send every digest that is due; returns how many were written (each is delivered at once,
    and retried by the sweep if the mail server did not take it)."""
    now = now or timezone.now()
    users = (Notification.objects.filter(status=Notification.Status.DIGEST, channel="email")
             .order_by().values_list("recipient_id", flat=True).distinct())
    count = 0
    for user_id in list(users):
        pk = claim_digest(user_id, now)
        if pk is not None:
            count += 1
            deliver_notification(pk, now=now)
    return count


def claim_digest(user_id: int, now: datetime) -> int | None:
    """Write the user's digest if one is due and mark the rows it includes; its id, or None
    (not due, nothing held, or another sender wrote it)."""
    with transaction.atomic():
        prefs = (NotificationSettings.objects.select_for_update().select_related("user")
                 .filter(user_id=user_id).first())
        if prefs is not None and not prefs.user.is_active:
            return None  # kept for them, should the account be switched back on
        rows = list(Notification.objects.filter(recipient_id=user_id, status=Notification.Status.DIGEST,
                                                channel="email")
                    .order_by("created_at", "id").values_list("pk", "created_at")[:MAX_ITEMS])
        if not rows:
            return None
        period_name = prefs.digest if prefs is not None else NotificationSettings.Digest.OFF
        since = prefs.last_digest_at if prefs is not None and prefs.last_digest_at else rows[0][1]
        if now < since + PERIODS.get(period_name, timedelta(0)):
            return None
        ids = [pk for pk, _created in rows]
        digest = Notification(
            kind=KIND, channel="email", recipient_id=user_id,
            dedupe_key=f"digest:{user_id}:{since.isoformat()}:{ids[0]}",
            payload={"notification_ids": ids, "period": period_name, "since": since.isoformat(),
                     "until": now.isoformat()},
            status=Notification.Status.PENDING, next_attempt_at=now, created_at=now)
        try:
            with transaction.atomic():
                digest.save()
        except IntegrityError:
            return None  # another sender wrote this digest
        marked = Notification.objects.filter(pk__in=ids, status=Notification.Status.DIGEST).update(
            status=Notification.Status.DIGESTED)
        if marked != len(ids):
            # Someone took some of them between our read and our update (only possible for a
            # user without a settings row to lock): undo, and let the next run try again.
            transaction.set_rollback(True)
            return None
        if prefs is not None:
            NotificationSettings.objects.filter(pk=prefs.pk).update(last_digest_at=now)
    return digest.pk


# --- Rendering --------------------------------------------------------------------------------


def build_digest_message(notification: Notification) -> Message:
    """The email of a digest notification: its rows grouped by job, newest figures read now."""
    payload = notification.payload or {}
    recipient = notification.recipient
    rows = list(Notification.objects.filter(pk__in=payload.get("notification_ids") or [])
                .select_related("job", "event").order_by("created_at", "id"))
    job_ids = {row.job_id for row in rows if row.job_id is not None}
    visible = (set(TrainingJob.objects.visible_to(recipient).filter(pk__in=job_ids).values_list("pk", flat=True))
               if recipient.is_active else set())
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row.job_id is not None and row.job_id not in visible:
            continue
        group = groups.setdefault(row.job_id, {
            "job": row.job, "name": row.job.name if row.job else "Other",
            "status": row.job.get_status_display() if row.job else "",
            "url": job_url(row.job) if row.job else site_url(), "items": []})
        group["items"].append(describe(row))
    items = sum(len(g["items"]) for g in groups.values())
    jobs = sum(1 for key in groups if key is not None)
    period = payload.get("period", "")
    title = {"hourly": "Your hourly digest", "daily": "Your daily digest"}.get(period, "Your digest")
    summary = f"{_plural(items, 'update')} on {_plural(jobs, 'job')}" if jobs else _plural(items, "update")
    context = {"title": title, "summary": summary, "groups": list(groups.values()),
               "since": _when(_parse(payload.get("since"))), "until": _when(_parse(payload.get("until"))),
               "period": period, "site_url": site_url(), "settings_url": settings_url()}
    text = render_to_string("notifications/email/digest.txt", context)
    html = render_to_string("notifications/email/digest.html", context)
    return Message(
        id=f"notification-{notification.pk}", subject=f"{title}: {summary}", text=text, html=html,
        slack_blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
        webhook_type="fine_tuning.digest",
        webhook_data={"object": "digest", "items": items,
                      "jobs": [str(key) for key in groups if key is not None]},
        url=site_url())


def describe(row: Notification) -> dict[str, str]:
    """One line of a digest: what happened, when, at which step."""
    event = row.event
    payload = (event.payload if event is not None else None) or {}
    label = LINE_LABELS.get(row.kind) or (LABELS.get(Kind(row.kind), row.kind)
                                           if row.kind in Kind._value2member_map_ else row.kind)
    if row.kind == Kind.ANOMALY and event is not None and event.anomaly_kind:
        label = event.anomaly_kind.replace("_", " ").capitalize()
    message = str(payload.get("message") or "").strip()
    if row.kind == Kind.RECOVERED and not message:
        step = payload.get("resumed_from_step", payload.get("step"))
        message = f"resumed from step {humanize.integer(step)}" if step is not None else ""
    if not message:
        what = label
    elif message.lower().startswith(label.lower()):
        what = message  # "New best eval loss ..." says it already
    else:
        what = f"{label}: {message}"
    step = event.step if event is not None and event.step is not None else payload.get("step")
    when = _when(event.received_at if event is not None else row.created_at)
    day, _, time = when.partition(" ")
    return {"kind": row.kind, "label": label, "what": what, "when": when, "day": day, "time": time,
            "step": humanize.integer(step) if isinstance(step, int | float) and not isinstance(step, bool) else ""}


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def _plural(count: int, word: str) -> str:
    return f"{humanize.integer(count)} {word}{'' if count == 1 else 's'}"
