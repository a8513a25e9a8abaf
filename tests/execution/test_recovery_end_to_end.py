"""A real worker killed mid-training is noticed by the poll, recovered, and resumes from its last
committed checkpoint to completion (tasks inline, webhooks to a live server, the tiny model)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from training.lifecycle import Status
from training.models import BaseModel, JobEvent

TIMEOUT_SECONDS = 240

pytestmark = [
    pytest.mark.slow,
    # serialized_rollback: restore the seeded rows after the flush for the tests that follow.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def inline_tasks(monkeypatch):
    from training import tasks
    from training.services import execution

    monkeypatch.setattr(tasks.launch_job, "delay", lambda job_id: execution.launch_attempt(job_id))
    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda job_id: execution.stop_attempt(job_id))


def test_a_killed_worker_is_recovered_and_resumes_from_its_checkpoint(
        live_server, settings, tmp_path, tiny_model, tiny_dataset, django_user_model, inline_tasks):
    from training.services import execution, jobs
    from training.services.datasets import ingest_training_file

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PUBLIC_BASE_URL = live_server.url
    settings.WORKER_DEVICE = "cpu"
    user = django_user_model.objects.create_user("recovery-test")
    training_file = ingest_training_file(uploaded=tiny_dataset, name="tiny", user=user)
    base_model = BaseModel.objects.create(slug="tiny", name="tiny", model_id=str(tiny_model),
                                          parameter_count=100_000, recommended_gpu="CPU_LOCAL",
                                          is_embedded=True)
    job = jobs.create_job(user=user, training_file=training_file, base_model=base_model, overrides={
        "max_steps": 48, "checkpoint_interval": 4, "per_device_batch_size": 2,
        "max_seq_length": 128, "eval_interval": 8, "learning_rate": 1e-3})
    jobs.start_job(job, user=user)

    killed = False
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not job.is_terminal:
        assert time.monotonic() < deadline, list(job.events.values_list("event_type", "payload"))
        # Poll often: the kill must land between the first checkpoint and the end of the run.
        time.sleep(0.2)
        execution.poll_job(str(job.pk))
        job.refresh_from_db()
        if not killed and job.attempt == 1 and job.last_checkpoint_step is not None:
            os.killpg(job.executor_ref["pgid"], signal.SIGKILL)  # no emergency checkpoint
            killed = True

    assert job.status == Status.COMPLETED, (job.error_message, job.executor_ref)
    assert (job.attempt, job.checkpoint_recovery_count) == (2, 1)
    assert job.resumed_from_step is not None and job.resumed_from_step >= 4
    reasons = [e.payload.get("reason", "") for e in job.events.filter(payload__to="recovering")]
    assert len(reasons) == 1 and reasons[0].startswith("worker gone")
    assert job.events.filter(event_type=JobEvent.Type.RESUMED, attempt=2).exists()
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 2
    assert job.billable_seconds > 0
    adapter = settings.MEDIA_ROOT / "jobs" / str(job.pk) / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
