"""Celery tasks of notifications: thin wrappers over services (take a key, re-fetch, return
early when there is nothing to do). Each is defined beside its service, as training's are, so a
service enqueues its sibling's task without importing this module."""

from __future__ import annotations

from celery import shared_task

from .digests import send_due_digests
from .reports import build_and_send_daily_report
from .services import deliver_due_notifications_task, deliver_notification_task


@shared_task(name="notifications.tasks.send_digests")
def send_digests() -> int:
    return send_due_digests()


@shared_task(name="notifications.tasks.send_daily_report")
def send_daily_report() -> int | None:
    report = build_and_send_daily_report()
    return report.pk if report is not None else None


__all__ = ["deliver_due_notifications_task", "deliver_notification_task", "send_daily_report", "send_digests"]
