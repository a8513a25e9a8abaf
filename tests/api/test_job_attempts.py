"""The job detail lists its attempts, each interruption with the minutes and dollars it lost."""

from __future__ import annotations

import pytest

from tests.attempts import add_interrupted_attempts
from training.lifecycle import Status

pytestmark = pytest.mark.django_db


def test_the_job_detail_lists_each_attempt_with_what_an_interruption_lost(owner, owner_api, make_job):
    job = make_job(owner, status=Status.TRAINING)
    add_interrupted_attempts(job)

    data = owner_api.get(f"/api/training/jobs/{job.pk}").data

    first, second = data["attempts"]
    assert (first["number"], first["executor"], first["pricing_tier"], first["gpu_type"]) == (
        1, "runpod", "spot", "H100_PCIE_80GB")
    assert (first["hourly_rate"], first["billable_seconds"], first["cost"]) == ("2.1000", 3600.0, "2.10")
    assert (first["outcome"], first["reason"]) == ("interrupted", "worker gone: pod p-1 no longer exists")
    assert (first["lost_minutes"], first["lost_dollars"], first["lost_summary"]) == (12, "0.42", "12 min lost ($0.42)")
    assert first["launched_at"] and first["ended_at"] and first["started_at"] is None
    assert (second["number"], second["outcome"], second["resumed_from_step"]) == (2, "running", 300)
    assert (second["lost_minutes"], second["lost_summary"]) == (0, "")
    assert data["executor_ref"] == {"pod_id": "p-2"}  # the current attempt's


def test_a_job_never_launched_has_no_attempts(owner, owner_api, make_job):
    data = owner_api.get(f"/api/training/jobs/{make_job(owner).pk}").data
    assert data["attempts"] == [] and data["executor_ref"] == {}
