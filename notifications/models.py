"""Who hears about what, how, and every message sent or still to send.

- `NotificationSettings`: one user's choices (kinds → channels, which jobs, digest).
- `UserChannel`: where one user's messages of a channel kind go (an email address, a Slack
  incoming-webhook URL, a customer webhook URL and its signing secret), and whether a permanent
  failure switched it off.
- `Notification`: one message for (event, recipient, channel), written in the transaction of
  the event that causes it; delivery claims it by compare-and-set, so it is sent once.
- `DailyReport`: the stored daily training report.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .kinds import DEFAULT_KINDS, LABELS, URGENT, Kind

CHANNEL_KINDS = [("email", "Email"), ("slack", "Slack"), ("webhook", "Webhook")]


def new_webhook_secret() -> str:
    # Standard Webhooks' format: "whsec_" and base64 of the key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def mask(value: str, *, keep: int = 4) -> str:
    """A secret as people may see it: its kind and its last few characters."""
    if not value:
        return ""
    if value.startswith("https://hooks.slack.com/"):
        return "https://hooks.slack.com/…" + value[-keep:]
    if value.startswith("whsec_"):
        return "whsec_…" + value[-keep:]
    return "…" + value[-keep:] if len(value) > keep * 2 else "•" * len(value)


class NotificationSettings(models.Model):
    class Scope(models.TextChoices):
        MINE = "mine", "Jobs I created"
        PROJECTS = "projects", "Jobs of these projects (that I may see)"
        ALL = "all", "All jobs I may see"

    class Digest(models.TextChoices):
        OFF = "off", "Send each one as it happens"
        HOURLY = "hourly", "One email per hour"
        DAILY = "daily", "One email per day"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings")
    # kind → the channel kinds it goes to, e.g. {"completed": ["email", "slack"]}.
    kinds = models.JSONField(default=dict, blank=True, help_text="Notification kind → channels.")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.MINE)
    projects = models.JSONField(default=list, blank=True, help_text="Project names, when the scope is projects.")
    digest = models.CharField(max_length=8, choices=Digest.choices, default=Digest.OFF,
                              help_text="Non-urgent notifications by email as one digest. Failures and critical "
                                        "anomalies are always sent at once.")
    daily_report = models.BooleanField(default=False, help_text="Email me the daily training report.")
    last_digest_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notification settings of {self.user}"

    @classmethod
    def for_user(cls, user) -> NotificationSettings:
        """The user's settings; unsaved defaults for someone who never chose."""
        found = cls.objects.filter(user=user).first()
        return found if found is not None else cls(user=user, kinds={k: list(v) for k, v in DEFAULT_KINDS.items()})

    def channels_for(self, kind: str) -> list[str]:
        return [c for c in (self.kinds or {}).get(str(kind), []) if c in dict(CHANNEL_KINDS)]

    def covers(self, job) -> bool:
        """Whether the job is one this user asked about (visibility is checked separately)."""
        if self.scope == self.Scope.ALL:
            return True
        if self.scope == self.Scope.PROJECTS:
            return bool(job.project) and job.project in (self.projects or [])
        return job.created_by_id == self.user_id

    def digests(self, kind: str) -> bool:
        return self.digest != self.Digest.OFF and kind not in URGENT


class UserChannel(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=CHANNEL_KINDS)
    # Email: an address (blank: the account's). Slack: the incoming-webhook URL. Webhook: the
    # customer's endpoint. Slack URLs carry their own secret, so they are masked like one.
    target = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=128, blank=True, default="", help_text="Webhook signing secret (whsec_...).")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_channel_of_a_kind_per_user")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.user}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.kind == "webhook" and not self.secret:
            self.secret = new_webhook_secret()
        super().save(*args, **kwargs)

    def address(self) -> str:
        return self.target or (self.user.email if self.kind == "email" else "")

    def masked_target(self) -> str:
        return mask(self.target) if self.kind == "slack" else self.target

    def disable(self, reason: str) -> None:
        UserChannel.objects.filter(pk=self.pk).update(enabled=False, disabled_reason=reason[:2000],
                                                       disabled_at=timezone.now())
        self.enabled, self.disabled_reason = False, reason


class NotificationQuerySet(models.QuerySet):
    def due(self, now=None) -> NotificationQuerySet:
        """Waiting to be sent and due, or claimed by a sender that vanished (its lease ran out)."""
        now = now or timezone.now()
        lease = timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS)
        return self.filter(
            Q(status=Notification.Status.PENDING, next_attempt_at__lte=now)
            | Q(status=Notification.Status.SENDING, claimed_at__lt=now - lease))


class Notification(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"      # to send (again) at next_attempt_at
        SENDING = "sending"      # claimed by a sender
        SENT = "sent"
        FAILED = "failed"        # permanently: the channel refused it for good
        DIGEST = "digest"        # held for the user's next digest
        DIGESTED = "digested"    # went out in a digest
        SKIPPED = "skipped"      # nothing to send to (channel off, no address)

    kind = models.CharField(max_length=32, choices=[(k.value, LABELS[k]) for k in Kind] + [("digest", "Digest"),
                                                                                           ("daily_report", "Daily report")])
    channel = models.CharField(max_length=16, choices=CHANNEL_KINDS)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    job = models.ForeignKey("training.TrainingJob", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey("training.JobEvent", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    # Once per (what, recipient, channel): a milestone's key is the job and percent, so another
    # attempt's 50 % or a redelivered report adds nothing; an event's key is its id.
    dedupe_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict, blank=True, help_text="What the message needs beyond the event and job.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    subject = models.CharField(max_length=300, blank=True, help_text="As sent.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["recipient", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} by {self.channel} ({self.status})"

    # --- Delivery state, each change a compare-and-set ------------------------------------

    def claim(self, now=None) -> bool:
        """Take this notification for sending. Exactly one of two senders (a redelivered task, a
        sweep, a second worker) wins; the loser sends nothing."""
        now = now or timezone.now()
        token = secrets.token_hex(8)
        won = Notification.objects.due(now).filter(pk=self.pk).update(
            status=self.Status.SENDING, claimed_at=now, claim_token=token, attempts=F("attempts") + 1)
        if won:
            self.refresh_from_db()
        return bool(won)

    def _finish(self, **fields: Any) -> bool:
        # Only the claim that is still ours may finish it (a sender whose lease ran out and
        # was reclaimed must not overwrite the new sender's outcome).
        return bool(Notification.objects.filter(pk=self.pk, status=self.Status.SENDING,
                                                claim_token=self.claim_token).update(**fields))

    def mark_sent(self, subject: str = "") -> bool:
        return self._finish(status=self.Status.SENT, sent_at=timezone.now(), last_error="",
                            subject=subject[:300])

    def mark_retry(self, error: str, at) -> bool:
        return self._finish(status=self.Status.PENDING, next_attempt_at=at, last_error=error[:4000])

    def mark_failed(self, error: str) -> bool:
        return self._finish(status=self.Status.FAILED, last_error=error[:4000])

    def mark_skipped(self, reason: str) -> bool:
        return self._finish(status=self.Status.SKIPPED, last_error=reason[:4000])

    def resend(self) -> bool:
        """Staff's resend of a failed or skipped one: due now, attempts counted afresh."""
        return bool(Notification.objects.filter(
            pk=self.pk, status__in=[self.Status.FAILED, self.Status.SKIPPED]).update(
            status=self.Status.PENDING, next_attempt_at=timezone.now(), attempts=0, claim_token=""))


class DailyReport(models.Model):
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    text = models.TextField(help_text="The report as plain text (Markdown).")
    html = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_end"]
        get_latest_by = "period_end"

    def __str__(self) -> str:
        return f"Daily training report, {timezone.localtime(self.period_end):%Y-%m-%d %H:%M}"
