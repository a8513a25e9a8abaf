"""The other reports: heartbeat, checkpoint_saved, resumed, interrupted, error,
validation_results and completed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from training.lifecycle import Status
from training.models import JobEvent, TrainingJob


def test_a_heartbeat_updates_last_heartbeat_at_only(worker, job):
    before = timezone.now()
    response = worker.send("heartbeat", {"stage": "training", "step": 12, "total_steps": 200})
    assert response.status == 200
    job.refresh_from_db()
    assert job.last_heartbeat_at >= before
    assert (job.status, job.current_step) == (Status.TRAINING, None)
    event = JobEvent.objects.get(job=job, event_type="heartbeat")
    assert (event.attempt, event.seq, event.processing_error, event.source) == (1, 1, "", "worker")
    assert event.payload["step"] == 12 and event.payload["timestamp"] == "2026-11-23T20:15:03.123Z"


def test_every_accepted_report_counts_as_a_heartbeat(worker, job):
    worker.send("checkpoint_saved", {"step": 100, "key": "checkpoints/step-100", "size_bytes": 10})
    job.refresh_from_db()
    assert job.last_heartbeat_at is not None


def test_the_last_checkpoint_step_only_grows(worker, job):
    worker.send("checkpoint_saved", {"step": 200, "key": "checkpoints/step-200", "size_bytes": 10})
    worker.send("checkpoint_saved", {"step": 100, "key": "checkpoints/step-100", "size_bytes": 10})
    job.refresh_from_db()
    assert job.last_checkpoint_step == 200


def test_resumed_records_the_step(worker, job):
    worker.send("resumed", {"resumed_from_step": 300})
    job.refresh_from_db()
    assert job.resumed_from_step == 300


def test_interrupted_is_stored_as_a_warning_with_a_recovery_hint(worker, job):
    worker.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 140})
    job.refresh_from_db()
    assert job.status == Status.TRAINING  # the recovery service decides what happens next
    assert job.last_checkpoint_step == 140
    event = JobEvent.objects.get(job=job, event_type="interrupted")
    assert event.severity == JobEvent.Severity.WARNING
    assert event.payload["recovery"]["resume_from_step"] == 140
    assert "SIGTERM" in event.payload["recovery"]["hint"]


def test_interrupted_hands_over_to_the_recovery_service_after_commit(worker, job, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    from training.services import ingest

    calls = []
    monkeypatch.setattr(ingest, "handle_interruption",
                        lambda job_id, attempt, reason: calls.append((job_id, attempt, reason)))

    with django_capture_on_commit_callbacks(execute=True):
        worker.send("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": None})

    assert calls == [(job.pk, 1, "worker reported SIGTERM")]


def test_error_fails_the_job_with_the_classified_error(worker, job):
    response = worker.send("error", {
        "error_type": "out_of_memory", "message": "CUDA out of memory at step 12",
        "suggested_fix": "Lower per_device_batch_size to 2.",
        "details": {"stage": "training", "suggested_config": {"per_device_batch_size": 2}},
        "exit_code": 2,
    })
    assert response.status == 200
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert (job.error_type, job.error_message) == ("out_of_memory", "CUDA out of memory at step 12")
    assert job.error_suggested_fix == "Lower per_device_batch_size to 2."
    assert job.error_details["suggested_config"] == {"per_device_batch_size": 2}
    assert job.error_details["exit_code"] == 2
    assert job.completed_at is not None
    assert JobEvent.objects.get(job=job, event_type="error").severity == JobEvent.Severity.ERROR


def test_validation_results_are_kept_with_the_trained_perplexity(worker, job):
    evaluators = {"perplexity": {"base": 9.5, "trained": 6.25, "improvement_pct": 34.2, "samples": 8}}
    worker.send("validation_results", {"evaluators": evaluators})
    job.refresh_from_db()
    assert job.results["validation"] == {"evaluators": evaluators}
    assert job.latest_perplexity == 6.25


@pytest.mark.parametrize("final_eval_loss", [1.05, None])
def test_completed_completes_the_job_with_its_results(worker, job, final_eval_loss):
    TrainingJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(minutes=42),
                                                 latest_eval_loss=1.3)
    worker.send("validation_results", {"evaluators": {"perplexity": {"trained": 6.0}}})
    summary = {"steps": 200, "tokens_trained": 51200}
    response = worker.send("completed", {"final_train_loss": 0.91, "final_eval_loss": final_eval_loss,
                                         "steps": 200, "adapter_key": "adapter", "summary": summary})
    assert response.status == 200
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.results["final"]["summary"] == summary
    assert job.results["validation"]["evaluators"]["perplexity"]["trained"] == 6.0
    assert job.actual_duration_minutes == 42
    assert (job.latest_loss, job.current_step, job.progress_percentage) == (0.91, 200, Decimal("100.00"))
    assert job.latest_eval_loss == (final_eval_loss or 1.3)
    assert job.completed_at is not None
