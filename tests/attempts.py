"""A job's attempts as the services leave them: one interrupted (12 min lost at $2.10/h: $0.42),
then the current one, resumed from step 300. Shared by the API, admin and dashboard tests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from training.models import JobAttempt, TrainingJob


def add_interrupted_attempts(job: TrainingJob) -> None:
    launched = timezone.now() - timedelta(hours=2)
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2, checkpoint_recovery_count=1, lost_seconds=720)
    JobAttempt.objects.create(
        job=job, number=1, executor="runpod", pricing_tier="spot", gpu_type="H100_PCIE_80GB",
        hourly_rate=Decimal("2.10"), launched_at=launched, ref_recorded_at=launched,
        ended_at=launched + timedelta(hours=1), billable_seconds=3600, billing_closed=True,
        outcome=JobAttempt.Outcome.INTERRUPTED, reason="worker gone: pod p-1 no longer exists",
        lost_seconds=720, lost_cost=Decimal(720) / 3600 * Decimal("2.10"))
    JobAttempt.objects.create(
        job=job, number=2, executor="runpod", pricing_tier="on_demand", gpu_type="H100_PCIE_80GB",
        hourly_rate=Decimal("3.99"), launched_at=launched + timedelta(hours=1), ref={"pod_id": "p-2"},
        ref_recorded_at=launched + timedelta(hours=1), resumed_from_step=300)
    job.refresh_from_db()
