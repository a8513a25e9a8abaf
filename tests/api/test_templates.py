"""Configuration templates: CRUD, jobs from a template, jobs saved as templates."""

from __future__ import annotations

import pytest

from training.lifecycle import Status
from training.models import ConfigurationTemplate, TrainingJob

pytestmark = pytest.mark.django_db


def test_it_creates_a_template_owned_by_the_caller(owner, owner_api):
    response = owner_api.post("/api/training/templates", {
        "name": "quick", "base_model": "smollm2-135m-instruct", "preset": "conservative",
        "configuration": {"num_epochs": 1, "gpu_pricing_tier": "on_demand"},
    }, format="json")

    assert response.status_code == 201, response.data
    template = ConfigurationTemplate.objects.get(pk=response.data["id"])
    assert template.created_by == owner and template.preset.slug == "conservative"
    assert response.data["created_by"] == "olivia"


def test_it_validates_the_configuration_like_a_job(owner_api):
    response = owner_api.post("/api/training/templates", {
        "name": "broken", "base_model": "smollm2-135m-instruct", "configuration": {"temperature": 1},
    }, format="json")

    assert response.status_code == 400
    assert "temperature" in response.data["configuration"]


def test_template_names_are_unique_per_user(owner_api, client_for, teammate):
    body = {"name": "same", "base_model": "smollm2-135m-instruct"}
    assert owner_api.post("/api/training/templates", body, format="json").status_code == 201

    again = owner_api.post("/api/training/templates", body, format="json")
    someone_else = client_for(teammate).post("/api/training/templates", body, format="json")

    assert again.status_code == 400 and "name" in again.data
    assert someone_else.status_code == 201


def test_it_creates_a_job_from_a_template_and_counts_the_use(owner, owner_api, make_file):
    response = owner_api.post("/api/training/templates", {
        "name": "r4", "base_model": "smollm2-135m-instruct", "preset": "balanced", "configuration": {"lora_r": 4},
    }, format="json")
    template = ConfigurationTemplate.objects.get(pk=response.data["id"])

    created = owner_api.post(f"/api/training/templates/{template.pk}/create-job", {
        "training_file": str(make_file(owner).pk), "name": "from template", "overrides": {"num_epochs": 1},
        "tags": ["t"],
    }, format="json")

    assert created.status_code == 201, created.data
    job = TrainingJob.objects.get(pk=created.data["id"])
    assert job.template == template and job.hyperparameters["lora_r"] == 4 and job.hyperparameters["num_epochs"] == 1
    template.refresh_from_db()
    assert template.usage_count == 1 and template.last_used_at is not None


def test_it_saves_a_job_as_a_template_that_reproduces_it(owner, owner_api, make_job, make_file):
    job = make_job(owner, preset="aggressive", status=Status.COMPLETED)

    saved = owner_api.post(f"/api/training/jobs/{job.pk}/save-as-template", {"name": "winner"}, format="json")

    assert saved.status_code == 201, saved.data
    assert saved.data["preset"] == "aggressive" and saved.data["created_by"] == "olivia"
    created = owner_api.post(f"/api/training/templates/{saved.data['id']}/create-job",
                             {"training_file": str(make_file(owner).pk)}, format="json")
    assert created.data["configuration"] == job.configuration


def test_saving_under_a_name_already_used_is_refused(owner, owner_api, make_job):
    job = make_job(owner)
    owner_api.post(f"/api/training/jobs/{job.pk}/save-as-template", {"name": "dup"}, format="json")

    response = owner_api.post(f"/api/training/jobs/{job.pk}/save-as-template", {"name": "dup"}, format="json")

    assert response.status_code == 400 and "name" in response.data


def test_an_operator_editing_a_template_keeps_its_owner(owner, owner_api, client_for, teammate):
    created = owner_api.post("/api/training/templates", {"name": "x", "base_model": "smollm2-135m-instruct"}, format="json")

    response = client_for(teammate).patch(f"/api/training/templates/{created.data['id']}", {"description": "tuned"}, format="json")

    assert response.status_code == 200
    assert response.data["created_by"] == "olivia" and response.data["description"] == "tuned"
