"""Trend analysis runs as metric batches are ingested: anomalies and milestones become events
once each, however batches are resent or reordered; completion stores a quality score."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring import services
from monitoring.points import Point
from monitoring.trend_state import TrendState, update_trend_state
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob

from .conftest import point

pytestmark = pytest.mark.django_db

FLAT = [1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.01, 1.00, 0.99, 1.02]


def spiky_points() -> list[dict]:
    losses = [*FLAT, 9.0, *FLAT[:6]]  # step 11 spikes; six ordinary points settle it
    return [point(step, train_loss=loss) for step, loss in enumerate(losses, start=1)]


def events(job, event_type: str) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job=job, event_type=event_type).order_by("id"))


def test_a_spike_in_a_batch_is_recorded_as_one_anomaly_event(worker, job):
    assert worker.send("metrics", {"points": spiky_points()}).status == 200
    spikes = [e for e in events(job, "anomaly") if e.payload["kind"] == "spike"]
    assert len(spikes) == 1
    assert spikes[0].severity == "warning"
    assert spikes[0].payload["step"] == 11
    assert set(spikes[0].payload) >= {"kind", "step", "message", "suggested_action"}
    assert spikes[0].source == "analysis"


def test_a_resent_batch_adds_no_second_anomaly(worker, job):
    worker.send("metrics", {"points": spiky_points()})
    assert worker.resend_last().body["duplicate"] is True
    # The same points under a new webhook id (a worker that rebuilt its outbox) are new reports.
    worker.send("metrics", {"points": spiky_points()})
    assert len([e for e in events(job, "anomaly") if e.payload["kind"] == "spike"]) == 1


def test_milestones_are_recorded_once_each_under_duplicates_and_reordering(worker, job):
    batches = [[point(s, train_loss=1.0) for s in range(start, start + 25)] for start in (1, 26, 51, 76, 101, 126, 151, 176)]
    for batch in [batches[2], batches[0], batches[2], batches[1], batches[5], batches[3], batches[7], batches[4],
                  batches[6], batches[7]]:
        assert worker.send("metrics", {"points": batch}).status == 200
    milestones = events(job, "milestone")
    assert sorted(e.payload["percent"] for e in milestones) == [25, 50, 75, 100]
    job.refresh_from_db()
    assert job.milestones == [25, 50, 75, 100]


def test_milestones_follow_the_highest_step_only(worker, job):
    worker.send("metrics", {"points": [point(120, train_loss=1.0)]})  # 60% of 200 at once
    worker.send("metrics", {"points": [point(10, train_loss=1.0)]})
    assert sorted(e.payload["percent"] for e in events(job, "milestone")) == [25, 50]


def test_completion_settles_the_analysis_and_stores_a_quality_score(worker, job):
    points = [point(s, train_loss=2.0 / (1 + s / 20), eval_loss=(2.1 / (1 + s / 20)) if s % 20 == 0 else None,
                    tokens_per_second=1000.0) for s in range(1, 201)]
    worker.send("metrics", {"points": points})
    worker.send("completed", {"final_train_loss": points[-1]["train_loss"], "final_eval_loss": 0.19, "steps": 200,
                              "summary": {"train_runtime_s": 100.0, "tokens_trained": 95_000}})
    job.refresh_from_db()
    assert job.status == "completed"
    assert 0 <= job.quality["score"] <= 100
    assert job.quality["grade"] in {"A", "B", "C", "D", "F"}
    assert set(job.quality["components"]) == {"loss_reduction", "convergence", "stability", "overfitting_gap", "efficiency"}
    # final=True analysed the last points, which were still waiting for later ones.
    assert job.trend_state["pending"] == []
    assert any(e.payload["kind"] == "new_best" and e.payload["step"] == 200 for e in events(job, "anomaly"))


def test_a_training_job_with_no_new_step_for_too_long_gets_one_stall_event(job):
    t0 = timezone.now() - timedelta(hours=1)
    state, _ = update_trend_state(
        TrendState(),
        [Point(step=5, train_loss=1.0, eval_loss=None, learning_rate=None, tokens_per_second=None,
               at=t0.timestamp())],
        total_steps=100,
    )
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.TRAINING, trend_state=state.to_dict())

    first = services.check_stall(job.pk)
    again = services.check_stall(job.pk)

    assert [a.kind for a in first] == ["stall"] and again == []
    assert JobEvent.objects.filter(job=job, event_type=JobEvent.Type.ANOMALY, payload__kind="stall").count() == 1


def test_the_metrics_api_and_the_dashboard_give_the_incremental_recommendation(worker, job, client, staff):
    """An overfitting run reported through the webhook: the metrics API's `analysis` names the
    best step and says to use its checkpoint, and the dashboard feed shows the same advice,
    both read off the stored trend state."""
    points = [point(s, train_loss=2.0 / (1 + s / 30),
                    eval_loss=(1.0 + 0.0001 * (s - 60) ** 2) if s % 10 == 0 else None) for s in range(1, 151)]
    for start in range(0, 150, 50):
        assert worker.send("metrics", {"points": points[start:start + 50]}).status == 200
    api = APIClient()
    api.force_authenticate(staff)  # operators see every job
    body = api.get(f"/api/training/jobs/{job.pk}/metrics", {"max_points": 20}).json()
    analysis = body["analysis"]
    assert analysis["best_step"] == 60 and analysis["overfitting_since_step"] is not None
    assert analysis["latest_step"] == 150 and analysis["steps_since_improvement"] == 90
    assert analysis["recommendation"]["action"] == "use_checkpoint"
    assert analysis["recommendation"]["checkpoint_step"] == 60
    assert "overfitting" in analysis["recommendation"]["reason"]

    client.force_login(staff)
    feed = client.get(reverse("admin:training_trainingjob_dashboard_data", args=[job.pk])).json()
    assert feed["text"]["advice_action"] == "use checkpoint"
    assert feed["text"]["advice_reason"] == analysis["recommendation"]["reason"]
