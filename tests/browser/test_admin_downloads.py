"""In a real browser: a completed job's page has a button for each file, and a click downloads the
file (Playwright's expect_download: the browser saved it, not rendered it) with its own name."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.urls import reverse

from tests.artifacts.conftest import embedded_base_model, upload_outputs
from training.lifecycle import Status
from training.models import MetricPoint, TrainingFile, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "pw-ada-123"


@pytest.fixture
def completed_job(catalogue, settings, tmp_path, django_user_model) -> TrainingJob:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    user = django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    dataset = TrainingFile.objects.create(name="elena-chat.jsonl", file="datasets/elena.jsonl", sha256="e" * 64,
                                          validation_status="valid", created_by=user)
    job = TrainingJob.objects.create(
        name="Elena v1", training_file=dataset, base_model=embedded_base_model(), created_by=user,
        configuration={"base_model": "embedded:smollm2-135m-instruct",
                       "hyperparameters": {"lora_r": 8, "lora_alpha": 16}},
        results={"validation": {"evaluators": {"perplexity": {"base": 17.9, "trained": 15.8,
                                                              "improvement_pct": 11.7}}},
                 "review_state": "approved"},  # QA approved it: the package downloads at once
    )
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    for step in (4, 8, 12):
        MetricPoint.objects.create(job=job, step=step, epoch=step / 12, train_loss=3.0 - step / 12,
                                   learning_rate=2e-4)
    upload_outputs(job)
    return job


def test_each_button_downloads_its_file(live_server, page, screenshot, completed_job, tmp_path):
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}{reverse('admin:training_trainingjob_change', args=[completed_job.pk])}")
    shot = screenshot("job-page-with-downloads")
    assert shot.stat().st_size > 10_000

    expected = {
        "#download-adapters": "elena-v1-adapter.zip",
        "#download-deployment-package": "elena-v1-deployment-package.zip",
        "#download-metrics-csv": "elena-v1-metrics.csv",
        "#download-metrics-json": "elena-v1-metrics.json",
    }
    for button, filename in expected.items():
        assert page.locator(button).is_visible()
        with page.expect_download() as info:
            page.click(button)
        download = info.value
        assert download.suggested_filename == filename
        saved = tmp_path / filename
        download.save_as(saved)
        data = saved.read_bytes()
        if filename.endswith(".zip"):
            assert any(n.endswith("adapter_model.safetensors") for n in zipfile.ZipFile(io.BytesIO(data)).namelist())
        elif filename.endswith(".csv"):
            assert [r["step"] for r in csv.DictReader(io.StringIO(data.decode()))] == ["4", "8", "12"]
        else:
            assert json.loads(data)["validation"]["perplexity_trained"] == 15.8
    # Still on the job's page: no download replaced it with raw JSON.
    assert page.url.endswith(f"/admin/training/trainingjob/{completed_job.pk}/change/")
