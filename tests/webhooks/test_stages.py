"""stage_changed moves the job forward through lifecycle.transition; never backwards."""

from __future__ import annotations

from training.lifecycle import Status
from training.models import JobAttempt, JobEvent, TrainingJob

from .conftest import FakeWorker, make_job


def status_of(job: TrainingJob) -> str:
    return TrainingJob.objects.values_list("status", flat=True).get(pk=job.pk)


def test_stages_move_the_job_forward(client, db):
    job = make_job(status=Status.PROVISIONING)
    worker = FakeWorker(client, job)
    for stage in ("preprocessing", "model_loading", "training", "finalizing", "validating"):
        assert worker.send("stage_changed", {"stage": stage}).status == 200
        assert status_of(job) == stage
    job.refresh_from_db()
    assert job.current_stage == "validating"
    changes = JobEvent.objects.filter(job=job, event_type=JobEvent.Type.STATUS_CHANGED)
    assert [e.payload["to"] for e in changes] == [
        "preprocessing", "model_loading", "training", "finalizing", "validating"]
    assert all(e.source == "worker" and e.attempt == 1 for e in changes)


def test_a_stage_may_be_skipped(worker, job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.PROVISIONING)
    worker.send("stage_changed", {"stage": "training"})
    assert status_of(job) == Status.TRAINING


def test_a_late_earlier_stage_is_stored_but_ignored(worker, job):
    worker.send("stage_changed", {"stage": "training"})
    response = worker.send("stage_changed", {"stage": "preprocessing"})

    assert response.status == 200
    assert "does not follow" in response.body["ignored"]
    assert status_of(job) == Status.TRAINING
    late = JobEvent.objects.get(job=job, event_type="stage_changed", payload__stage="preprocessing")
    assert "does not follow training" in late.processing_error


def test_started_records_where_the_worker_runs(worker, job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.PROVISIONING)
    JobAttempt.for_job(job, ref={"pid": 4242}).save()
    worker.send("started", {"device": "cuda", "quantization": "4bit", "precision": "bf16",
                            "base_model": "embedded:smollm2", "pid": 17, "host": "pod-abc"})
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING  # started records; stage_changed moves
    assert job.attempt_ref["pid"] == 4242  # the executor's own reference is kept
    assert job.current_attempt.worker == {"device": "cuda", "quantization": "4bit", "precision": "bf16",
                                          "base_model": "embedded:smollm2", "pid": 17,
                                          "host": "pod-abc", "attempt": 1}
    assert job.started_at is not None and job.current_attempt.started_at is not None
