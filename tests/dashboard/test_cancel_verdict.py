"""Right after a cancel the worker is still stopping: it checkpoints its last completed step and
says so (`interrupted`). Until it has, or its attempt was seen ended, or it has been silent for
WORKER_STOP_WAIT, the dashboard's verdict says it is saving one instead of "no checkpoint was
saved" (which the `interrupted` report would contradict seconds later)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.services import WORKER_STOP_WAIT, job_outcome, worker_stopping
from training.models import JobAttempt, TrainingJob

pytestmark = pytest.mark.django_db

STOPPING = "Cancelled at step 4 of 12; the worker is stopping and saving a checkpoint of its last completed step…"


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    # The stop task would signal a real executor; here the test plays the worker.
    import training.tasks as tasks

    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda *a, **k: None)


@pytest.fixture
def running(job, worker) -> TrainingJob:
    """Attempt 1's worker has reported, trained to step 4 of 12 and saved no checkpoint yet."""
    JobAttempt.for_job(job, started_at=timezone.now()).save()
    TrainingJob.objects.filter(pk=job.pk).update(current_stage="training", current_step=4, total_steps=12)
    job.refresh_from_db()
    return job


def verdict(client, job) -> str:
    return client.get(reverse("admin:training_trainingjob_dashboard_data", args=[job.pk])).json()["text"]["verdict"]


def cancel(client, job) -> TrainingJob:
    assert client.post(reverse("admin:training_trainingjob_dashboard_action", args=[job.pk, "cancel"])).status_code == 302
    job.refresh_from_db()
    return job


def test_the_verdict_waits_for_the_workers_last_word(staff_client, running, worker):
    cancel(staff_client, running)
    assert verdict(staff_client, running) == STOPPING
    # The emergency checkpoint lands first; the worker has not said it stopped yet.
    assert worker.send("checkpoint_saved", {"step": 4}).status == 200
    assert verdict(staff_client, running) == ("Cancelled at step 4 of 12; the worker is stopping and saving a "
                                              "checkpoint of its last completed step (the latest saved so far "
                                              "is at step 4)…")
    assert worker.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 4}).status == 200
    assert verdict(staff_client, running) == "Cancelled at step 4 of 12; the checkpoint at step 4 was saved."


def test_a_worker_that_stopped_without_a_checkpoint_says_none_was_saved(staff_client, running, worker):
    cancel(staff_client, running)
    assert worker.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": None}).status == 200
    assert verdict(staff_client, running) == "Cancelled at step 4 of 12; no checkpoint was saved."


def test_a_silent_worker_is_presumed_dead_after_the_wait(staff_client, running):
    job = cancel(staff_client, running)
    assert worker_stopping(job, now=job.completed_at + WORKER_STOP_WAIT - timezone.timedelta(seconds=1))
    assert not worker_stopping(job, now=job.completed_at + WORKER_STOP_WAIT)
    outcome = job_outcome(job, now=job.completed_at + WORKER_STOP_WAIT)
    assert outcome is not None and not outcome.worker_stopping


def test_the_bill_closed_by_the_cancel_is_no_sign_the_worker_ended(staff_client, running):
    job = cancel(staff_client, running)
    # stopping.stop_attempt closes the bill at the cancel time right after signalling the worker.
    JobAttempt.objects.of(job.pk, job.attempt).update(ended_at=job.completed_at)
    job = TrainingJob.objects.get(pk=job.pk)
    assert worker_stopping(job)
    # The executor seeing the worker gone (another time) is.
    JobAttempt.objects.of(job.pk, job.attempt).update(ended_at=job.completed_at + timezone.timedelta(seconds=3))
    job = TrainingJob.objects.get(pk=job.pk)
    assert not worker_stopping(job)
    assert verdict(staff_client, job) == "Cancelled at step 4 of 12; no checkpoint was saved."


def test_an_earlier_attempts_report_is_not_the_current_workers_last_word(staff_client, running):
    job = cancel(staff_client, running)
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2)
    JobAttempt.for_job(TrainingJob.objects.get(pk=job.pk), started_at=timezone.now()).save()
    job = TrainingJob.objects.get(pk=job.pk)
    # Attempt 1's word arrives (stored directly: the ingestion would refuse a superseded attempt).
    job.events.create(event_type="interrupted", attempt=1, payload={"signal": "SIGTERM"})
    assert worker_stopping(job)


def test_a_job_cancelled_before_any_worker_ran_is_not_stopping(staff_client, job):
    job = cancel(staff_client, job)
    assert not worker_stopping(job)
    assert verdict(staff_client, job) == "Cancelled before training started; no checkpoint was saved."
