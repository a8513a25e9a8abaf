"""The job detail's live `progress` (services.progress): validation samples with their own ETA
while validating; a finished job shows its end, with no remaining time anywhere."""

from __future__ import annotations

import pytest

from training.lifecycle import Status
from training.models import JobEvent

pytestmark = pytest.mark.django_db


def url(job):
    return f"/api/training/jobs/{job.pk}"


def test_a_validating_job_shows_its_samples_and_their_eta(owner, owner_api, make_job):
    job = make_job(owner, status=Status.VALIDATING, attempt=1, current_step=12, total_steps=12,
                   estimate={"stages": {"validation": 8.0}, "total_steps": 12})
    JobEvent.objects.create(job=job, event_type="heartbeat", attempt=1, payload={
        "stage": "validating", "step": 12, "total_steps": 12, "validation_done": 12, "validation_total": 40,
        "seconds_per_validation_sample": 2.0})

    progress = owner_api.get(url(job)).data["progress"]

    assert progress["validation"] == {"done": 12, "total": 40}
    assert progress["basis"] == "measured"
    assert 50 <= progress["eta_seconds"] <= 56  # 28 samples x 2 s, less the seconds since the report


def test_a_cancelled_job_has_no_remaining_time(owner, owner_api, make_job):
    # As a job cancelled before the transition cleared the column was left.
    job = make_job(owner, status=Status.CANCELLED, attempt=1, current_step=40, total_steps=120,
                   estimated_time_remaining_minutes=85)

    data = owner_api.get(url(job)).data

    assert data["estimated_time_remaining_minutes"] is None
    assert data["progress"]["eta_seconds"] is None and data["progress"]["step"] == 40
