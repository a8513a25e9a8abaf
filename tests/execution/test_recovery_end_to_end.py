"""A real worker killed mid-training is noticed by the poll, recovered, and resumes from its last
committed checkpoint to completion (tasks inline, webhooks to a live server, the tiny model)."""

from __future__ import annotations

import json
import os
import random
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
    from training.services import launching, stopping

    monkeypatch.setattr(tasks.launch_job, "delay", lambda job_id: launching.launch_attempt(job_id))
    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda job_id: stopping.stop_attempt(job_id))


@pytest.fixture
def new_job(live_server, settings, tmp_path, tiny_model, tiny_dataset, django_user_model, inline_tasks):
    """Creates and starts jobs on the tiny model through the real services (local executor)."""
    from training.services import jobs
    from training.services.datasets import ingest_training_file

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PUBLIC_BASE_URL = live_server.url
    settings.WORKER_DEVICE = "cpu"
    user = django_user_model.objects.create_user("recovery-test")
    training_file = ingest_training_file(uploaded=tiny_dataset, name="tiny", user=user)
    base_model = BaseModel.objects.create(slug="tiny", name="tiny", model_id=str(tiny_model),
                                          parameter_count=100_000, recommended_gpu="CPU_LOCAL",
                                          is_embedded=True)

    def make(**overrides):
        job = jobs.create_job(user=user, training_file=training_file, base_model=base_model, overrides={
            "checkpoint_interval": 4, "per_device_batch_size": 2, "max_seq_length": 128, "eval_interval": 8,
            "learning_rate": 1e-3, "learning_rate_scaling": "none", **overrides})
        jobs.start_job(job, user=user)
        return job

    return make


def run_to_the_end(job, kill_when=None, poll_every: float = 0.2):
    """Poll the job as beat would, until it ends; `kill_when(job)` decides when to SIGKILL the
    worker's process group (no emergency checkpoint)."""
    from training.services import polling

    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not job.is_terminal:
        assert time.monotonic() < deadline, list(job.events.values_list("event_type", "payload"))
        time.sleep(poll_every)
        polling.poll_attempt(str(job.pk))
        job.refresh_from_db()
        if kill_when is not None and job.status == Status.TRAINING and kill_when(job):
            os.killpg(job.attempt_ref["pgid"], signal.SIGKILL)
    return job


def test_a_killed_worker_is_recovered_and_resumes_from_its_checkpoint(new_job, settings):
    job = new_job(max_steps=48)
    killed = []

    def kill_when(job):
        # Poll often: the kill must land between the first checkpoint and the end of the run.
        if not killed and job.attempt == 1 and job.last_checkpoint_step is not None:
            killed.append(job.current_step)
            return True
        return False

    job = run_to_the_end(job, kill_when)

    assert job.status == Status.COMPLETED, (job.error_message, job.attempt_ref)
    assert (job.attempt, job.checkpoint_recovery_count) == (2, 1)
    assert job.resumed_from_step is not None and job.resumed_from_step >= 4
    reasons = [e.payload.get("reason", "") for e in job.events.filter(payload__to="recovering")]
    assert len(reasons) == 1 and reasons[0].startswith("worker gone")
    assert job.events.filter(event_type=JobEvent.Type.RESUMED, attempt=2).exists()
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 2
    assert job.billable_seconds > 0
    adapter = settings.MEDIA_ROOT / "jobs" / str(job.pk) / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()


def test_three_kills_at_random_steps_and_the_job_still_finishes_with_the_uninterrupted_loss(
        new_job, settings, monkeypatch):
    """kill -9 the worker three times, each at a random step after one of its own checkpoints
    was committed. The job recovers by itself each time (interruption count 3), re-trains at most
    one checkpoint interval per interruption, and ends at the same training loss as the same
    job left alone (deterministic CPU run, exact resume)."""
    from training.executors.local import work_dir
    from training.services import worker_config

    interval, total = 4, 60
    build = worker_config.build_worker_config
    # Metric batches every 0.3 s instead of 5 s, so that the kill targets (read off the reported
    # steps) are close to the steps really trained.
    monkeypatch.setattr(worker_config, "build_worker_config", lambda job: {**build(job), "metrics_flush_interval": 0.3})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # One kill in each third of the run, at a random step; each only after a checkpoint of the
    # attempt being killed (so it lands at a random point between two checkpoints).
    targets = [rng.randint(lo, lo + 12) for lo in (6, 26, 44)]
    kills: list[tuple[int, int]] = []

    def kill_when(job):
        k = len(kills)
        if k == 3 or job.attempt != k + 1 or (job.current_step or 0) < targets[k]:
            return False
        own = job.events.filter(event_type=JobEvent.Type.CHECKPOINT_SAVED, attempt=job.attempt).exists()
        if not own:
            return False
        kills.append((job.attempt, job.current_step))
        return True

    job = run_to_the_end(new_job(max_steps=total), kill_when, poll_every=0.1)
    context = f"seed {seed}, targets {targets}, kills {kills}"
    assert job.status == Status.COMPLETED, (context, job.error_message)
    assert len(kills) == 3, context
    assert (job.attempt, job.checkpoint_recovery_count) == (4, 3), context
    assert job.recovery_summary().startswith("Interrupted 3×"), job.recovery_summary()
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 4
    for attempt in (1, 2, 3):
        # The last step the killed attempt trained, from its own metrics.jsonl (line-buffered, so
        # complete up to the kill; the reports to the control plane trail it by a flush or two).
        lines = (work_dir(job.pk, attempt) / "output" / "metrics.jsonl").read_text().splitlines()
        last_trained = max(json.loads(line)["step"] for line in lines if line.strip())
        resumed = job.events.get(event_type=JobEvent.Type.RESUMED, attempt=attempt + 1).payload["resumed_from_step"]
        retrained = last_trained - resumed
        assert 0 <= retrained <= interval, (context, attempt, last_trained, resumed)
    interrupted_loss = job.results["final"]["final_train_loss"]

    alone = run_to_the_end(new_job(max_steps=total))
    assert alone.status == Status.COMPLETED and alone.checkpoint_recovery_count == 0
    assert abs(interrupted_loss - alone.results["final"]["final_train_loss"]) < 1e-4, (
        context, interrupted_loss, alone.results["final"]["final_train_loss"])
