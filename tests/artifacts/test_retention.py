"""Checkpoint retention: checkpoints of jobs finished long enough ago go; adapter and reports stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from artifacts import services, tasks
from artifacts.models import ModelArtifact
from core import storage
from training.lifecycle import Status
from training.models import TrainingJob

from .conftest import upload_outputs

pytestmark = pytest.mark.django_db


def finished(make_job, owner, status, days_ago):
    job = make_job(owner, status=status)
    when = timezone.now() - timedelta(days=days_ago)
    TrainingJob.objects.filter(pk=job.pk).update(
        completed_at=when if status == Status.COMPLETED else None, updated_at=when)
    upload_outputs(job)
    storage.save_bytes(storage.job_key(job.pk, "checkpoints/step-30/optimizer.pt"), b"o" * 1000)
    return job


def checkpoint_keys(job):
    return [k for k, _ in storage.list_keys(f"jobs/{job.pk}/checkpoints/")]


def test_it_prunes_old_finished_jobs_and_keeps_the_rest(backend, make_job, owner, caplog):
    old_done = finished(make_job, owner, Status.COMPLETED, days_ago=8)
    old_failed = finished(make_job, owner, Status.FAILED, days_ago=30)
    recent = finished(make_job, owner, Status.COMPLETED, days_ago=2)
    running = finished(make_job, owner, Status.TRAINING, days_ago=60)
    services.register_artifacts(old_done.pk)
    before = ModelArtifact.objects.get(job=old_done).storage_bytes

    with caplog.at_level("INFO", logger="artifacts"):
        result = tasks.prune_finished_checkpoints.run()

    checkpoint_bytes = len(b'{"step": 30, "files": {}}') + 1000
    assert result == {"jobs": 2, "bytes_freed": 2 * checkpoint_bytes}
    assert checkpoint_keys(old_done) == checkpoint_keys(old_failed) == []
    assert checkpoint_keys(recent) and checkpoint_keys(running)
    # The delivery stays.
    assert storage.exists(storage.job_key(old_done.pk, "adapter/adapter_model.safetensors"))
    assert storage.exists(storage.job_key(old_done.pk, "reports/summary.json"))
    assert ModelArtifact.objects.get(job=old_done).storage_bytes == before - checkpoint_bytes
    assert f"{2 * checkpoint_bytes} bytes freed" in caplog.text

    # Running it again finds nothing to do.
    assert services.prune_finished_checkpoints() == {"jobs": 0, "bytes_freed": 0}


def test_the_retention_period_comes_from_settings(filesystem, make_job, owner, settings):
    job = finished(make_job, owner, Status.CANCELLED, days_ago=3)
    settings.CHECKPOINT_RETENTION_DAYS = 7
    assert services.prune_finished_checkpoints()["jobs"] == 0
    settings.CHECKPOINT_RETENTION_DAYS = 1
    assert services.prune_finished_checkpoints()["jobs"] == 1
    assert checkpoint_keys(job) == []


def test_the_beat_schedule_runs_it_daily():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="artifacts.tasks.prune_finished_checkpoints")
    assert task.enabled and task.crontab is not None
