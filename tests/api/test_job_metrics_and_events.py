"""GET jobs/{id}/metrics (whole or downsampled history) and jobs/{id}/events (filtered, paged)."""

from __future__ import annotations

import math

import pytest

from training.models import JobEvent, MetricPoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def job_with_history(owner, make_job):
    job = make_job(owner)
    # Inserted out of order: the response must still be in step order.
    for step in reversed(range(1, 201)):
        MetricPoint.objects.create(job=job, step=step, train_loss=2 + math.sin(step / 10), learning_rate=1e-4)
    MetricPoint.objects.filter(job=job, step=77).update(train_loss=-5.0)
    return job


def test_it_returns_the_whole_history_in_step_order(owner_api, job_with_history):
    data = owner_api.get(f"/api/training/jobs/{job_with_history.pk}/metrics").data

    assert data["total_points"] == 200 and data["downsampled"] is False
    assert [p["step"] for p in data["points"]] == list(range(1, 201))
    assert set(data["points"][0]) >= {"step", "train_loss", "eval_loss", "learning_rate", "reported_at"}


def test_it_downsamples_keeping_the_extremes(owner_api, job_with_history):
    data = owner_api.get(f"/api/training/jobs/{job_with_history.pk}/metrics?max_points=20").data

    steps = [p["step"] for p in data["points"]]
    assert len(steps) <= 20 and data["downsampled"] is True and data["total_points"] == 200
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 200
    assert min(p["train_loss"] for p in data["points"]) == -5.0


@pytest.mark.parametrize("bad", ["3", "abc", "-1"])
def test_it_rejects_a_bad_max_points(owner_api, job_with_history, bad):
    response = owner_api.get(f"/api/training/jobs/{job_with_history.pk}/metrics?max_points={bad}")

    assert response.status_code == 400
    assert "max_points" in response.data


def test_events_are_filtered_by_type_and_paginated(owner_api, owner, make_job, settings):
    job = make_job(owner)
    for seq in range(60):
        JobEvent.objects.create(job=job, event_type="metrics" if seq % 2 else "heartbeat", seq=seq)
    JobEvent.objects.create(job=job, event_type="error", payload={"message": "boom"})

    first = owner_api.get(f"/api/training/jobs/{job.pk}/events?type=metrics").data
    both = owner_api.get(f"/api/training/jobs/{job.pk}/events?type=metrics,error").data
    page_two = owner_api.get(f"/api/training/jobs/{job.pk}/events?page=2").data

    assert first["count"] == 30 and {e["event_type"] for e in first["results"]} == {"metrics"}
    assert both["count"] == 31
    assert page_two["count"] == 61 and len(page_two["results"]) == 61 - settings.REST_FRAMEWORK["PAGE_SIZE"]


def test_events_reject_an_unknown_type(owner_api, owner, make_job):
    job = make_job(owner)

    response = owner_api.get(f"/api/training/jobs/{job.pk}/events?type=gossip")

    assert response.status_code == 400
    assert "type" in response.data


def test_events_of_one_job_only(owner_api, owner, make_job):
    mine, other = make_job(owner), make_job(owner)
    JobEvent.objects.create(job=other, event_type="error")

    data = owner_api.get(f"/api/training/jobs/{mine.pk}/events?type=error").data

    assert data["count"] == 0
