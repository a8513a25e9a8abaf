"""In a real browser: the before/after view of a validated job (the headline strip, every scenario
and prompt with both replies, sorting by the gap, the benchmark filter) and the playground with
the tiny model (a message typed, both replies shown with their timings), and the playground's
plain refusal for a base model too large for this machine."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from django.urls import reverse

from tests.browser.conftest import SCREENSHOTS
from tests.validation.results import report, suite_of, worker_results
from training.models import BaseModel, TrainingFile, TrainingJob
from training.states import Status
from validation import playground, sets
from validation.models import ReplyScore
from validation.summary import refresh_summary

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "pw-ada-123"
SYSTEM = "You are Elena, a financial planner."


@pytest.fixture(autouse=True)
def whole_sets(settings):
    """Every item of the sets, whatever scripts/test.sh caps end-to-end jobs to."""
    settings.VALIDATION_MAX_ITEMS = 0


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dest = tmp_path_factory.mktemp("browser-adapter")
    torch.manual_seed(1)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config).save_pretrained(dest)
    return dest


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.VALIDATION_PLAYGROUND_CACHE_DIR = str(tmp_path / "playground-cache")
    settings.VALIDATION_PLAYGROUND_MAX_NEW_TOKENS = 24
    playground.unload()
    yield
    playground.unload()


def make_job(user, base_model: BaseModel, name: str) -> TrainingJob:
    dataset = TrainingFile.objects.create(
        name="elena-chat.jsonl", file="datasets/elena.jsonl", sha256=uuid.uuid4().hex * 2,
        validation_status="valid", record_count=64, created_by=user)
    return TrainingJob.objects.create(
        training_file=dataset, base_model=base_model, name=name, executor="local",
        configuration={"base_model": base_model.model_id, "hyperparameters": {}}, gpu_type="CPU_LOCAL",
        gpu_pricing_tier="spot", secret="s3cret", created_by=user, status=Status.TRAINING)


@pytest.fixture
def validated_job(superuser, tiny_model, tiny_adapter, settings, django_capture_on_commit_callbacks):
    base = BaseModel.objects.create(slug=f"tiny-{uuid.uuid4().hex[:6]}", name="Tiny Llama (test)",
                                    model_id=str(tiny_model), parameter_count=100_000,
                                    recommended_gpu="CPU_LOCAL", context_length=1024)
    job = make_job(superuser, base, "Elena v1")
    results = worker_results(suite_of(job))
    for kind in (sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE):
        results[kind]["system_prompt"] = SYSTEM
        results[kind]["generation"] = {"max_new_tokens": 192, "batch_size": 8, "do_sample": False}
    validation = report(job, results, django_capture_on_commit_callbacks)
    # People and the judge scored the first scenarios; one trained reply did worse than base.
    for index, reply in enumerate(validation.replies.filter(benchmark=sets.EMOTIONAL_INTELLIGENCE)[:4]):
        base_score, trained_score = (4, 2) if index == 3 else (2, 4 + index % 2)
        for variant, value in (("base", base_score), ("trained", trained_score)):
            ReplyScore.objects.create(reply=reply, variant=variant, scorer="people", evaluator=superuser,
                                      criteria={"empathy": value, "clarity": 3, "appropriateness": value})
            ReplyScore.objects.create(reply=reply, variant=variant, scorer="judge:gpt-4o-mini",
                                      criteria={"empathy": value, "clarity": 4, "appropriateness": value})
    refresh_summary(validation)
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    shutil.copytree(tiny_adapter, Path(settings.MEDIA_ROOT) / "jobs" / str(job.pk) / "adapter")
    return job


def viewport_shot(page, name: str) -> Path:
    """The visible part only: the whole page of 80 items is tens of thousands of pixels tall."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"test_the_before_and_after_view-{name}.png"
    page.screenshot(path=str(path))
    return path


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_the_before_and_after_view(live_server, page, validated_job):
    log_in(page, live_server)
    page.goto(f"{live_server.url}{reverse('admin:validation_jobvalidation_compare', args=[validated_job.pk])}")
    # Ada has scored some scenarios blind but not all: the page asks before unblinding them.
    assert "You have scored" in page.locator("#blind-first").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "before-after-blind-first.png"))
    with page.expect_navigation():
        page.click("#reveal-anyway")
    assert page.locator("#summary-strip .vc-cell").count() == 4
    assert page.locator("article.vc-item").count() == 80
    first = page.locator("article.vc-item").first
    assert first.locator(".vc-reply.base .vc-text").is_visible() and first.locator(".vc-reply.trained .vc-text").is_visible()
    # Side by side: the trained column starts to the right of the base one, on the same line.
    base_box = first.locator(".vc-reply.base").bounding_box()
    trained_box = first.locator(".vc-reply.trained").bounding_box()
    assert trained_box["x"] > base_box["x"] + base_box["width"] - 1 and abs(trained_box["y"] - base_box["y"]) < 2
    assert "hit the 192-token cap" in first.locator(".vc-head.base").inner_text()
    page.set_viewport_size({"width": 1400, "height": 1400})
    assert viewport_shot(page, "top").stat().st_size > 20_000

    page.select_option("#sort-filter", "worst")
    page.wait_for_url("**sort=worst**")
    gaps = [float(g) for g in page.locator("article.vc-item .vc-diff").evaluate_all("els => els.map(e => e.dataset.gap)")]
    assert gaps == sorted(gaps) and gaps[0] < 0
    assert "by people (1 evaluator)" in page.locator("article.vc-item").first.inner_text()
    viewport_shot(page, "worst-first")

    page.select_option("#benchmark-filter", sets.BRAND_VOICE)
    page.wait_for_url("**benchmark=brand_voice**")
    assert page.locator("article.vc-item").count() == 30
    assert page.locator("#sort-filter").input_value() == "worst"
    viewport_shot(page, "brand-voice")


def test_the_playground_with_the_tiny_model(live_server, page, screenshot, validated_job):
    log_in(page, live_server)
    page.goto(f"{live_server.url}{reverse('admin:validation_jobvalidation_compare', args=[validated_job.pk])}")
    page.click("#playground-link")
    assert page.locator("#id_system_prompt").input_value() == SYSTEM
    screenshot("empty")
    page.click("#clear-system-prompt")
    assert page.locator("#id_system_prompt").input_value() == ""
    page.click("#restore-system-prompt")
    assert page.locator("#id_system_prompt").input_value() == SYSTEM
    page.fill("#id_message", "I feel worried about my credit card debt. What should I pay first?")
    page.click("#ask-button")
    page.wait_for_selector("#playground-answer")
    base = page.locator("#base-reply").inner_text()
    trained = page.locator("#trained-reply").inner_text()
    assert base and trained and base != trained
    timings = page.locator("#playground-answer .timing").all_inner_texts()
    assert len(timings) == 2 and all(" s, " in t and "token" in t for t in timings)
    # The form keeps what was typed, so the next question can build on it.
    assert "credit card debt" in page.locator("#id_message").input_value()
    screenshot("answered")


def test_the_playground_says_plainly_when_the_model_does_not_fit(live_server, page, screenshot, superuser,
                                                                 monkeypatch):
    llama = BaseModel.objects.create(slug=f"llama-{uuid.uuid4().hex[:6]}", name="Llama 3 70B",
                                     model_id="meta-llama/Meta-Llama-3-70B", parameter_count=70_553_706_496,
                                     recommended_gpu="H100_80GB")
    job = make_job(superuser, llama, "Elena on Llama 70B")
    monkeypatch.setattr(playground, "free_gpu_bytes", lambda: None)
    log_in(page, live_server)
    page.goto(f"{live_server.url}{reverse('admin:validation_jobvalidation_playground', args=[job.pk])}")
    text = page.locator("#cannot-run").inner_text()
    assert "cannot run here" in text and "141 GB in bf16" in text
    assert page.locator("#playground-form").count() == 0
    assert "there is no trained adapter yet" in page.locator("#no-adapter").inner_text()
    screenshot("cannot-run")
