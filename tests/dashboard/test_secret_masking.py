"""The job's webhook secret never shows, wherever the worker's text is shown: API job detail and
events, the error report, the admin change pages and the dashboard; for rows stored before any
masking too (issue 18, item 5)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.webhooks.conftest import FakeWorker, make_job
from training.models import JobEvent, TrainingJob

pytestmark = pytest.mark.django_db

SECRET = "Zq3vN8xYb2_LmW9kT4pR7sD1fG6hJ0cV5aE8uI2oQ3w"


@pytest.fixture
def leaky_job(client) -> TrainingJob:
    """A failed job whose worker quoted its secret in the error, its details and its events."""
    job = make_job(secret=SECRET)
    worker = FakeWorker(client, job, secret=SECRET)
    assert worker.send("stage_changed", {"stage": "training", "message": f"env WEBHOOK_SECRET={SECRET}"}).status == 200
    response = worker.send("error", {
        "error_type": "unknown", "message": f"Traceback: requests.post(secret='{SECRET}') failed",
        "suggested_fix": f"rotate {SECRET}", "details": {"trace_tail": [f"line with {SECRET}"], SECRET: 1},
        "exit_code": 1,
    })
    assert response.status == 200, response.body
    # A row stored as it was before masking existed (e.g. by an older control plane).
    JobEvent.objects.create(job=job, event_type="heartbeat", payload={"note": f"old row {SECRET}"})
    job.refresh_from_db()
    assert SECRET in job.error_message  # stored as the worker sent it; masked when shown
    return job


def assert_masked(content: bytes) -> None:
    text = content.decode()
    assert SECRET not in text
    assert "[secret]" in text


@pytest.fixture
def staff_api(staff) -> APIClient:
    api = APIClient()
    api.force_authenticate(staff)
    return api


def test_the_api_job_detail_masks_the_secret(staff_api, leaky_job):
    response = staff_api.get(f"/api/training/jobs/{leaky_job.pk}")
    assert response.status_code == 200
    assert_masked(response.content)
    assert response.json()["error_message"] == "Traceback: requests.post(secret='[secret]') failed"


def test_the_api_job_events_mask_the_secret(staff_api, leaky_job):
    response = staff_api.get(f"/api/training/jobs/{leaky_job.pk}/events")
    assert response.status_code == 200
    assert_masked(response.content)


def test_the_error_report_masks_the_secret(staff_api, leaky_job):
    response = staff_api.get(f"/api/training/jobs/{leaky_job.pk}/error-report")
    assert response.status_code == 200
    assert_masked(response.content)


def test_the_admin_job_change_page_masks_the_secret(staff_client, leaky_job):
    response = staff_client.get(reverse("admin:training_trainingjob_change", args=[leaky_job.pk]))
    assert response.status_code == 200
    assert_masked(response.content)


def test_the_admin_event_pages_mask_the_secret(staff_client, leaky_job):
    listing = staff_client.get(reverse("admin:training_jobevent_changelist"))
    assert listing.status_code == 200
    assert SECRET not in listing.content.decode()
    for event in JobEvent.objects.filter(job=leaky_job):
        response = staff_client.get(reverse("admin:training_jobevent_change", args=[event.pk]))
        assert response.status_code == 200
        assert SECRET not in response.content.decode(), event.event_type
    error = JobEvent.objects.get(job=leaky_job, event_type="error")
    assert_masked(staff_client.get(reverse("admin:training_jobevent_change", args=[error.pk])).content)


def test_the_dashboard_masks_the_secret(staff_client, leaky_job):
    response = staff_client.get(reverse("admin:training_trainingjob_dashboard", args=[leaky_job.pk]))
    assert response.status_code == 200
    assert_masked(response.content)
    data = staff_client.get(reverse("admin:training_trainingjob_dashboard", args=[leaky_job.pk]) + "data/")
    assert SECRET not in data.content.decode()


def test_mask_secret_reaches_keys_lists_and_nested_values():
    job = TrainingJob(secret="abc")
    assert job.mask_secret({"abc": ["xabcx", {"k": "abc"}], "n": 1}) == {
        "[secret]": ["x[secret]x", {"k": "[secret]"}], "n": 1}
    assert TrainingJob(secret="").mask_secret("abc") == "abc"
