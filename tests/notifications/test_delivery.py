"""Delivery through the real SMTP server and HTTP receivers: the right channels, once each,
nothing lost when a receiver is down, 429 honoured, permanent failures switch a channel off."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from notifications.models import Notification, NotificationSettings, UserChannel
from notifications.services import deliver_due_notifications
from training.lifecycle import Status, transition

pytestmark = pytest.mark.django_db(transaction=True)


def finish(job, status=Status.COMPLETED):
    assert transition(job.pk, status, sources={job.status})


def test_the_owner_gets_the_completion_email_by_default(smtp, make_job, owner):
    job = make_job(status=Status.VALIDATING)
    finish(job)
    [message] = smtp.messages()
    assert message["To"] == owner.email
    assert "elena v1" in message["Subject"]
    assert Notification.objects.get().status == Notification.Status.SENT


def test_smtp_down_then_up_loses_nothing(smtp, make_job):
    job = make_job(status=Status.VALIDATING)
    smtp.stop()
    finish(job)
    row = Notification.objects.get()
    assert row.status == Notification.Status.PENDING and row.attempts == 1
    assert "could not reach the mail server" in row.last_error
    smtp.start()
    assert deliver_due_notifications() == 0  # not due yet: the backoff holds it
    with time_machine.travel(row.next_attempt_at, tick=False):
        assert deliver_due_notifications() == 1
    assert len(smtp.messages()) == 1
    assert Notification.objects.get().status == Notification.Status.SENT


def test_a_refused_address_fails_for_good_and_switches_email_off(smtp, make_job, owner):
    owner.email = "refuse-me@example.com"
    owner.save()
    finish(make_job(status=Status.VALIDATING))
    row = Notification.objects.get()
    assert row.status == Notification.Status.FAILED and "550" in row.last_error
    channel = UserChannel.objects.get(user=owner, kind="email")
    assert not channel.enabled and "refused" in channel.disabled_reason


def test_slack_429_is_retried_after_its_retry_after(http_receiver, make_job, owner):
    NotificationSettings.objects.create(user=owner, kinds={"failed": ["slack"]})
    UserChannel.objects.create(user=owner, kind="slack", target=http_receiver.url + "/services/T/B/x")
    http_receiver.answer(429, {"Retry-After": "600"}, "rate_limited")
    start = timezone.now()
    finish(make_job(status=Status.TRAINING), Status.FAILED)
    row = Notification.objects.get()
    assert row.status == Notification.Status.PENDING
    assert (row.next_attempt_at - start).total_seconds() >= 600
    with time_machine.travel(start + timezone.timedelta(seconds=300), tick=False):
        assert deliver_due_notifications() == 0
    with time_machine.travel(row.next_attempt_at, tick=False):
        assert deliver_due_notifications() == 1
    assert len(http_receiver.requests) == 2
    body = http_receiver.requests[-1].json()
    assert body["text"] and body["blocks"]
    assert Notification.objects.get().status == Notification.Status.SENT


def test_two_senders_claim_it_once(smtp, make_job, owner):
    from notifications.services import deliver_notification

    smtp.stop()  # the first try fails, leaving it pending
    finish(make_job(status=Status.VALIDATING))
    smtp.start()
    row = Notification.objects.get()
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    first, second = Notification.objects.get(pk=row.pk), Notification.objects.get(pk=row.pk)
    assert first.claim() is True
    assert second.claim() is False  # the other sender sees it taken
    assert deliver_notification(row.pk) == "taken"
    assert first.mark_sent("s") and not second.mark_sent("s")


def test_a_lapsed_claim_is_taken_over_and_the_old_sender_cannot_overwrite_it(make_job, owner, smtp, settings):
    from datetime import timedelta

    smtp.stop()
    finish(make_job(status=Status.VALIDATING))
    row = Notification.objects.get()
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    old = Notification.objects.get(pk=row.pk)
    assert old.claim()
    later = timezone.now() + timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS + 1)
    new = Notification.objects.get(pk=row.pk)
    assert new.claim(later)
    assert not old.mark_failed("late news from a sender presumed dead")
    assert new.mark_sent("s")
