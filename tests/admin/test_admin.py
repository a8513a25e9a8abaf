"""The admin as operators use it: every page answers, jobs are created after an estimate
preview, actions go through the job services, refusals are warnings, uploads are ingested."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.messages import WARNING
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from training.lifecycle import Status
from training.models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    JobEvent,
    MetricPoint,
    Tag,
    TrainingFile,
    TrainingJob,
)

pytestmark = pytest.mark.django_db

MODELS = ["trainingfile", "hyperparameterpreset", "basemodel", "tag", "configurationtemplate", "trainingjob",
          "metricpoint", "jobevent"]


def messages_of(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.context["messages"]] if response.context else []


def changelist(name: str) -> str:
    return reverse(f"admin:training_{name}_changelist")


@pytest.fixture
def populated(make_job, staff):
    job = make_job(Status.TRAINING, progress_percentage=Decimal("42.5"), cost_estimate=Decimal("33.00"),
                   cost_estimate_low=Decimal("26.40"), cost_estimate_high=Decimal("44.55"))
    job.tags.add(Tag.objects.create(name="elena"))
    MetricPoint.objects.create(job=job, step=1, train_loss=1.2, tokens_per_second=35.0)
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.STARTED, payload={"message": "hello"})
    ConfigurationTemplate.objects.create(name="mine", base_model=job.base_model, preset=job.preset, created_by=staff)
    return job


@pytest.mark.parametrize("name", MODELS)
def test_every_changelist_answers(admin_client_for_staff, populated, name):
    assert admin_client_for_staff.get(changelist(name)).status_code == 200


@pytest.mark.parametrize("name", MODELS)
def test_every_change_page_answers(admin_client_for_staff, populated, name):
    model = {m._meta.model_name: m for m in (TrainingFile, HyperparameterPreset, BaseModel, Tag,
                                             ConfigurationTemplate, TrainingJob, MetricPoint, JobEvent)}[name]
    obj = model.objects.first()
    response = admin_client_for_staff.get(reverse(f"admin:training_{name}_change", args=[obj.pk]))
    assert response.status_code == 200


def test_the_job_list_shows_status_progress_cost_and_tags(admin_client_for_staff, populated):
    html = admin_client_for_staff.get(changelist("trainingjob")).content.decode()
    assert "Training</span>" in html and "42%" in html
    assert "$33.00 ($26.40–44.55)" in html
    assert "elena" in html


def test_the_job_list_is_searchable_and_filterable(admin_client_for_staff, populated, make_job):
    make_job(Status.FAILED, name="other")
    by_tag = admin_client_for_staff.get(changelist("trainingjob"), {"q": "elena"})
    assert list(by_tag.context["cl"].result_list) == [populated]
    failed = admin_client_for_staff.get(changelist("trainingjob"), {"status__exact": "failed"})
    assert [j.name for j in failed.context["cl"].result_list] == ["other"]


def test_the_job_list_needs_a_bounded_number_of_queries(admin_client_for_staff, make_job, django_assert_max_num_queries):
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    for i in range(30):
        job = make_job(Status.COMPLETED if i % 2 else Status.PENDING)
        job.tags.set(tags[: i % 4])
    admin_client_for_staff.get(changelist("trainingjob"))  # warm caches (content types, sessions)
    with django_assert_max_num_queries(15):
        response = admin_client_for_staff.get(changelist("trainingjob"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 30


# --- Creating a job -----------------------------------------------------------------------------


def job_form(dataset, **extra) -> dict:
    return {
        "training_file": str(dataset.pk),
        "base_model": str(BaseModel.objects.get(slug="llama-3-70b-instruct").pk),
        "preset": str(HyperparameterPreset.objects.get(slug="balanced").pk),
        "executor": "runpod", "gpu_pricing_tier": "spot", "gpu_type": "",
        "name": "Elena v1", "notes": "first run", "tags": "elena, first-run", "client": "Acme", "project": "Elena",
        **extra,
    }


def test_the_add_form_offers_only_valid_datasets_and_explains_the_presets(admin_client_for_staff, make_dataset):
    good, bad = make_dataset(name="good one"), make_dataset(valid=False, name="broken one")
    response = admin_client_for_staff.get(reverse("admin:training_trainingjob_add"))
    assert response.status_code == 200
    choices = list(response.context["adminform"].form.fields["training_file"].queryset)
    assert good in choices and bad not in choices
    html = response.content.decode()
    assert "Best for:" in html and "Production models" in html
    assert "Preview estimate" in html and reverse("admin:training_trainingjob_estimate") in html


def test_a_job_is_previewed_then_created_through_the_service(admin_client_for_staff, make_dataset, staff):
    dataset = make_dataset()
    url = reverse("admin:training_trainingjob_add")
    preview = admin_client_for_staff.post(url, {**job_form(dataset), "_preview": "1"})
    assert preview.status_code == 200
    assert TrainingJob.objects.count() == 0
    estimate = preview.context["estimate"]
    assert estimate["summary"].startswith("Estimated Duration:")
    assert "Estimated Duration:" in preview.content.decode()

    saved = admin_client_for_staff.post(url, {**job_form(dataset), "_save": "1"})
    job = TrainingJob.objects.get()
    assert saved.status_code == 302 and saved["Location"] == reverse("admin:training_trainingjob_change", args=[job.pk])
    assert (job.name, job.status, job.created_by, job.executor) == ("Elena v1", Status.PENDING, staff, "runpod")
    assert sorted(job.tags.values_list("name", flat=True)) == ["elena", "first-run"]
    assert job.cost_estimate == Decimal(estimate["cost"]["expected"])
    assert JobEvent.objects.filter(job=job, payload__action="created").exists()


def test_an_unusable_configuration_is_a_form_error_not_a_crash(admin_client_for_staff, make_dataset):
    dataset = make_dataset()
    template = ConfigurationTemplate.objects.create(
        name="broken", base_model=BaseModel.objects.first(), configuration={"lora_r": 0})
    response = admin_client_for_staff.post(reverse("admin:training_trainingjob_add"),
                                           {**job_form(dataset, preset="", template=str(template.pk)), "_save": "1"})
    assert response.status_code == 200
    assert "lora_r" in response.content.decode()
    assert TrainingJob.objects.count() == 0


def test_a_missing_preset_and_template_is_a_form_error(admin_client_for_staff, make_dataset):
    response = admin_client_for_staff.post(reverse("admin:training_trainingjob_add"),
                                           {**job_form(make_dataset(), preset=""), "_preview": "1"})
    assert response.status_code == 200
    assert "Pick a preset or a template." in response.content.decode()


def test_the_estimate_endpoint_answers_json(admin_client_for_staff, make_dataset):
    dataset = make_dataset()
    preset = HyperparameterPreset.objects.get(slug="balanced")
    url = reverse("admin:training_trainingjob_estimate")
    assert url == "/admin/training/trainingjob/estimate/"
    response = admin_client_for_staff.get(url, {"training_file": dataset.pk, "preset": preset.pk,
                                                "base_model": BaseModel.objects.get(slug="llama-3-70b-instruct").pk})
    assert response.status_code == 200
    data = response.json()
    assert set(data["cost"]) == {"low", "expected", "high"} and data["throughput"]["source"] == "prior"
    on_demand = admin_client_for_staff.get(url, {"training_file": dataset.pk, "preset": preset.pk,
                                                 "base_model": BaseModel.objects.get(slug="llama-3-70b-instruct").pk,
                                                 "gpu_pricing_tier": "on_demand"}).json()
    assert Decimal(on_demand["cost"]["expected"]) > Decimal(data["cost"]["expected"])


@pytest.mark.parametrize("params", [{}, {"training_file": "not-a-uuid", "preset": "x"},
                                    {"training_file": "00000000-0000-0000-0000-000000000000", "preset": "1"},
                                    {"gpu_type": "TPU"}])
def test_the_estimate_endpoint_answers_bad_input_with_400(admin_client_for_staff, make_dataset, params):
    response = admin_client_for_staff.get(reverse("admin:training_trainingjob_estimate"), params)
    assert response.status_code == 400
    assert "errors" in response.json()


def test_the_estimate_endpoint_needs_a_staff_login(client, make_dataset):
    response = client.get(reverse("admin:training_trainingjob_estimate"))
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- Actions ------------------------------------------------------------------------------------


def act(client, action: str, *jobs):
    with_callbacks = client.post(changelist("trainingjob"),
                                 {"action": action, "_selected_action": [str(j.pk) for j in jobs]}, follow=True)
    return with_callbacks


def test_start_queues_a_pending_job_and_enqueues_its_launch(admin_client_for_staff, make_job, deliveries,
                                                            django_capture_on_commit_callbacks):
    job = make_job()
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client_for_staff, "start_jobs", job)
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert deliveries["launch_job"].calls == [(str(job.pk),)]
    assert any("Started 1 job(s)" in text for _, text in messages_of(response))


def test_starting_a_running_job_is_a_warning_not_an_error_page(admin_client_for_staff, make_job, deliveries):
    job = make_job(Status.TRAINING, name="busy")
    response = act(admin_client_for_staff, "start_jobs", job)
    assert response.status_code == 200
    assert (WARNING, "Job 'busy' is training: only a pending job can be started.") in messages_of(response)
    assert deliveries["launch_job"].calls == []


def test_cancel_stops_a_running_job(admin_client_for_staff, make_job, deliveries, django_capture_on_commit_callbacks):
    job = make_job(Status.TRAINING)
    with django_capture_on_commit_callbacks(execute=True):
        act(admin_client_for_staff, "cancel_jobs", job)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert deliveries["stop_job_execution"].calls == [(str(job.pk),)]


def test_cancelling_a_finished_job_is_a_warning(admin_client_for_staff, make_job):
    job = make_job(Status.COMPLETED, name="done")
    response = act(admin_client_for_staff, "cancel_jobs", job)
    assert (WARNING, "Job 'done' is completed: only a job that has not finished can be cancelled.") in messages_of(response)


def test_retry_creates_a_linked_pending_job_and_refuses_a_running_one(admin_client_for_staff, make_job):
    failed = make_job(Status.FAILED, name="oom")
    running = make_job(Status.TRAINING, name="running")
    response = act(admin_client_for_staff, "retry_jobs", failed, running)
    retry = TrainingJob.objects.get(parent=failed)
    assert retry.status == Status.PENDING and retry.name == "oom (retry 1)"
    texts = messages_of(response)
    assert (WARNING, "Job 'running' is training: only a failed or cancelled job can be retried.") in texts
    assert any("Created retry" in t for _, t in texts)


def test_the_change_page_shows_the_error_and_recovery_and_saves_only_notes_and_tags(admin_client_for_staff, make_job):
    job = make_job(Status.FAILED, error_type="OutOfMemoryError", error_message="CUDA out of memory at step 40",
                   error_suggested_fix="Try batch_size=2 or the Conservative preset.", checkpoint_recovery_count=2,
                   lost_seconds=600, resumed_from_step=300, hourly_rate=Decimal("2.49"))
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.ERROR, payload={"message": "oom"})
    url = reverse("admin:training_trainingjob_change", args=[job.pk])
    html = admin_client_for_staff.get(url).content.decode()
    assert "OutOfMemoryError" in html and "Try batch_size=2" in html
    assert "Interrupted 2×, resumed from step 300, 10 min lost" in html
    assert "Recent events" in html and "oom" in html

    # Meanwhile the worker moved the job on; the form's save must not write the old values back.
    TrainingJob.objects.filter(pk=job.pk).update(latest_loss=0.5)
    response = admin_client_for_staff.post(url, {"notes": "OOM at batch 4", "tags": [Tag.objects.create(name="oom").pk],
                                                 "events-TOTAL_FORMS": "1", "events-INITIAL_FORMS": "1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert job.notes == "OOM at batch 4" and list(job.tags.values_list("name", flat=True)) == ["oom"]
    assert (job.latest_loss, job.status) == (0.5, Status.FAILED)


def test_only_a_pending_job_can_be_deleted(admin_client_for_staff, make_job):
    running = make_job(Status.TRAINING)
    assert admin_client_for_staff.get(reverse("admin:training_trainingjob_delete", args=[running.pk])).status_code == 403
    pending = make_job()
    response = admin_client_for_staff.post(reverse("admin:training_trainingjob_delete", args=[pending.pk]), {"post": "yes"})
    assert response.status_code == 302 and not TrainingJob.objects.filter(pk=pending.pk).exists()


# --- Datasets -----------------------------------------------------------------------------------

CHAT = (json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})
        + "\n").encode()


def upload(client, filename: str, content: bytes, **fields):
    return client.post(reverse("admin:training_trainingfile_add"),
                       {"file": SimpleUploadedFile(filename, content), "name": "", "description": "", **fields},
                       follow=True)


def test_a_dataset_is_uploaded_validated_and_shown(admin_client_for_staff, staff):
    response = upload(admin_client_for_staff, "elena.jsonl", CHAT, name="Elena chats")
    tf = TrainingFile.objects.get()
    assert (tf.name, tf.created_by, tf.validation_status) == ("Elena chats", staff, "valid")
    assert response.redirect_chain[-1][0] == reverse("admin:training_trainingfile_change", args=[tf.pk])
    html = response.content.decode()
    assert "is valid" in html and "total tokens" in html and "SmolLM2-135M-Instruct" in html


def test_uploading_the_same_bytes_again_points_at_the_first_upload(admin_client_for_staff):
    upload(admin_client_for_staff, "elena.jsonl", CHAT, name="Elena chats")
    response = upload(admin_client_for_staff, "copy.jsonl", CHAT, name="Elena chats")
    assert TrainingFile.objects.count() == 1
    assert any(level == WARNING and "already uploaded as" in text and "Elena chats" in text
               for level, text in messages_of(response))


def test_the_same_bytes_under_a_new_name_are_a_new_dataset_with_that_name(admin_client_for_staff):
    upload(admin_client_for_staff, "elena.jsonl", CHAT, name="Elena chats")
    upload(admin_client_for_staff, "copy.jsonl", CHAT)
    assert sorted(TrainingFile.objects.values_list("name", flat=True)) == ["Elena chats", "copy"]
    assert TrainingFile.objects.values("blob").distinct().count() == 1


def test_an_invalid_upload_shows_its_problems_by_line_and_field(admin_client_for_staff):
    bad = CHAT + b'{"messages": [{"role": "user", "content": "x"}]}\n'
    response = upload(admin_client_for_staff, "bad.jsonl", bad)
    tf = TrainingFile.objects.get()
    assert tf.validation_status == "invalid"
    html = response.content.decode()
    assert "cannot be trained" in html
    assert "<td>2</td><td><code>messages</code></td><td>must contain at least one assistant message</td>" in html


def test_a_wrong_extension_is_a_form_error(admin_client_for_staff):
    response = upload(admin_client_for_staff, "data.csv", b"a,b\n1,2\n")
    assert response.status_code == 200
    assert "must be .json or .jsonl" in response.content.decode()
    assert TrainingFile.objects.count() == 0


def test_a_preset_with_an_impossible_value_is_refused(admin_client_for_staff):
    preset = HyperparameterPreset.objects.get(slug="balanced")
    url = reverse("admin:training_hyperparameterpreset_change", args=[preset.pk])
    data = {f: getattr(preset, f) for f in ("name", "slug", "lora_r", "lora_alpha", "learning_rate", "num_epochs",
                                            "per_device_batch_size", "gradient_accumulation_steps", "max_seq_length",
                                            "warmup_ratio", "lr_scheduler", "explanation", "best_for", "sort_order")}
    response = admin_client_for_staff.post(url, {**data, "lora_dropout": 1.5, "is_active": "on"})
    assert response.status_code == 200 and "must be in [0, 1)" in response.content.decode()


def test_deleting_an_unused_dataset_removes_its_file(admin_client_for_staff, media_root,
                                                     django_capture_on_commit_callbacks):
    upload(admin_client_for_staff, "elena.jsonl", CHAT)
    tf = TrainingFile.objects.get()
    stored = media_root / tf.file.name
    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for_staff.post(reverse("admin:training_trainingfile_delete", args=[tf.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not TrainingFile.objects.exists() and not stored.exists()


def test_a_dataset_used_by_a_job_cannot_be_deleted(admin_client_for_staff, make_job):
    job = make_job()
    response = admin_client_for_staff.get(reverse("admin:training_trainingfile_delete", args=[job.training_file.pk]))
    assert response.status_code == 200 and "would require deleting the following protected" in response.content.decode()


def test_a_job_page_renders_an_estimate_of_another_shape(admin_client_for_staff, make_job):
    job = make_job(estimate={"cost": {"expected": "1.00"}, "stages": "odd"})
    response = admin_client_for_staff.get(reverse("admin:training_trainingjob_change", args=[job.pk]))
    assert response.status_code == 200 and "odd" in response.content.decode()


# --- The add pages through Django's ModelAdmin API (add_form, save_form, response_add) ------------


def test_a_preview_shows_what_was_posted_and_saves_nothing(admin_client_for_staff, make_dataset):
    dataset = make_dataset()
    preview = admin_client_for_staff.post(reverse("admin:training_trainingjob_add"),
                                          {**job_form(dataset), "_preview": "1"})
    assert preview.status_code == 200 and not preview.context["errors"]
    html = preview.content.decode()
    assert 'value="Elena v1"' in html and 'value="elena, first-run"' in html
    assert f'<option value="{dataset.pk}" selected>' in html
    assert TrainingJob.objects.count() == 0 and not LogEntry.objects.exists()


def test_the_add_form_starts_from_the_default_preset(admin_client_for_staff):
    form = admin_client_for_staff.get(reverse("admin:training_trainingjob_add")).context["adminform"].form
    assert str(form["preset"].value()) == str(HyperparameterPreset.objects.get(slug="balanced").pk)
    assert not form["tags"].value()


def test_a_tag_that_is_not_a_slug_is_an_error_on_the_tags_field(admin_client_for_staff, make_dataset):
    response = admin_client_for_staff.post(reverse("admin:training_trainingjob_add"),
                                           {**job_form(make_dataset(), tags="elena, first run!"), "_save": "1"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["tags"] == [
        "Tags may contain letters, numbers, hyphens and underscores only."]
    assert TrainingJob.objects.count() == 0


def test_creating_a_job_or_a_dataset_is_logged_once_and_a_duplicate_upload_not_at_all(admin_client_for_staff,
                                                                                      make_dataset):
    admin_client_for_staff.post(reverse("admin:training_trainingjob_add"), {**job_form(make_dataset()), "_save": "1"})
    upload(admin_client_for_staff, "elena.jsonl", CHAT, name="Elena chats")
    upload(admin_client_for_staff, "copy.jsonl", CHAT, name="Elena chats")
    assert sorted(LogEntry.objects.values_list("object_repr", "action_flag")) == [
        ("Elena chats", ADDITION), ("Elena v1", ADDITION)]
