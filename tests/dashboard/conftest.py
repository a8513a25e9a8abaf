"""Dashboard fixtures: a started job, a signing worker (the webhook tests' FakeWorker), a
logged-in superuser, and metric histories of any size."""

from __future__ import annotations

import math

import pytest
from django.utils import timezone

from tests.webhooks.conftest import FakeWorker, make_job, point
from training.models import MetricPoint, TrainingJob

__all__ = ["point"]


@pytest.fixture
def job(db) -> TrainingJob:
    return make_job()


@pytest.fixture
def worker(client, job) -> FakeWorker:
    return FakeWorker(client, job)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def add_history(job: TrainingJob, count: int, *, eval_every: int = 50) -> None:
    """`count` smooth, decaying metric points stored directly (the webhook path is tested elsewhere)."""
    now = timezone.now()
    MetricPoint.objects.bulk_create([
        MetricPoint(job=job, step=step, epoch=step / count * 3, train_loss=2.0 * math.exp(-step / count) + 0.3,
                    eval_loss=(2.1 * math.exp(-step / count) + 0.35) if step % eval_every == 0 else None,
                    learning_rate=2e-4 * (1 - step / count), tokens_per_second=3000.0,
                    gpu_memory_used_mb=40000, gpu_memory_total_mb=80000, reported_at=now)
        for step in range(1, count + 1)
    ], batch_size=2000)
    TrainingJob.objects.filter(pk=job.pk).update(current_step=count, total_steps=count * 2, progress_percentage=50,
                                                 latest_loss=0.9, started_at=now)
