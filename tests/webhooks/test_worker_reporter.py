"""The real gpu_worker Reporter against the real endpoint: the two sides of the contract agree."""

from __future__ import annotations

import pytest

from gpu_worker.reporting import Reporter
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob

from .conftest import SECRET, WEBHOOK_URL, make_job, point


@pytest.fixture
def reporter_for(live_server, tmp_path):
    reporters = []

    def build(job: TrainingJob, attempt: int = 1) -> Reporter:
        reporter = Reporter(job_id=str(job.pk), attempt=attempt, webhook_url=live_server.url + WEBHOOK_URL,
                            secret=SECRET, outbox_dir=tmp_path / f"outbox-{attempt}",
                            backoff_initial=0.05, backoff_max=0.2)
        reporter.start()
        reporters.append(reporter)
        return reporter

    yield build
    for reporter in reporters:
        reporter.close(timeout=5)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_reports_a_job_to_completion(reporter_for):
    job = make_job(status=Status.PROVISIONING)
    reporter = reporter_for(job)
    reporter.emit("started", {"device": "cpu", "quantization": "none", "base_model": "embedded:smollm2",
                              "pid": 1, "host": "here"})
    for stage in ("preprocessing", "model_loading", "training"):
        reporter.emit("stage_changed", {"stage": stage})
    reporter.emit("metrics", {"points": [point(s, train_loss=2.0 - s / 100) for s in range(1, 11)]})
    reporter.emit("checkpoint_saved", {"step": 10, "key": "checkpoints/step-10", "size_bytes": 1})
    for stage in ("finalizing", "validating"):
        reporter.emit("stage_changed", {"stage": stage})
    reporter.emit("validation_results", {"evaluators": {"perplexity": {"base": 9.0, "trained": 7.0}}})
    reporter.emit("completed", {"final_train_loss": 1.9, "final_eval_loss": None, "steps": 10,
                                "adapter_key": "adapter", "summary": {}})

    assert reporter.flush(timeout=30)

    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert (job.current_step, job.last_checkpoint_step, job.latest_perplexity) == (10, 10, 7.0)
    assert MetricPoint.objects.filter(job=job).count() == 10
    assert JobEvent.objects.filter(job=job, webhook_id__isnull=False).count() == 10
    assert not reporter.stop_requested


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_of_a_cancelled_job_is_told_to_stop(reporter_for):
    job = make_job(status=Status.TRAINING)
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
    reporter = reporter_for(job)

    reporter.emit("heartbeat", {"stage": "training", "step": 3, "total_steps": 10})
    reporter.flush(timeout=30)

    assert reporter.stop_requested
    assert not JobEvent.objects.filter(job=job).exists()
