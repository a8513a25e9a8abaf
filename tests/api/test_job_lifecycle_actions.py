"""start, cancel, retry and delete through the API: the services decide, refusals are 409s
carrying the lifecycle's sentence."""

from __future__ import annotations

import pytest

from training.lifecycle import Status
from training.models import JobEvent, TrainingJob

pytestmark = pytest.mark.django_db


def url(job, action=""):
    return f"/api/training/jobs/{job.pk}" + (f"/{action}" if action else "")


def test_it_starts_a_pending_job_and_enqueues_the_launch(
    owner, owner_api, make_job, deliveries, django_capture_on_commit_callbacks
):
    job = make_job(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(url(job, "start"))

    assert response.status_code == 200, response.data
    assert response.data["status"] == "queued"
    assert deliveries["launch_job"].calls == [(str(job.pk),)]


def test_it_refuses_to_start_a_running_job(owner, owner_api, make_job, deliveries):
    job = make_job(owner, status=Status.TRAINING, name="llama run")

    response = owner_api.post(url(job, "start"))

    assert response.status_code == 409
    assert response.data == {"detail": "Job 'llama run' is training: only a pending job can be started."}
    assert deliveries["launch_job"].calls == []


def test_it_cancels_a_running_job_and_stops_its_execution(
    owner, owner_api, make_job, deliveries, django_capture_on_commit_callbacks
):
    job = make_job(owner, status=Status.TRAINING)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(url(job, "cancel"))

    assert response.status_code == 200
    assert response.data["status"] == "cancelled"
    assert deliveries["stop_job_execution"].calls == [(str(job.pk),)]


def test_it_refuses_to_cancel_a_completed_job(owner, owner_api, make_job):
    job = make_job(owner, status=Status.COMPLETED, name="done")

    response = owner_api.post(url(job, "cancel"))

    assert response.status_code == 409
    assert response.data == {"detail": "Job 'done' is completed: only a job that has not finished can be cancelled."}


def test_it_deletes_a_job_that_never_started(owner, owner_api, make_job):
    job = make_job(owner)

    assert owner_api.delete(url(job)).status_code == 204
    assert not TrainingJob.objects.filter(pk=job.pk).exists()


def test_it_refuses_to_delete_a_started_job(owner, owner_api, make_job):
    job = make_job(owner, status=Status.QUEUED, name="queued one")

    response = owner_api.delete(url(job))

    assert response.status_code == 409
    assert response.data == {"detail": "Job 'queued one' is queued: only a job that was never started can be deleted."}
    assert TrainingJob.objects.filter(pk=job.pk).exists()


def test_it_refuses_to_retry_a_job_that_did_not_fail(owner, owner_api, make_job):
    job = make_job(owner, status=Status.TRAINING, name="busy")

    response = owner_api.post(url(job, "retry"), {}, format="json")

    assert response.status_code == 409
    assert response.data == {"detail": "Job 'busy' is training: only a failed or cancelled job can be retried."}


def test_it_retries_a_failed_job_with_the_suggested_change(owner, owner_api, make_job):
    job = make_job(owner, status=Status.FAILED, name="oom",
                   error_details={"suggested_config": {"per_device_batch_size": 1}})

    response = owner_api.post(url(job, "retry"), {}, format="json")

    assert response.status_code == 201, response.data
    new = TrainingJob.objects.get(pk=response.data["job"]["id"])
    assert new.parent_id == job.pk
    assert response.data["job"]["parent"]["id"] == str(job.pk)
    assert response.data["changes"] == {"per_device_batch_size": {"from": 4, "to": 1}}


def test_it_retries_with_the_callers_overrides(owner, owner_api, make_job):
    job = make_job(owner, status=Status.CANCELLED)

    response = owner_api.post(url(job, "retry"), {"overrides": {"learning_rate": 1e-4}}, format="json")

    assert response.status_code == 201
    assert response.data["changes"] == {"learning_rate": {"from": 2e-4, "to": 1e-4}}
    detail = owner_api.get(url(job)).data
    assert [r["id"] for r in detail["retries"]] == [response.data["job"]["id"]]


def test_it_nests_a_bad_retry_override_under_overrides(owner, owner_api, make_job):
    job = make_job(owner, status=Status.FAILED)

    response = owner_api.post(url(job, "retry"), {"overrides": {"lora_r": -1}}, format="json")

    assert response.status_code == 400
    assert "overrides" in response.data


def test_detail_shows_errors_progress_and_recovery(owner, owner_api, make_job):
    job = make_job(owner, status=Status.FAILED, error_type="oom", error_message="CUDA out of memory",
                   error_suggested_fix="Halve the batch size.", checkpoint_recovery_count=2,
                   lost_seconds=600, resumed_from_step=300, latest_loss=1.25, current_step=310)
    JobEvent.objects.create(job=job, event_type="error", payload={"message": "boom"})

    data = owner_api.get(url(job)).data

    assert data["error_type"] == "oom"
    assert data["error_suggested_fix"] == "Halve the batch size."
    assert data["recovery_summary"] == "Interrupted 2×, resumed from step 300, 10 min lost"
    assert data["latest_loss"] == 1.25 and data["current_step"] == 310
    assert "secret" not in data


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_jobs_configuration_is_frozen(owner, owner_api, make_job, method):
    job = make_job(owner)

    response = getattr(owner_api, method)(url(job), {"name": "renamed"}, format="json")

    assert response.status_code == 405
