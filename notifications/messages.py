"""A notification rendered for its channel: subject, plain text, HTML, Slack blocks, webhook data.

`build_message(notification)` reads the job as it is when the message is sent (so a retry
carries the newest figures) and renders the kind's templates.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from core import humanize

from .channels import Message
from .kinds import LABELS, WEBHOOK_TYPES, Kind
from .models import Notification


def site_url() -> str:
    return settings.NOTIFICATIONS_SITE_URL or settings.PUBLIC_BASE_URL


def job_url(job) -> str:
    return site_url() + reverse("admin:training_trainingjob_dashboard", args=[job.pk])


def build_message(notification: Notification) -> Message:
    job = notification.job
    kind = notification.kind
    context: dict[str, Any] = {"notification": notification, "job": job, "event": notification.event,
                               "kind_label": LABELS.get(Kind(kind), kind) if kind in Kind._value2member_map_ else kind,
                               "url": job_url(job) if job is not None else site_url()}
    subject = f"{context['kind_label']}: {job.name}" if job is not None else str(context["kind_label"])
    text = render_to_string("notifications/email/generic.txt", context)
    html = render_to_string("notifications/email/generic.html", context)
    data = {"object": "fine_tuning.job", "id": str(job.pk), "status": job.status} if job is not None else {}
    return Message(id=f"notification-{notification.pk}", subject=subject, text=text, html=html,
                   slack_blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
                   webhook_type=WEBHOOK_TYPES.get(Kind(kind), f"fine_tuning.{kind}") if kind in Kind._value2member_map_
                   else f"fine_tuning.{kind}",
                   webhook_data=data, url=context["url"])


__all__ = ["build_message", "humanize"]
