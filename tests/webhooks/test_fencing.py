"""Finished jobs and superseded attempts refuse reports (409/410), and nothing they carry is
written: the worker stops on either answer."""

from __future__ import annotations

import pytest

from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob

from .conftest import FakeWorker, point


def snapshot(job: TrainingJob) -> dict:
    row = TrainingJob.objects.filter(pk=job.pk).values().get()
    row.pop("updated_at")
    return row


def test_a_superseded_attempt_is_refused(client, job):
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2)
    before = snapshot(job)
    old = FakeWorker(client, job, attempt=1)
    for type, data in (("heartbeat", {"stage": "training"}),
                       ("metrics", {"points": [point(50, train_loss=1.0)]}),
                       ("stage_changed", {"stage": "finalizing"}),
                       ("completed", {"final_train_loss": 1.0, "steps": 50})):
        response = old.send(type, data)
        assert response.status == 409
        assert response.body == {"detail": "attempt 1 was superseded by attempt 2"}
    assert snapshot(job) == before
    assert not JobEvent.objects.filter(job=job).exists()
    assert not MetricPoint.objects.filter(job=job).exists()


def test_an_attempt_the_job_has_not_reached_is_refused(client, job):
    response = FakeWorker(client, job, attempt=3).send("heartbeat", {"stage": "training"})
    assert response.status == 409
    assert not JobEvent.objects.filter(job=job).exists()


@pytest.mark.parametrize(("status", "answer"), [
    (Status.COMPLETED, 409), (Status.FAILED, 409), (Status.CANCELLED, 410),
])
def test_a_finished_job_refuses_reports_and_does_not_change(worker, job, status, answer):
    TrainingJob.objects.filter(pk=job.pk).update(status=status)
    before = snapshot(job)
    for type, data in (("heartbeat", {"stage": "training"}),
                       ("metrics", {"points": [point(60, train_loss=0.5)]}),
                       ("stage_changed", {"stage": "validating"}),
                       ("error", {"error_type": "oom", "message": "out of memory"})):
        assert worker.send(type, data).status == answer
    assert snapshot(job) == before
    assert not JobEvent.objects.filter(job=job).exists()


def test_a_resent_completed_event_is_a_duplicate_not_a_refusal(worker, job):
    assert worker.send("completed", {"final_train_loss": 0.9, "steps": 200}).status == 200
    job.refresh_from_db()
    assert job.status == Status.COMPLETED

    again = worker.resend_last()  # the first answer was lost on the way back

    assert (again.status, again.body["duplicate"]) == (200, True)
    assert JobEvent.objects.filter(job=job, event_type="completed").count() == 1


def test_a_report_after_completion_is_refused(worker, job):
    worker.send("completed", {"final_train_loss": 0.9, "steps": 200})
    assert worker.send("heartbeat", {"stage": "validating"}).status == 409


def test_a_cancelled_job_still_records_its_workers_last_checkpoint(worker, job):
    """Cancel sends SIGTERM; the worker checkpoints its last completed step and says so. The job
    takes that last word (and only that) from its current attempt, so it can tell whether a
    checkpoint exists; it stays cancelled and nothing is recovered."""
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
    assert worker.send("heartbeat", {"stage": "training"}).status == 410
    assert worker.send("checkpoint_saved", {"step": 7, "key": "checkpoints/step-7", "size_bytes": 10}).status == 200
    assert worker.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 7}).status == 200
    job.refresh_from_db()
    assert (job.status, job.last_checkpoint_step, job.checkpoint_recovery_count) == (Status.CANCELLED, 7, 0)
    event = JobEvent.objects.get(job=job, event_type="interrupted")
    assert "recovery" not in event.payload
    assert event.payload["cancelled"]["checkpoint_step"] == 7
    assert "checkpoint at step 7 committed" in event.payload["cancelled"]["hint"]


def test_a_cancelled_job_refuses_a_superseded_attempts_last_word(client, job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED, attempt=2)
    old = FakeWorker(client, job, attempt=1)
    assert old.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 7}).status == 410
    assert not JobEvent.objects.filter(job=job).exists()
