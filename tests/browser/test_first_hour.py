"""A new user's first hour, in a real browser against a real worker: log in, upload a dataset
through the admin, create a job with a few training steps and start it ("Save and start"), watch
its dashboard show steps and an ETA while it trains, see the result (perplexity before → after)
when it completes, download each of its files as a file, then start another job and cancel it
from its dashboard, which then says whether a checkpoint was saved.

Everything is real except the model's size: the local executor spawns `python -m gpu_worker` on
the tiny random Llama of tests/tiny_model.py (CPU, offline), which reports over signed HTTP to
the live server, tasks run in-process. Waits are for events (the page's text, the job's row, the
worker's process group), with limits generous enough for a loaded 2-core machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import time
import zipfile
from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.test_dashboard_live import PASSWORD, log_in
from tests.tiny_model import write_chat_dataset
from training.executors.local import group_members
from training.lifecycle import Status
from training.models import BaseModel, TrainingJob
from training.services.worker_config import job_store_root

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Worker start-up (importing torch, transformers and TRL, loading the model) takes seconds on an
# idle machine and can take minutes on a loaded 2-core one; the limits are for the latter.
WORKER_START_S = 240
RUN_TO_END_S = 420
MS = 1000


@pytest.fixture
def inline_tasks(monkeypatch):
    """The launch and stop tasks run in the request that enqueues them (on commit), as with
    eager Celery; live_server serves from a thread of this process, so the patch holds there."""
    from training import tasks
    from training.services import launching, stopping

    monkeypatch.setattr(tasks.launch_job, "delay", lambda job_id: launching.launch_attempt(job_id))
    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda job_id: stopping.stop_attempt(job_id))


@pytest.fixture
def first_hour(live_server, settings, tmp_path, catalogue, tiny_model, django_user_model, inline_tasks):
    """A superuser, the tiny model in the catalogue, the worker reporting to this live server on
    CPU; at the end no worker of this test is left running."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PUBLIC_BASE_URL = live_server.url  # where the worker sends its reports
    settings.WORKER_DEVICE = "cpu"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the upload validates inline
    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    # A local model folder registered as manage.py train --base-model <folder> registers one.
    model = BaseModel.objects.create(slug="tiny-llama", name="Tiny Llama (tests)", model_id=str(tiny_model),
                                     parameter_count=100_000, recommended_gpu="CPU_LOCAL", is_embedded=True)
    yield model
    for job in TrainingJob.objects.all():
        pgid = (job.attempt_ref or {}).get("pgid")
        if pgid and group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def fresh(job: TrainingJob) -> TrainingJob:
    job.refresh_from_db()
    return job


def wait_for_charts(page) -> None:
    """Every chart on the dashboard loaded (an SVG the server drew; the page asks for all four at
    once), so the screenshot shows them and a chart that fails to render fails the test."""
    page.wait_for_function("[...document.querySelectorAll('img[data-chart]')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")


def create_and_start(page, base: str, *, dataset_name: str, model: BaseModel, name: str,
                     settings: dict[str, str]) -> TrainingJob:
    """The admin's add form: dataset, the tiny model, the Balanced preset, the local executor,
    a few training settings, then "Save and start"."""
    page.goto(f"{base}{reverse('admin:training_trainingjob_add')}")
    page.select_option("#id_training_file", label=page.locator("#id_training_file option",
                                                               has_text=dataset_name).first.inner_text())
    page.select_option("#id_base_model", str(model.pk))
    page.select_option("#id_preset", label=page.locator("#id_preset option", has_text="Balanced").first.inner_text())
    page.select_option("#id_executor", "local")
    for field, value in settings.items():
        page.fill(f"#id_{field}", value)
    page.fill("#id_name", name)
    page.wait_for_function("document.getElementById('estimate-body').textContent.includes('Expected')")
    page.click("input[name=_saveandstart]")
    expect(page.locator(".messagelist .success")).to_contain_text(f"Created and started {name}")
    return TrainingJob.objects.get(name=name)


def test_a_new_user_trains_watches_downloads_and_cancels(first_hour, live_server, page, screenshot, tmp_path):
    base = live_server.url
    model = first_hour
    # The server renders the dashboard's charts and builds the packages while a worker trains
    # beside it: on a loaded machine a page takes longer than the fixture's 20 s.
    page.set_default_timeout(90 * MS)

    log_in(page, base)
    screenshot("01-logged-in")

    # Upload a dataset through the admin's upload form; it is validated on the spot.
    dataset = write_chat_dataset(tmp_path / "tiny-chat.jsonl", records=24)
    page.goto(f"{base}{reverse('admin:training_trainingfile_add')}")
    screenshot("02-upload-form")
    page.set_input_files("#id_file", str(dataset))
    page.fill("#id_name", "tiny-chat")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_contain_text("Dataset 'tiny-chat' is valid")
    screenshot("03-uploaded")

    # A job with a few steps on the tiny model, started from the form.
    job = create_and_start(page, base, dataset_name="tiny-chat", model=model, name="First hour", settings={
        "max_steps": "12", "per_device_batch_size": "2", "max_seq_length": "128"})
    started = time.monotonic()
    assert fresh(job).configuration["hyperparameters"]["max_steps"] == 12
    assert job.executor == "local" and job.status != Status.PENDING
    screenshot("04-created-and-started")

    # Its dashboard shows a remaining time from the start (the estimate's until a step is timed),
    # then the steps ("N / 12", not "— / —") as soon as the worker reports them, without a reload.
    # (A 12-step job may finish between two refreshes, so the ETA is looked for first.)
    page.click("#dashboard-link")
    step, eta = page.locator("#status-card [data-field=step]"), page.locator("#status-card [data-field=eta]")
    expect(eta).to_have_text(re.compile(r"\d"), timeout=30 * MS)
    expect(step).to_have_text(re.compile(r"^[1-9]\d* / 12$"), timeout=WORKER_START_S * MS)
    first_progress_s = time.monotonic() - started
    screenshot("05-dashboard-training")
    print(f"first step and ETA on the dashboard {first_progress_s:.1f} s after 'Save and start' "
          f"({step.inner_text()}, ETA {eta.inner_text()})")

    # The result, when it completes: perplexity base → trained, and a final verdict.
    result = page.locator("#result-block")
    expect(result).to_be_visible(timeout=RUN_TO_END_S * MS)
    expect(result.locator("[data-field=status]")).to_have_text("Completed")
    expect(page.locator("#result-figures")).to_be_visible()
    job = fresh(job)
    assert job.status == Status.COMPLETED, (job.error_message, job.attempt_ref)
    perplexity = job.results["validation"]["evaluators"]["perplexity"]
    headline = result.locator("[data-field=result_perplexity]").inner_text()
    assert re.fullmatch(r"[\d,.]+ → [\d,.]+", headline), headline
    assert page.locator("#verdict").inner_text().startswith("finished")
    expect(page.locator("#eta-row")).to_be_hidden()
    wait_for_charts(page)
    screenshot("06-dashboard-completed")
    print(f"completed after {time.monotonic() - started:.1f} s: perplexity {headline} ({perplexity})")

    # Each file from the job's page, saved by the browser as a file under its own name.
    page.goto(f"{base}{reverse('admin:training_trainingjob_change', args=[job.pk])}")
    screenshot("07-job-page-downloads")
    expected = {
        "#download-adapters": "first-hour-adapter.zip",
        "#download-deployment-package": "first-hour-deployment-package.zip",
        "#download-metrics-csv": "first-hour-metrics.csv",
        "#download-metrics-json": "first-hour-metrics.json",
    }
    saved: dict[str, bytes] = {}
    for button, filename in expected.items():
        if button == "#download-deployment-package":
            # Not approved by QA yet (a lone superuser may not approve their own model): staff
            # download it anyway by saying why, and the audit keeps the reason.
            page.click(button)
            page.wait_for_selector("#package-override-form")
            screenshot("07b-package-override")
            page.fill("#id_override_reason", "First delivery, before QA's review.")
            with page.expect_download() as info:
                page.click("#package-override-submit")
            page.goto(f"{base}{reverse('admin:training_trainingjob_change', args=[job.pk])}")
        else:
            with page.expect_download() as info:
                page.click(button)
        download = info.value
        assert download.suggested_filename == filename
        path = tmp_path / "downloads" / filename
        download.save_as(path)
        saved[filename] = path.read_bytes()
    assert page.url.endswith(f"/admin/training/trainingjob/{job.pk}/change/")  # not replaced by raw JSON
    from artifacts.models import DownloadAudit
    assert DownloadAudit.objects.get(kind="deployment-package").override_reason == "First delivery, before QA's review."
    adapter = zipfile.ZipFile(io.BytesIO(saved["first-hour-adapter.zip"]))
    assert adapter.testzip() is None
    assert any(n.endswith("adapter_model.safetensors") for n in adapter.namelist()), adapter.namelist()
    package = zipfile.ZipFile(io.BytesIO(saved["first-hour-deployment-package.zip"]))
    assert package.testzip() is None
    names = {n.removeprefix("deployment-package/") for n in package.namelist()}
    assert {"inference.py", "requirements-cpu.txt", "README.md", "adapter/adapter_model.safetensors"} <= names, names
    steps = [int(r["step"]) for r in csv.DictReader(io.StringIO(saved["first-hour-metrics.csv"].decode()))]
    assert steps and max(steps) == 12, steps
    assert json.loads(saved["first-hour-metrics.json"])["validation"]["perplexity_trained"] == pytest.approx(
        perplexity["trained"])

    # Another job, long enough to be cancelled while it trains; no periodic checkpoints, so a
    # checkpoint the dashboard names is the worker's emergency one of its last completed step.
    second = create_and_start(page, base, dataset_name="tiny-chat", model=model, name="Cancel me", settings={
        "max_steps": "5000", "per_device_batch_size": "2", "max_seq_length": "128", "checkpoint_interval": "0"})
    page.click("#dashboard-link")
    expect(page.locator("#status-card [data-field=step]")).to_have_text(re.compile(r"^[1-9][\d,]* / 5,000$"),
                                                                         timeout=WORKER_START_S * MS)
    # A step has been timed: the remaining time is measured now, not the estimate.
    expect(page.locator("#status-card [data-field=eta]")).to_have_text(re.compile(r"^\d[\dhms ]*$"),
                                                                        timeout=30 * MS)
    # The table and its heading follow the feed, as the charts do (the heading said "latest 0"
    # over the rows the page had filled in since it loaded).
    expect(page.locator("#metrics-count")).not_to_have_text("0", timeout=30 * MS)
    wait_for_charts(page)
    screenshot("08-second-job-training")
    page.click("#cancel-button")
    expect(page.locator(".messagelist .success")).to_contain_text("Cancelled job 'Cancel me'")
    assert fresh(second).status == Status.CANCELLED
    # Once the worker is gone (it abandons its step and exits), the verdict says whether a
    # checkpoint was saved, and what it says is what the job's store holds.
    verdict = page.locator("#verdict [data-field=verdict]")
    expect(verdict).to_contain_text("Cancelled at step")
    said_first = verdict.inner_text()
    wait_until(lambda: not group_members(fresh(second).attempt_ref["pgid"]), 120, "the cancelled worker exits")
    checkpoint = fresh(second).last_checkpoint_step
    manifests = sorted(job_store_root(second.pk).rglob("manifest.json"))
    # A step had completed (the dashboard showed it), so there is always a checkpoint to keep,
    # whichever reaches the worker first: the cancel's SIGTERM or the 410 to its next report.
    assert checkpoint is not None and checkpoint >= 1, (checkpoint, verdict.inner_text())
    assert [m.parent.name for m in manifests] == [f"step-{checkpoint}"], manifests
    expect(verdict).to_contain_text(f"the checkpoint at step {checkpoint:,} was saved.", timeout=30 * MS)
    # It stopped no earlier than the checkpoint it saved: the message does not contradict itself.
    stopped = int(re.search(r"Cancelled at step ([\d,]+)", verdict.inner_text())[1].replace(",", ""))
    assert stopped >= checkpoint, verdict.inner_text()
    expect(page.locator("#result-block [data-field=status]")).to_have_text("Cancelled")
    expect(page.locator("#cancel-form")).to_be_hidden()
    expect(page.locator("#eta-row")).to_be_hidden()
    wait_for_charts(page)
    screenshot("09-cancelled")
    print(f"cancelled: first {said_first!r}, then {verdict.inner_text()!r}")

