"""A job may choose the worker's compute precision: auto, bf16 or fp32 in its overrides, passed
through to the worker's configuration; anything else is a 400 naming the field."""

from __future__ import annotations

import pytest

from training.models import TrainingJob
from training.services import worker_config

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp32"])
def test_it_passes_the_chosen_precision_to_the_worker(owner, owner_api, make_file, precision):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "overrides": {"precision": precision},
    }, format="json")

    assert response.status_code == 201, response.data
    job = TrainingJob.objects.get(pk=response.data["id"])
    assert job.hyperparameters["precision"] == precision
    assert worker_config.build_worker_config(job)["precision"] == precision


def test_without_an_override_the_worker_decides(owner, owner_api, make_file):
    response = owner_api.post("/api/training/jobs", {"training_file": str(make_file(owner).pk)}, format="json")

    assert response.status_code == 201, response.data
    job = TrainingJob.objects.get(pk=response.data["id"])
    # Absent, the worker's own default (auto: bf16 where the hardware runs it fast) applies.
    assert "precision" not in worker_config.build_worker_config(job)


@pytest.mark.parametrize("value", ["fp16", "BF16", "", 16, None])
def test_it_refuses_an_unknown_precision_naming_the_field_and_the_choices(owner, owner_api, make_file, value):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "overrides": {"precision": value},
    }, format="json")

    assert response.status_code == 400, response.data
    errors = response.data["overrides"]
    assert "precision" in errors, errors
    message = str(errors["precision"])
    assert "auto, bf16 or fp32" in message and repr(value) in message
    assert not TrainingJob.objects.exists()
