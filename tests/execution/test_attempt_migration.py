"""Migration 0010: jobs from before JobAttempt get their attempts from executor_ref and events."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("training", "0009_job_attempts")]
AFTER = [("training", "0011_remove_trainingjob_executor_ref")]

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def old_state():
    """The historical models just before 0010, and a way to migrate on; back at the latest after."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps

    def migrate_on():
        migrating = MigrationExecutor(connection)
        migrating.loader.build_graph()
        migrating.migrate(AFTER)
        return migrating.loader.project_state(AFTER).apps

    yield apps, migrate_on
    latest = MigrationExecutor(connection)
    latest.loader.build_graph()
    latest.migrate(latest.loader.graph.leaf_nodes())


def make_old_job(apps, **fields):
    TrainingFile = apps.get_model("training", "TrainingFile")
    BaseModel = apps.get_model("training", "BaseModel")
    TrainingJob = apps.get_model("training", "TrainingJob")
    dataset = TrainingFile.objects.create(name="d", file="datasets/d.jsonl", sha256=uuid.uuid4().hex * 2)
    base = BaseModel.objects.create(slug=f"m-{uuid.uuid4().hex[:8]}", name="m", model_id="/models/m",
                                    parameter_count=10)
    defaults = {"training_file": dataset, "base_model": base, "name": "job", "executor": "runpod",
                "gpu_type": "H100_PCIE_80GB", "gpu_pricing_tier": "on_demand"}
    return TrainingJob.objects.create(**{**defaults, **fields})


def event(apps, job, event_type, at, of_attempt, **payload):
    apps.get_model("training", "JobEvent").objects.create(job=job, event_type=event_type, received_at=at,
                                                          attempt=of_attempt, payload=payload, source="test")


def test_a_job_recovered_twice_gets_three_attempts_with_their_bills_and_losses(old_state):
    apps, migrate_on = old_state
    t0 = timezone.now() - timedelta(hours=5)
    hour = timedelta(hours=1)
    job = make_old_job(
        apps, status="training", attempt=3, attempt_started_at=t0 + 3 * hour, hourly_rate=Decimal("2.49"),
        billable_seconds=3 * 3600.0, actual_cost=Decimal("7.47"), checkpoint_recovery_count=2, lost_seconds=900.0,
        executor_ref={"pod_id": "pod-3", "name": "lora-a3", "billing_base": 2 * 3600.0, "last_state": "running",
                      "silence_warned": "2026-01-01T00:00:00+00:00",
                      "worker": {"device": "cuda", "attempt": 3}})
    for number, start in ((1, t0), (2, t0 + 1.5 * hour), (3, t0 + 3 * hour)):
        event(apps, job, "status_changed", start, number - 1, to="provisioning", attempt=number)
        event(apps, job, "launched", start + timedelta(seconds=5), number, executor="runpod",
              ref={"pod_id": f"pod-{number}"}, hourly_rate="2.49" if number < 3 else "3.99")
    event(apps, job, "started", t0 + timedelta(minutes=2), 1, device="cuda", quantization="4bit")
    event(apps, job, "checkpoint_saved", t0 + timedelta(minutes=50), 1, step=100)
    event(apps, job, "status_changed", t0 + hour, 1, to="recovering", reason="worker gone: pod-1")
    event(apps, job, "fallback", t0 + hour, 1, interruptions=1)  # attempts 2 and 3 on-demand
    event(apps, job, "resumed", t0 + 1.6 * hour, 2, resumed_from_step=100)
    event(apps, job, "status_changed", t0 + 2 * hour, 2, to="recovering", reason="worker killed")
    event(apps, job, "pod_state", t0 + 2 * hour, 2, state="exited", exit_code=4)

    apps = migrate_on()
    attempts = list(apps.get_model("training", "JobAttempt").objects.filter(job_id=job.pk).order_by("number"))

    assert [a.number for a in attempts] == [1, 2, 3]
    first, second, third = attempts
    assert (first.outcome, first.reason, first.ended_at) == ("interrupted", "worker gone: pod-1", t0 + hour)
    assert (second.outcome, second.reason, second.exit_code) == ("interrupted", "worker killed", 4)
    assert third.outcome == "running" and not third.billing_closed
    assert [a.pricing_tier for a in attempts] == ["spot", "on_demand", "on_demand"]
    assert [a.ref for a in attempts] == [{"pod_id": "pod-1"}, {"pod_id": "pod-2"}, {"pod_id": "pod-3", "name": "lora-a3"}]
    assert [a.launched_at for a in attempts] == [t0, t0 + 1.5 * hour, t0 + 3 * hour]
    assert first.started_at == t0 + timedelta(minutes=2) and first.worker["quantization"] == "4bit"
    assert second.resumed_from_step == 100
    # Bills: the closed 2 h shared by launch-to-end time (1 h and 0.5 h), the live attempt's hour.
    assert [round(a.billable_seconds) for a in attempts] == [4800, 2400, 3600]
    assert sum(a.billable_seconds for a in attempts) == pytest.approx(job.billable_seconds)
    assert first.billing_closed and second.billing_closed
    assert [a.hourly_rate for a in attempts] == [Decimal("2.49"), Decimal("2.49"), Decimal("2.49")]
    # Losses: 10 min after attempt 1's checkpoint, 30 min of attempt 2 (none), scaled to the job's 15 min.
    assert [round(a.lost_seconds) for a in attempts] == [225, 675, 0]
    assert first.lost_cost == pytest.approx(Decimal(225) / 3600 * Decimal("2.49"), abs=Decimal("0.001"))
    # The control keys became fields, not ref keys.
    assert (third.last_state, third.silence_warned) == ("running", "2026-01-01T00:00:00+00:00")
    assert third.worker == {"device": "cuda", "attempt": 3}
    assert third.ref_recorded_at == t0 + 3 * hour + timedelta(seconds=5)


def test_a_launch_never_recorded_and_a_job_never_launched(old_state):
    apps, migrate_on = old_state
    waiting = make_old_job(apps, status="provisioning", attempt=1, attempt_started_at=timezone.now(),
                           executor_ref={"launch_retries": 2, "retry_at": "2026-01-01T00:00:00+00:00",
                                         "last_launch_error": "gpu_provisioning"})
    done = make_old_job(apps, status="completed", attempt=1, attempt_started_at=timezone.now(),
                        billable_seconds=60.0, executor_ref={"pid": 7, "billing_base": 0, "billing_closed": True})
    never = make_old_job(apps, status="pending", attempt=0)

    apps = migrate_on()
    JobAttempt = apps.get_model("training", "JobAttempt")
    retrying = JobAttempt.objects.get(job_id=waiting.pk)
    assert retrying.ref_recorded_at is None and retrying.ref == {}
    assert (retrying.launch_retries, retrying.last_launch_error) == (2, "gpu_provisioning")
    assert retrying.retry_at.isoformat() == "2026-01-01T00:00:00+00:00"
    finished = JobAttempt.objects.get(job_id=done.pk)
    assert (finished.outcome, finished.billing_closed, finished.billable_seconds, finished.ref) == (
        "completed", True, 60.0, {"pid": 7})
    assert not JobAttempt.objects.filter(job_id=never.pk).exists()
