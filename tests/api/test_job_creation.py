"""Creating jobs: from a preset, a template or overrides; errors keyed by the field at fault."""

from __future__ import annotations

import pytest

from training.models import BaseModel, ConfigurationTemplate, HyperparameterPreset, TrainingJob

pytestmark = pytest.mark.django_db


def test_it_creates_a_job_from_a_preset_with_overrides_and_tags(owner, owner_api, make_file):
    dataset = make_file(owner)
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(dataset.pk), "preset": "aggressive", "overrides": {"lora_r": 64},
        "name": "support bot v2", "notes": "first try", "client": "acme", "project": "helpdesk",
        "tags": ["Support", "v2"],
    }, format="json")

    assert response.status_code == 201, response.data
    job = TrainingJob.objects.get(pk=response.data["id"])
    assert job.created_by == owner
    assert job.preset.slug == "aggressive"
    assert job.hyperparameters["lora_r"] == 64
    assert job.hyperparameters["learning_rate"] == HyperparameterPreset.objects.get(slug="aggressive").learning_rate
    assert sorted(response.data["tags"]) == ["support", "v2"]
    assert response.data["status"] == "pending"
    assert response.data["estimate"]["cost"]["expected"] is not None


def test_it_creates_a_job_from_a_template(owner, owner_api, make_file):
    template = ConfigurationTemplate.objects.create(
        name="small", base_model=BaseModel.objects.get(is_embedded=True), created_by=owner,
        configuration={"lora_r": 4, "num_epochs": 1},
    )
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "template": template.pk,
    }, format="json")

    assert response.status_code == 201, response.data
    assert response.data["hyperparameters"]["lora_r"] == 4
    assert response.data["template"] == template.pk


def test_it_nests_an_unknown_override_under_overrides(owner, owner_api, make_file):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "overrides": {"temperature": 0.7},
    }, format="json")

    assert response.status_code == 400
    assert "temperature" in response.data["overrides"]


def test_it_refuses_an_invalid_dataset_naming_the_field(owner, owner_api, make_file):
    dataset = make_file(owner, validation_status="invalid", problem_count=3)
    response = owner_api.post("/api/training/jobs", {"training_file": str(dataset.pk)}, format="json")

    assert response.status_code == 400
    assert "training_file" in response.data
    assert "3 problem" in str(response.data["training_file"])


def test_it_refuses_someone_elses_dataset_as_if_it_did_not_exist(outsider, client_for, owner, make_file):
    response = client_for(outsider).post(
        "/api/training/jobs", {"training_file": str(make_file(owner).pk)}, format="json"
    )

    assert response.status_code == 400
    assert "does not exist" in str(response.data["training_file"])


def test_it_rejects_tags_that_are_not_slugs(owner, owner_api, make_file):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "tags": ["has space"],
    }, format="json")

    assert response.status_code == 400
    assert "tags" in response.data


def test_it_rejects_an_unknown_preset(owner, owner_api, make_file):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "preset": "turbo",
    }, format="json")

    assert response.status_code == 400
    assert "preset" in response.data


@pytest.mark.parametrize("overrides, field", [({"max_steps": 10**12}, "max_steps"), ({"num_epochs": 1e15}, "num_epochs")])
def test_a_job_too_big_to_estimate_is_refused_on_its_setting_and_nothing_is_created(owner, owner_api, make_file,
                                                                                    overrides, field):
    response = owner_api.post("/api/training/jobs", {
        "training_file": str(make_file(owner).pk), "preset": "balanced", "overrides": overrides}, format="json")

    assert response.status_code == 400, response.data
    assert f"lower {field}" in str(response.data.get(field, response.data))
    assert not TrainingJob.objects.exists()
