"""The job-event hook (training.events): one way to record an event, receivers told in order,
in the transaction or after commit, and a receiver's failure never undoing what was recorded."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from tests.webhooks.conftest import make_job
from training import events
from training.events import on_job_event, record_event
from training.lifecycle import Status, transition
from training.models import JobEvent, TrainingJob


@pytest.fixture
def subscribe():
    """Connect receivers for one test and disconnect them after it."""
    connected = []

    def connect(*types, after_commit=False):
        def register(receiver):
            connected.append(on_job_event(*types, after_commit=after_commit)(receiver))
            return receiver
        return register

    yield connect
    for receiver in connected:
        events.disconnect(receiver)


def test_record_event_writes_the_structured_fields_and_tells_the_receivers_of_its_type(db, subscribe):
    job = make_job()
    seen: list[JobEvent] = []
    subscribe(JobEvent.Type.MILESTONE)(seen.append)
    other = record_event(job.pk, JobEvent.Type.HEARTBEAT, source="worker")
    milestone = record_event(job.pk, JobEvent.Type.MILESTONE, source="analysis", milestone_percent=50, step=100,
                             payload={"percent": 50})
    assert [e.pk for e in seen] == [milestone.pk]
    stored = JobEvent.objects.get(pk=milestone.pk)
    assert (stored.milestone_percent, stored.step, stored.payload) == (50, 100, {"percent": 50})
    assert other.pk not in [e.pk for e in seen]


def test_a_receiver_without_types_hears_every_event_in_order(db, subscribe):
    job = make_job()
    heard: list[str] = []
    subscribe()(lambda e: heard.append(e.event_type))
    for kind in (JobEvent.Type.HEARTBEAT, JobEvent.Type.ACTION, JobEvent.Type.ANOMALY):
        record_event(job.pk, kind, source="test")
    assert heard == ["heartbeat", "action", "anomaly"]


def test_a_transition_records_old_and_new_status_as_fields(db, subscribe):
    job = make_job(status=Status.TRAINING)
    changes: list[tuple[str, str]] = []
    subscribe(JobEvent.Type.STATUS_CHANGED)(lambda e: changes.append((e.old_status, e.new_status)))
    assert transition(job.pk, Status.FINALIZING, attempt=1, actor="worker")
    event = JobEvent.objects.filter(job=job, event_type="status_changed").latest("received_at")
    assert (event.old_status, event.new_status) == ("training", "finalizing")
    assert event.payload["from"] == "training" and event.payload["to"] == "finalizing"
    assert changes == [("training", "finalizing")]


def test_a_failing_receiver_is_logged_and_undoes_only_its_own_writes(db, subscribe, caplog):
    job = make_job(status=Status.TRAINING)

    @subscribe(JobEvent.Type.STATUS_CHANGED)
    def broken(event):
        TrainingJob.objects.filter(pk=event.job_id).update(notes="written by the broken receiver")
        raise RuntimeError("receiver bug")

    after: list[str] = []
    subscribe(JobEvent.Type.STATUS_CHANGED)(lambda e: after.append(e.new_status))
    with caplog.at_level(logging.ERROR, logger="training.events"):
        assert transition(job.pk, Status.FINALIZING, attempt=1)
    job.refresh_from_db()
    assert job.status == Status.FINALIZING  # the transition stands
    assert job.notes == ""  # the receiver's savepoint was rolled back
    assert JobEvent.objects.filter(job=job, event_type="status_changed", new_status="finalizing").exists()
    assert after == ["finalizing"]  # the next receiver still ran
    assert "receiver bug" in caplog.text and "broken" in caplog.text


def test_after_commit_receivers_run_once_committed_and_never_for_a_rollback(db, subscribe,
                                                                            django_capture_on_commit_callbacks):
    job = make_job()
    told: list[int] = []
    subscribe(JobEvent.Type.ACTION, after_commit=True)(lambda e: told.append(e.pk))

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        kept = record_event(job.pk, JobEvent.Type.ACTION, source="user")
        assert told == []  # not yet: the transaction has not committed
    assert told == [kept.pk]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                record_event(job.pk, JobEvent.Type.ACTION, source="user")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == [] and told == [kept.pk]


def test_a_failing_after_commit_receiver_is_logged(db, subscribe, caplog, django_capture_on_commit_callbacks):
    job = make_job()
    subscribe(JobEvent.Type.ACTION, after_commit=True)(lambda e: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="training.events"), django_capture_on_commit_callbacks(execute=True):
        event = record_event(job.pk, JobEvent.Type.ACTION, source="user")
    assert JobEvent.objects.filter(pk=event.pk).exists()
    assert "ZeroDivisionError" in caplog.text


def test_a_webhook_report_is_announced_once_it_took_effect_and_not_when_refused(db, client, subscribe):
    from tests.webhooks.conftest import FakeWorker

    job = make_job(status=Status.TRAINING)
    worker = FakeWorker(client, job)
    heard: list[tuple[str, int | None]] = []

    @subscribe(JobEvent.Type.CHECKPOINT_SAVED)
    def checkpoint(event):
        heard.append((event.event_type, event.step))
        raise RuntimeError("a broken receiver must not cost the worker its report")

    assert worker.send("checkpoint_saved", {"step": 40}).status == 200
    assert worker.resend_last().body["duplicate"] is True  # a copy: not announced again
    stale = FakeWorker(client, job, attempt=0)
    assert stale.send("checkpoint_saved", {"step": 50}).status == 409  # refused: rolled back, not announced
    assert heard == [("checkpoint_saved", 40)]
    job.refresh_from_db()
    assert job.last_checkpoint_step == 40
    assert JobEvent.objects.get(job=job, event_type="checkpoint_saved").step == 40


def test_the_apps_above_subscribe_through_the_hook():
    receivers = {f"{s.receiver.__module__}.{s.receiver.__qualname__}" for s in events.subscriptions()}
    assert "artifacts.receivers.register_completed_job" in receivers
