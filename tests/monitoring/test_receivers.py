"""The monitoring receivers run through the job-event hook from a real webhook ingestion: a
metrics batch updates the trend state and records milestone events with their structured
columns, a heartbeat runs the stall check, and a failing receiver is logged without rolling back
the ingestion."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import receivers, services
from monitoring.points import Point
from monitoring.trend_state import TrendState, update_trend_state
from training.events import record_event, subscriptions
from training.models import JobEvent, MetricPoint, TrainingJob

from .conftest import point

pytestmark = pytest.mark.django_db


def test_the_receivers_are_connected_to_the_hook():
    connected = {s.receiver for s in subscriptions()}
    assert {receivers.analyse_metrics_batch, receivers.finish_on_completion,
            receivers.check_stall_on_heartbeat} <= connected


def test_a_metrics_batch_produces_the_trend_state_and_a_milestone_event(worker, job):
    batch = [point(s, train_loss=2.0 - s / 100) for s in range(1, 61)]  # 60 of 200 steps: 25%
    assert worker.send("metrics", {"points": batch}).status == 200

    job.refresh_from_db()
    state = TrendState.from_dict(job.trend_state)
    assert state.max_step == 60 and state.settled_step == 56  # settle_points=4 still waiting
    assert job.milestones == [25]
    (milestone,) = JobEvent.objects.filter(job=job, event_type=JobEvent.Type.MILESTONE)
    assert milestone.milestone_percent == 25 and milestone.step == 50
    assert milestone.payload["percent"] == 25 and milestone.payload["kind"] == "milestone"
    assert milestone.source == "analysis" and milestone.anomaly_kind == ""


def test_an_anomaly_event_carries_its_kind_and_step_in_columns(worker, job):
    flat = [1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.01, 1.00, 0.99, 1.02]
    losses = [*flat, 9.0, *flat[:6]]  # step 11 spikes; six ordinary points settle it
    worker.send("metrics", {"points": [point(s, train_loss=v) for s, v in enumerate(losses, start=1)]})
    (spike,) = JobEvent.objects.filter(job=job, event_type=JobEvent.Type.ANOMALY, anomaly_kind="spike")
    assert spike.step == 11 and spike.severity == "warning" and spike.payload["step"] == 11


def test_a_failing_monitoring_receiver_is_logged_and_the_ingestion_stands(worker, job, monkeypatch, caplog):
    real = services.analyse_metrics

    def analyse_then_fail(*args, **kwargs):
        real(*args, **kwargs)  # its writes (trend state, milestone events) are taken back
        raise RuntimeError("analyser broke")

    monkeypatch.setattr(services, "analyse_metrics", analyse_then_fail)
    with caplog.at_level(logging.ERROR, logger="training.events"):
        response = worker.send("metrics", {"points": [point(s, train_loss=1.0) for s in range(1, 61)]})

    assert response.status == 200 and response.body["duplicate"] is False
    assert MetricPoint.objects.filter(job=job).count() == 60
    (event,) = JobEvent.objects.filter(job=job, event_type=JobEvent.Type.METRICS)
    assert event.processing_error == ""
    job.refresh_from_db()
    assert job.current_step == 60  # the ingestion's own writes stand
    assert job.trend_state == {} and job.milestones == []  # the receiver's savepoint rolled back
    assert not JobEvent.objects.filter(job=job, event_type=JobEvent.Type.MILESTONE).exists()
    assert any("analyse_metrics_batch failed" in r.getMessage() and r.exc_info for r in caplog.records)


def stalled_since(job: TrainingJob, minutes: float) -> None:
    """The job's trend state: step 5 reported `minutes` ago, nothing since."""
    at = (timezone.now() - timedelta(minutes=minutes)).timestamp()
    state, _ = update_trend_state(TrendState(), [Point(step=5, train_loss=1.0, at=at)], total_steps=100)
    TrainingJob.objects.filter(pk=job.pk).update(trend_state=state.to_dict())


def stall_events(job: TrainingJob) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job=job, event_type=JobEvent.Type.ANOMALY, anomaly_kind="stall"))


def test_the_stall_check_fires_from_a_heartbeat_once(worker, job):
    stalled_since(job, 60)
    assert worker.send("heartbeat", {"stage": "training"}).status == 200
    (stall,) = stall_events(job)
    assert stall.step == 5 and stall.severity == "error" and stall.payload["kind"] == "stall"

    with CaptureQueriesContext(connection) as queries:
        assert worker.send("heartbeat", {"stage": "training"}).status == 200
    assert len(stall_events(job)) == 1
    # Nothing new: the per-heartbeat check writes nothing.
    assert not [q for q in queries.captured_queries if "trend_state" in q["sql"] and q["sql"].startswith("UPDATE")]


def test_a_heartbeat_of_a_job_still_advancing_records_nothing(worker, job):
    stalled_since(job, 5)  # within TrendConfig.stall_minutes
    before = TrainingJob.objects.get(pk=job.pk).trend_state
    worker.send("heartbeat", {"stage": "training"})
    assert stall_events(job) == []
    assert TrainingJob.objects.get(pk=job.pk).trend_state == before


def test_a_heartbeat_before_any_metrics_writes_no_trend_state(worker, job):
    with CaptureQueriesContext(connection) as queries:
        assert worker.send("heartbeat", {"stage": "training"}).status == 200
    assert not [q for q in queries.captured_queries if "trend_state" in q["sql"] and q["sql"].startswith("UPDATE")]
    assert TrainingJob.objects.get(pk=job.pk).trend_state == {}


def test_a_heartbeat_outside_training_runs_no_stall_check(worker, job):
    stalled_since(job, 60)
    TrainingJob.objects.filter(pk=job.pk).update(status="preprocessing")
    worker.send("heartbeat", {"stage": "preprocessing"})
    assert stall_events(job) == []


def test_a_metrics_event_announced_without_context_reads_the_stored_points(job):
    """Another recorder of a metrics event (no ingestion context): the receiver reads the rows."""
    now = timezone.now()
    MetricPoint.objects.bulk_create([MetricPoint(job=job, attempt=1, step=s, train_loss=1.0, reported_at=now)
                                     for s in range(1, 61)])
    TrainingJob.objects.filter(pk=job.pk).update(total_steps=200)
    record_event(job.pk, JobEvent.Type.METRICS, source="worker", attempt=1,
                 payload={"points": [{"step": s} for s in range(1, 61)]})
    job.refresh_from_db()
    assert TrendState.from_dict(job.trend_state).max_step == 60
    assert job.milestones == [25]
