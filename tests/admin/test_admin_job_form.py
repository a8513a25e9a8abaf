"""The admin's job form sets a job's training settings (overrides) and can start the job it saves.

Overrides are checked by the API's own validation (job_services.resolve_configuration, i.e. the
worker's WorkerConfig), so a bad value is refused on its field with the API's words and nothing is
created. "Save and start" starts through job_services.start_job, as POST /jobs/ID/start does: the
job is queued and its launch enqueued after commit (recorded here, see conftest's deliveries).
The job's page shows its figures rounded for people, and no remaining time once it has finished.
"""

from __future__ import annotations

import pytest
from django.contrib.messages import SUCCESS, WARNING
from django.urls import reverse
from rest_framework.test import APIClient

from training.lifecycle import Status
from training.models import BaseModel, HyperparameterPreset, TrainingJob

pytestmark = pytest.mark.django_db

ADD = "admin:training_trainingjob_add"


def job_form(dataset, **extra) -> dict:
    return {
        "training_file": str(dataset.pk),
        "base_model": str(BaseModel.objects.get(slug="llama-3-70b-instruct").pk),
        "preset": str(HyperparameterPreset.objects.get(slug="balanced").pk),
        "executor": "runpod", "gpu_pricing_tier": "spot", "gpu_type": "",
        "name": "Elena v1", "notes": "", "tags": "", "client": "", "project": "",
        **extra,
    }


def messages_of(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.context["messages"]]


def change_url(job: TrainingJob) -> str:
    return reverse("admin:training_trainingjob_change", args=[job.pk])


def api_refusal(user, dataset, overrides: dict) -> dict:
    """What the API answers the same overrides with (its 400 body's `overrides`)."""
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/training/jobs", {"training_file": str(dataset.pk), "preset": "balanced",
                                               "base_model": "llama-3-70b-instruct", "overrides": overrides},
                        format="json")
    assert response.status_code == 400, response.content
    return response.json()["overrides"]


# --- Overrides ----------------------------------------------------------------------------------


def test_the_add_form_offers_the_settings_with_the_presets_values_as_placeholders(admin_client_for_staff):
    response = admin_client_for_staff.get(reverse(ADD))
    form = response.context["adminform"].form
    balanced = HyperparameterPreset.objects.get(slug="balanced")
    for name in ("max_steps", "num_epochs", "learning_rate", "lora_r", "checkpoint_interval"):
        assert name in form.fields
    assert form.fields["lora_r"].widget.attrs["placeholder"] == str(balanced.lora_r)
    assert form.fields["learning_rate"].widget.attrs["placeholder"] == str(balanced.learning_rate)
    html = response.content.decode()
    assert 'name="max_steps"' in html and "Save and start" in html


def test_overrides_go_into_the_jobs_configuration_and_its_estimate(admin_client_for_staff, make_dataset):
    settings = {"max_steps": "20", "num_epochs": "1", "learning_rate": "1e-4", "lora_r": "8",
                "checkpoint_interval": "5"}
    response = admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), **settings, "_save": "1"})
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(job)
    hyper = job.hyperparameters
    assert (hyper["max_steps"], hyper["num_epochs"], hyper["learning_rate"], hyper["lora_r"],
            hyper["checkpoint_interval"]) == (20, 1, 1e-4, 8, 5)
    # The preset fills what was left empty.
    assert hyper["lora_alpha"] == HyperparameterPreset.objects.get(slug="balanced").lora_alpha
    assert job.estimate["total_steps"] == 20
    assert job.status == Status.PENDING


def test_empty_settings_keep_the_presets_values(admin_client_for_staff, make_dataset):
    admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), "lora_r": "", "_save": "1"})
    balanced = HyperparameterPreset.objects.get(slug="balanced")
    hyper = TrainingJob.objects.get().hyperparameters
    assert (hyper["lora_r"], hyper["learning_rate"]) == (balanced.lora_r, balanced.learning_rate)
    assert "max_steps" not in hyper


@pytest.mark.parametrize("field, value", [("lora_r", 0), ("learning_rate", -0.001), ("num_epochs", 0),
                                          ("checkpoint_interval", -1), ("per_device_batch_size", 0)])
def test_a_bad_setting_is_refused_on_its_field_in_the_apis_words(admin_client_for_staff, make_dataset, staff,
                                                                  field, value):
    dataset = make_dataset()
    response = admin_client_for_staff.post(reverse(ADD), {**job_form(dataset), field: str(value), "_save": "1"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert errors[field] == api_refusal(staff, dataset, {field: value})[field]
    assert f"{field}: must be" in errors[field][0]
    assert TrainingJob.objects.count() == 0


def test_a_setting_that_is_not_a_number_is_a_field_error(admin_client_for_staff, make_dataset):
    response = admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), "max_steps": "ten",
                                                          "_saveandstart": "1"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"max_steps": ["Enter a whole number."]}
    assert TrainingJob.objects.count() == 0


def test_the_live_estimate_takes_the_settings(admin_client_for_staff, make_dataset):
    dataset = make_dataset()
    params = {"training_file": dataset.pk, "preset": HyperparameterPreset.objects.get(slug="balanced").pk,
              "base_model": BaseModel.objects.get(slug="llama-3-70b-instruct").pk}
    url = reverse("admin:training_trainingjob_estimate")
    short = admin_client_for_staff.get(url, {**params, "max_steps": 7}).json()
    assert short["total_steps"] == 7 and short["configuration"]["hyperparameters"]["max_steps"] == 7
    refused = admin_client_for_staff.get(url, {**params, "lora_r": 0})
    assert refused.status_code == 400
    assert refused.json()["errors"]["lora_r"] == ["lora_r: must be an integer >= 1 (got 0)"]


# --- Save and start -----------------------------------------------------------------------------


def test_save_and_start_creates_the_job_starts_it_and_opens_its_page(admin_client_for_staff, make_dataset, deliveries,
                                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), "max_steps": "12",
                                                              "_saveandstart": "1"}, follow=True)
    job = TrainingJob.objects.get()
    assert response.redirect_chain == [(change_url(job), 302)]
    assert job.status == Status.QUEUED and job.hyperparameters["max_steps"] == 12
    assert deliveries["launch_job"].calls == [(str(job.pk),)]
    [(level, text)] = messages_of(response)
    assert level == SUCCESS and text.startswith("Created and started Elena v1: Estimated Duration:")
    assert reverse("admin:training_trainingjob_dashboard", args=[job.pk]) in text
    # Its page, now queued, offers no second start.
    assert 'name="_saveandstart"' not in response.content.decode()


def test_save_and_start_with_a_bad_setting_creates_and_starts_nothing(admin_client_for_staff, make_dataset, deliveries,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), "lora_r": "0",
                                                              "_saveandstart": "1"})
    assert response.status_code == 200
    assert "lora_r: must be an integer &gt;= 1 (got 0)" in response.content.decode()
    assert TrainingJob.objects.count() == 0 and deliveries["launch_job"].calls == []


def test_a_pending_jobs_page_saves_and_starts_it(admin_client_for_staff, make_job, deliveries,
                                                 django_capture_on_commit_callbacks):
    job = make_job(name="waiting")
    page = admin_client_for_staff.get(change_url(job)).content.decode()
    assert 'name="_saveandstart"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for_staff.post(change_url(job), {
            "notes": "go", "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "_saveandstart": "1"}, follow=True)
    job.refresh_from_db()
    assert response.redirect_chain == [(change_url(job), 302)]
    assert (job.notes, job.status) == ("go", Status.QUEUED)
    assert deliveries["launch_job"].calls == [(str(job.pk),)]
    assert any(level == SUCCESS and text.startswith("Saved and started waiting.")
               for level, text in messages_of(response))


def test_save_and_start_on_a_job_that_already_ran_is_a_warning(admin_client_for_staff, make_job, deliveries):
    job = make_job(Status.COMPLETED, name="done")
    assert 'name="_saveandstart"' not in admin_client_for_staff.get(change_url(job)).content.decode()
    # A page loaded while the job was pending, posted after it had finished.
    response = admin_client_for_staff.post(change_url(job), {
        "notes": "again", "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "_saveandstart": "1"}, follow=True)
    assert response.status_code == 200
    assert (WARNING, "Job 'done' is completed: only a pending job can be started.") in messages_of(response)
    job.refresh_from_db()
    assert (job.notes, job.status) == ("again", Status.COMPLETED)
    assert deliveries["launch_job"].calls == []


# --- The job's page -----------------------------------------------------------------------------

RAW = {"current_epoch": 0.3076923076923077, "latest_loss": 2.9872450828552246, "latest_eval_loss": 2.3909203547906803,
       "latest_perplexity": 17.441234567891234, "latest_learning_rate": 0.00019876543210987,
       "current_step": 4, "total_steps": 13, "estimated_time_remaining_minutes": 85}


def test_a_running_jobs_page_shows_rounded_figures_and_its_remaining_time(admin_client_for_staff, make_job):
    job = make_job(Status.TRAINING, **RAW)
    html = admin_client_for_staff.get(change_url(job)).content.decode()
    # core.humanize, as on the dashboard: 3 significant digits for epochs, 4 for losses.
    for shown in ("0.308", "2.987", "2.391", "17.44", "1.99e-04", "4 / 13", "1 h 25 min"):
        assert shown in html, shown
    for raw in ("0.3076923076923077", "2.9872450828552246", "2.3909203547906803", "17.441234567891234",
                "0.00019876543210987"):
        assert raw not in html, raw
    assert "Time remaining" in html


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_a_finished_jobs_page_shows_no_remaining_time(admin_client_for_staff, make_job, status):
    # A row written before terminal transitions cleared the figure still holds one.
    job = make_job(status, **RAW, current_stage="validating")  # the last stage the worker reported
    html = admin_client_for_staff.get(change_url(job)).content.decode()
    assert "Time remaining" not in html and "1 h 25 min" not in html
    assert "Estimated time remaining" not in html
    assert "2.987" in html  # the figures it ended with stay
    assert "Validating" not in html and ("Finished (all stages done)" in html) == (status == Status.COMPLETED)


def test_the_job_page_lists_its_settings(admin_client_for_staff, make_job):
    job = make_job()
    TrainingJob.objects.filter(pk=job.pk).update(configuration={"hyperparameters": {
        "learning_rate": 0.0002, "lora_r": 8, "max_steps": 20, "target_modules": ["q_proj", "v_proj"]}})
    html = admin_client_for_staff.get(change_url(job)).content.decode()
    for row in ("<th>learning rate</th><td>0.0002</td>", "<th>lora r</th><td>8</td>", "<th>max steps</th><td>20</td>",
                "<th>target modules</th><td>q_proj, v_proj</td>"):
        assert row in html, row


def test_a_job_too_big_to_store_is_a_field_error_not_a_server_error(admin_client_for_staff, make_dataset):
    response = admin_client_for_staff.post(reverse(ADD), {**job_form(make_dataset()), "max_steps": str(10**12),
                                                          "_saveandstart": "1"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["max_steps"] and "lower max_steps" in errors["max_steps"][0]
    assert TrainingJob.objects.count() == 0
