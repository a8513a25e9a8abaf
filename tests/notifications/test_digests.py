"""Digests through the real SMTP server: an hourly digest is one email with everything held
back, sent once the hour has passed and not before; urgent kinds never wait; a second run sends
nothing new; a mail server that is down loses nothing; two senders at once send one digest."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from notifications import digests, messages
from notifications.models import Notification, NotificationSettings
from notifications.services import deliver_due_notifications
from training.events import record_event
from training.lifecycle import Status, transition
from training.models import JobEvent

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = {kind: ["email"] for kind in ("completed", "failed", "milestone", "anomaly", "anomaly_critical", "recovered")}
T0 = datetime(2025, 11, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def hourly(owner):
    return NotificationSettings.objects.create(user=owner, kinds=KINDS, digest="hourly")


def milestone(job, percent, step):
    record_event(job.pk, JobEvent.Type.MILESTONE, source="monitoring", milestone_percent=percent, step=step,
                 payload={"kind": "milestone", "percent": percent, "step": step,
                          "message": f"{percent}% done: step {step} of 48."})


def new_best(job, step):
    record_event(job.pk, JobEvent.Type.ANOMALY, source="monitoring", severity="info", anomaly_kind="new_best",
                 step=step, payload={"kind": "new_best", "step": step, "message": f"New best eval loss at step {step}."})


def three_updates(job):
    with time_machine.travel(T0, tick=False):
        milestone(job, 25, 12)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        new_best(job, 20)
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        milestone(job, 50, 24)


def run_at(when, **kwargs):
    with time_machine.travel(when, tick=False):
        return digests.send_due_digests(**kwargs)


def test_an_hourly_digest_is_one_email_with_every_update_after_the_hour(smtp, make_job, owner, hourly):
    job = make_job()
    three_updates(job)
    held = Notification.objects.filter(status=Notification.Status.DIGEST)
    assert held.count() == 3 and smtp.messages() == []

    assert run_at(T0 + timedelta(minutes=30)) == 0
    assert run_at(T0 + timedelta(minutes=59)) == 0
    assert smtp.messages() == []

    assert run_at(T0 + timedelta(hours=1)) == 1
    [message] = smtp.messages()
    assert message["To"] == owner.email
    assert message["Subject"] == "Your hourly digest: 3 updates on 1 job"
    text = message.get_body(("plain",)).get_content()
    assert "elena v1 (Training)" in text
    assert "2025-11-12 09:00 UTC, step 12: Milestone: 25% done: step 12 of 48." in text
    assert "2025-11-12 09:10 UTC, step 20: New best eval loss at step 20." in text
    assert "2025-11-12 09:20 UTC, step 24:" in text and "50% done: step 24 of 48." in text
    assert messages.job_url(job) in text
    html = message.get_body(("html",)).get_content()
    assert f'href="{messages.job_url(job)}"' in html
    # One job's table: its heading row (When, Step, What happened) and the 3 items, once each.
    assert html.count('<th scope="col"') == 3
    assert [html.count(what) for what in ("25% done: step 12", "New best eval loss at step 20", "50% done: step 24")] == [1, 1, 1]

    assert Notification.objects.filter(status=Notification.Status.DIGESTED).count() == 3
    digest = Notification.objects.get(kind="digest")
    assert digest.status == Notification.Status.SENT and digest.job is None
    assert sorted(digest.payload["notification_ids"]) == sorted(held.model.objects.filter(
        status=Notification.Status.DIGESTED).values_list("pk", flat=True))
    hourly.refresh_from_db()
    assert hourly.last_digest_at == T0 + timedelta(hours=1)

    # A second run (beat runs every 5 minutes) has nothing new to send.
    assert run_at(T0 + timedelta(hours=1, minutes=5)) == 0
    assert run_at(T0 + timedelta(hours=3)) == 0
    assert len(smtp.messages()) == 1


def test_the_next_digest_waits_an_hour_after_the_last_one(smtp, make_job, hourly):
    job = make_job()
    three_updates(job)
    assert run_at(T0 + timedelta(hours=1)) == 1
    with time_machine.travel(T0 + timedelta(hours=1, minutes=10), tick=False):
        milestone(job, 75, 36)
    assert run_at(T0 + timedelta(hours=1, minutes=55)) == 0
    assert run_at(T0 + timedelta(hours=2)) == 1
    first, second = smtp.messages()
    assert second["Subject"] == "Your hourly digest: 1 update on 1 job"
    assert "75% done" in second.get_body(("plain",)).get_content()
    assert "25% done" not in second.get_body(("plain",)).get_content()


def test_a_daily_digest_waits_a_day(smtp, make_job, hourly):
    hourly.digest = "daily"
    hourly.save()
    three_updates(make_job())
    assert run_at(T0 + timedelta(hours=23, minutes=59)) == 0
    assert run_at(T0 + timedelta(days=1)) == 1
    [message] = smtp.messages()
    assert message["Subject"] == "Your daily digest: 3 updates on 1 job"


def test_urgent_kinds_are_sent_at_once_and_never_digested(smtp, make_job, hourly):
    job = make_job()
    with time_machine.travel(T0, tick=False):
        milestone(job, 25, 12)
        record_event(job.pk, JobEvent.Type.ANOMALY, source="monitoring", severity="critical",
                     anomaly_kind="divergence", step=30, payload={"kind": "divergence", "message": "Loss is diverging."})
        assert transition(job.pk, Status.FAILED, sources={job.status})
    subjects = sorted(m["Subject"] for m in smtp.messages())
    assert len(subjects) == 2 and all("elena v1" in s for s in subjects)
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 2
    held = Notification.objects.get(status=Notification.Status.DIGEST)
    assert held.kind == "milestone"

    assert run_at(T0 + timedelta(hours=1)) == 1
    digest = smtp.messages()[-1]
    assert digest["Subject"] == "Your hourly digest: 1 update on 1 job"
    text = digest.get_body(("plain",)).get_content()
    assert "25% done" in text and "diverging" not in text and "Job failed" not in text


def test_smtp_down_then_up_loses_nothing(smtp, make_job, hourly):
    three_updates(make_job())
    smtp.stop()
    assert run_at(T0 + timedelta(hours=1)) == 1
    digest = Notification.objects.get(kind="digest")
    assert digest.status == Notification.Status.PENDING and digest.attempts == 1
    assert "could not reach the mail server" in digest.last_error
    assert Notification.objects.filter(status=Notification.Status.DIGESTED).count() == 3
    # The digest is written once: later runs neither write another nor give the rows back.
    assert run_at(T0 + timedelta(hours=1, minutes=5)) == 0
    assert Notification.objects.filter(kind="digest").count() == 1

    smtp.start()
    with time_machine.travel(digest.next_attempt_at, tick=False):
        assert deliver_due_notifications() == 1
    [message] = smtp.messages()
    assert message["Subject"] == "Your hourly digest: 3 updates on 1 job"
    assert Notification.objects.get(kind="digest").status == Notification.Status.SENT


def test_switching_digests_off_sends_what_was_held(smtp, make_job, hourly):
    three_updates(make_job())
    hourly.digest = "off"
    hourly.save()
    assert run_at(T0 + timedelta(minutes=25)) == 1
    [message] = smtp.messages()
    assert message["Subject"] == "Your digest: 3 updates on 1 job"


def test_a_job_the_recipient_may_no_longer_see_is_left_out(smtp, make_job, owner, outsider, hourly):
    mine, theirs = make_job(name="mine"), make_job(name="theirs")
    with time_machine.travel(T0, tick=False):
        milestone(mine, 25, 12)
        milestone(theirs, 25, 12)
    theirs.created_by = outsider
    theirs.save()
    assert run_at(T0 + timedelta(hours=1)) == 1
    [message] = smtp.messages()
    text = message.get_body(("plain",)).get_content()
    assert "mine" in text and "theirs" not in text
    assert message["Subject"] == "Your hourly digest: 1 update on 1 job"


def test_two_senders_at_once_send_one_digest(smtp, make_job, hourly):
    three_updates(make_job())
    barrier = threading.Barrier(2)
    results: list[int] = []

    def sender():
        try:
            barrier.wait(10)
            results.append(digests.send_due_digests(now=T0 + timedelta(hours=1)))
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1]
    assert Notification.objects.filter(kind="digest").count() == 1
    assert len(smtp.messages()) == 1
