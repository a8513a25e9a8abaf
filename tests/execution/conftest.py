"""Fixtures for execution tests: a job factory and the fake worker (tests/execution/fake_worker.py)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from tests.tiny_model import write_chat_dataset
from training.lifecycle import Status

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def fake_worker(settings, media):
    """The local executor starts fake_worker.py instead of gpu_worker (LOCAL_WORKER_COMMAND)."""
    settings.LOCAL_WORKER_COMMAND = [sys.executable, str(FAKE_WORKER)]
    settings.LOCAL_WORKER_STOP_GRACE_SECONDS = 5
    return FAKE_WORKER


@pytest.fixture
def make_job(django_user_model, media):
    from django.utils import timezone

    from training.models import BaseModel, JobAttempt, TrainingFile, TrainingJob

    def make(**fields) -> TrainingJob:
        user = django_user_model.objects.get_or_create(username="olivia")[0]
        training_file = TrainingFile.objects.create(
            name="tiny", file="datasets/tiny.jsonl", sha256=uuid.uuid4().hex + uuid.uuid4().hex,
            validation_status=TrainingFile.ValidationStatus.VALID, record_count=4)
        base_model = BaseModel.objects.create(
            slug=f"m-{uuid.uuid4().hex[:8]}", name="tiny", model_id="/models/tiny", parameter_count=10_000,
            recommended_gpu="CPU_LOCAL")
        defaults = {
            "training_file": training_file, "base_model": base_model, "name": "job",
            "configuration": {"base_model": "/models/tiny", "hyperparameters": {"max_steps": 4}},
            "executor": "local", "gpu_type": "H100_PCIE_80GB", "gpu_pricing_tier": "spot",
            "secret": "s3cret", "created_by": user, "status": Status.QUEUED,
        }
        attempt_ref = fields.pop("attempt_ref", None)
        billing_closed = fields.pop("billing_closed", False)
        defaults.update(fields)
        job = TrainingJob.objects.create(**defaults)
        if attempt_ref is not None:  # a job whose current attempt's launch was recorded
            JobAttempt.for_job(job, ref=attempt_ref, ref_recorded_at=job.attempt_started_at or timezone.now(),
                               billing_closed=billing_closed).save()
        return job

    return make


def update_job(job, **fields) -> None:
    """UPDATE the job's row; a new attempt_started_at also moves its current attempt's launch
    (where its bill starts), as when the attempt really began then."""
    from training.models import JobAttempt, TrainingJob

    TrainingJob.objects.filter(pk=job.pk).update(**fields)
    if "attempt_started_at" in fields:
        JobAttempt.objects.filter(job_id=job.pk, number=TrainingJob.objects.get(pk=job.pk).attempt).update(
            launched_at=fields["attempt_started_at"])


def update_attempt(job, **fields) -> None:
    """UPDATE the row of the job's current attempt."""
    from training.models import JobAttempt, TrainingJob

    JobAttempt.objects.filter(job_id=job.pk, number=TrainingJob.objects.get(pk=job.pk).attempt).update(**fields)


@pytest.fixture
def enqueued(monkeypatch) -> dict[str, list[str]]:
    """Records launch_job/poll_job enqueues instead of sending or running them."""
    from training import tasks

    calls: dict[str, list[str]] = {"launch_job": [], "poll_job": [], "stop_job_execution": []}
    monkeypatch.setattr(tasks.launch_job, "delay", lambda job_id: calls["launch_job"].append(job_id))
    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda job_id: calls["stop_job_execution"].append(job_id))
    monkeypatch.setattr(tasks.poll_job, "apply_async", lambda args, **kw: calls["poll_job"].append(args[0]))
    return calls


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_chat_dataset(tmp_path / "tiny-chat.jsonl", records=24)


RUNPOD_KEY = "rp-test-key"


def runpod_env(standin) -> dict[str, str]:
    """The settings (and, for processes started by a test, the environment) that point the
    RunPod executor at the stand-in."""
    return {"RUNPOD_API_KEY": RUNPOD_KEY, "RUNPOD_API_BASE_URL": standin.base_url,
            "RUNPOD_WORKER_IMAGE": "ghcr.io/example/lora-gpu-worker:1.0",
            "PUBLIC_BASE_URL": "https://lora.example.com"}


@pytest.fixture
def runpod_api(settings, monkeypatch):
    """tests/runpod_standin.py running, with the settings and environment pointing at it."""
    import runpod

    from tests.runpod_standin import RunPodStandIn

    with RunPodStandIn(api_key=RUNPOD_KEY) as standin:
        for name, value in runpod_env(standin).items():
            setattr(settings, name, value)
            monkeypatch.setenv(name, value)  # the SDK reads RUNPOD_API_BASE_URL per call
        settings.RUNPOD_SPOT_BID_PER_GPU = None
        settings.RUNPOD_NETWORK_VOLUME_ID = ""
        monkeypatch.setattr(runpod, "api_key", None)
        yield standin
