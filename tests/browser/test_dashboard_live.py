"""An operator in a real browser: logs in, creates a job from the add form (estimate shown),
watches a running job's dashboard update without a reload as the worker reports (its stage strip
moving from preprocessing to training, progress, charts), and cancels it;
watches another job complete and finds its result at the top of the page.

The worker is stood in for by signed metric webhooks posted to the live server, exactly as
gpu_worker's Reporter signs them; a real worker run is covered by the execution tests.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid

import pytest
from django.urls import reverse

from gpu_worker import signing
from training.lifecycle import Status
from training.models import TrainingFile, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "pw-ada-123"
SECRET = "browser-test-secret"


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    # live_server serves from a thread of this process, so patched Celery delivery holds there too.
    import training.tasks as tasks

    monkeypatch.setattr(tasks.launch_job, "delay", lambda *a, **k: None)
    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda *a, **k: None)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)


@pytest.fixture
def dataset(catalogue) -> TrainingFile:
    return TrainingFile.objects.create(
        name="elena-chat.jsonl", file="datasets/elena.jsonl", sha256=hashlib.sha256(b"elena").hexdigest(),
        validation_status="valid", format="messages", record_count=500, size_bytes=120_000,
        validation_report={"problems": [], "message": "500 conversations"},
        token_stats={"conversations": 500, "total_tokens": 250_000, "trainable_tokens": 120_000, "max_seq_length": 2048},
    )


def post_metrics(base_url: str, job: TrainingJob, steps: range, seq: int, total: int = 200) -> dict:
    points = [{"step": s, "total_steps": total, "epoch": s / 100, "train_loss": 2.0 / (1 + s / 50),
               "eval_loss": (2.1 / (1 + s / 50)) if s % 10 == 0 else None, "learning_rate": 2e-4,
               "tokens_per_second": 3100.0, "gpu_memory_used_mb": 30_000, "gpu_memory_total_mb": 81_559,
               "eta_seconds": (total - s) * 2} for s in steps]
    return post_event(base_url, job, "metrics", {"points": points}, seq)


def post_event(base_url: str, job: TrainingJob, event_type: str, data: dict, seq: int) -> dict:
    event_id = f"evt_{uuid.uuid4().hex}"
    message = {"id": event_id, "type": event_type, "job_id": str(job.pk), "attempt": job.attempt, "seq": seq,
               "timestamp": "2026-11-23T20:15:03.123Z", "data": data}
    body = json.dumps(message, separators=(",", ":")).encode()
    headers = signing.signed_headers(SECRET, body, msg_id=event_id, timestamp=int(time.time()))
    request = urllib.request.Request(f"{base_url}/api/training/webhook", data=body, method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}{reverse('admin:login')}")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_an_operator_creates_a_job_and_watches_it_live(live_server, page, screenshot, superuser, dataset):
    base = live_server.url
    log_in(page, base)
    screenshot("1-logged-in")

    # Create a job from the add form; the estimate box fills in as the selections change.
    page.goto(f"{base}{reverse('admin:training_trainingjob_add')}")
    page.select_option("#id_training_file", str(dataset.pk))
    page.select_option("#id_preset", label=page.locator("#id_preset option", has_text="Balanced").first.inner_text())
    page.fill("#id_name", "Elena browser run")
    page.wait_for_function("document.getElementById('estimate-body').textContent.includes('Expected')")
    assert "$" in page.inner_text("#estimate-body")
    screenshot("2-add-form-estimate")
    page.click("input[name=_save]")
    page.wait_for_selector("#dashboard-link")
    job = TrainingJob.objects.get(name="Elena browser run")
    assert job.status == Status.PENDING and job.preset.slug == "balanced"
    screenshot("3-created")

    # The job runs: a worker attempt holds its secret (as start_job and the launcher would set).
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.PROVISIONING, attempt=1, secret=SECRET)
    job.refresh_from_db()
    post_event(base, job, "stage_changed", {"stage": "preprocessing"}, 1)
    page.click("#dashboard-link")
    page.wait_for_selector("#status-card")
    assert page.get_attribute("#stages [aria-current=step]", "data-stage") == "preprocessing"
    # From here on the page updates itself (no reload: a marker on window survives).
    page.evaluate("window.__notReloaded = true")

    # The worker moves through the stages while the page is open: the strip follows them.
    post_event(base, job, "stage_changed", {"stage": "model_loading"}, 2)
    post_event(base, job, "stage_changed", {"stage": "training"}, 3)
    assert post_metrics(base, job, range(1, 21), seq=4)["accepted"] is True
    page.wait_for_selector("#stages [data-stage=training].current[aria-current=step]", timeout=15_000)
    page.wait_for_function("document.getElementById('progress-text').textContent === '10.0%'")
    assert page.locator("#stages [aria-current=step]").count() == 1
    for stage in ("preprocessing", "model_loading"):
        done = page.locator(f"#stages [data-stage={stage}]")
        assert done.get_attribute("class") == "stage done", stage
        assert done.locator("[data-stage-field=spent]").inner_text() != "—", stage  # measured, though short
    assert page.locator("#stages [data-stage=validating]").get_attribute("class") == "stage upcoming"
    assert page.inner_text("[data-field=status]") == "Training"
    progress_before = page.inner_text("#progress-text")
    chart_before = page.get_attribute("#chart-loss", "src")
    assert page.evaluate("window.__notReloaded") is True
    screenshot("4-dashboard")

    # More reports arrive; the page updates itself.
    assert post_metrics(base, job, range(21, 101), seq=5)["accepted"] is True
    page.wait_for_function(f"document.getElementById('progress-text').textContent !== {json.dumps(progress_before)}")
    assert page.inner_text("#progress-text") == "50.0%"
    assert page.inner_text("[data-field=step]") == "100 / 200"
    page.wait_for_function(f"document.getElementById('chart-loss').getAttribute('src') !== {json.dumps(chart_before)}")
    page.wait_for_function("document.getElementById('chart-loss').complete && "
                           "document.getElementById('chart-loss').naturalWidth > 0")
    assert page.evaluate("window.__notReloaded") is True
    screenshot("5-dashboard-updated")

    # Cancel from the dashboard.
    page.click("#cancel-button")
    page.wait_for_function("document.querySelector('[data-field=status]').textContent === 'Cancelled'")
    assert page.is_hidden("#cancel-form") and page.is_visible("#retry-form")
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    screenshot("6-cancelled")


def test_a_completed_job_leads_with_its_result(live_server, page, screenshot, superuser, dataset, catalogue):
    from training.models import BaseModel

    job = TrainingJob.objects.create(name="Elena finished run", training_file=dataset, configuration={},
                                     base_model=BaseModel.objects.get(slug="smollm2-135m-instruct"))
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.TRAINING, current_stage=Status.TRAINING, attempt=1,
                                                 secret=SECRET)
    job.refresh_from_db()
    base = live_server.url
    assert post_metrics(base, job, range(1, 11), seq=1, total=12)["accepted"] is True
    for seq in range(2, 14):
        post_event(base, job, "heartbeat", {"stage": "training", "step": 10, "total_steps": 12}, seq)
    log_in(page, base)
    page.goto(f"{base}{reverse('admin:training_trainingjob_dashboard', args=[job.pk])}")
    page.wait_for_selector("#status-card")
    assert page.is_hidden("#result-block") and page.is_visible("#eta-row")

    # The rest of the run arrives while the page is open: it shows the ending by itself.
    assert post_metrics(base, job, range(11, 13), seq=14, total=12)["accepted"] is True
    for seq, stage in ((15, "finalizing"), (16, "validating")):
        post_event(base, job, "stage_changed", {"stage": stage}, seq)
    # The validation step's perplexities, near exp() of the Trainer's last held-out loss (1.75 at step 10).
    evaluators = {"perplexity": {"base": 8.137, "trained": 5.702, "improvement_pct": 29.925033796239404,
                                 "samples": 40, "tokens": 5123}}
    post_event(base, job, "validation_results", {"evaluators": evaluators}, 17)
    post_event(base, job, "completed", {"final_train_loss": 1.6129032258064517, "final_eval_loss": 1.75,
                                        "steps": 12, "summary": {"steps": 12}}, 18)
    page.wait_for_selector("#result-block:not([hidden])", timeout=30_000)
    result = page.locator("#result-block")
    assert result.locator("[data-field=result_perplexity]").inner_text() == "8.137 → 5.702"
    assert result.locator("[data-field=result_perplexity_change]").inner_text() == \
        "29.9% lower (better), -2.435 absolute"
    assert result.locator("[data-field=result_loss]").inner_text() == "2.096 → 1.741"
    assert "exp(eval loss), 5.755 at step 10, is the Trainer's periodic evaluation" in result.inner_text()
    assert page.locator("#verdict").inner_text().startswith("finished — Finished: held-out loss improved")
    assert page.is_hidden("#eta-row")
    # It is the first thing on the page, above the status card.
    assert result.bounding_box()["y"] < page.locator("#status-card").bounding_box()["y"]
    status_card = page.inner_text("#status-card")
    assert "Finished (all stages done)" in status_card and "Validating" not in status_card
    assert "continue" not in page.inner_text("#advice-card").lower()
    assert "12 heartbeats hidden" in page.inner_text("#event-log")
    text = page.inner_text("#dashboard")
    assert "1.6129032258064517" not in text and "29.925033796239404" not in text
    page.wait_for_function("[...document.querySelectorAll('img[data-chart]')].every((i) => i.complete && i.naturalWidth > 0)")
    screenshot("completed-result")
