"""The playground with the tiny model: a message in, the base reply (adapter off) and the trained
reply out, the same replies gpu_worker.generation gives; a model too large for this machine, an
over-long prompt, a job with no adapter and a failing model each get a message, never a 500."""

from __future__ import annotations

import html
import shutil
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from training.models import BaseModel, TrainingFile, TrainingJob
from training.states import Status
from validation import playground
from validation.models import JobValidation

pytestmark = pytest.mark.django_db

SYSTEM = "You are Elena, a financial planner."
MESSAGE = "I feel worried about my credit card debt, what should I pay first?"


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:
    """A LoRA adapter of the tiny model with random weights on both matrices (init_lora_weights
    False), so the trained model answers differently from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dest = tmp_path_factory.mktemp("tiny-adapter")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(dest)
    return dest


@pytest.fixture(autouse=True)
def fresh_playground(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VALIDATION_PLAYGROUND_CACHE_DIR = str(tmp_path / "playground-cache")
    settings.VALIDATION_PLAYGROUND_MAX_NEW_TOKENS = 12
    playground.unload()
    yield
    playground.unload()


def make_job(owner, base_model: BaseModel, status: str = Status.COMPLETED) -> TrainingJob:
    dataset = TrainingFile.objects.create(
        name="chat.jsonl", file="datasets/tiny.jsonl", sha256=uuid.uuid4().hex * 2,
        validation_status=TrainingFile.ValidationStatus.VALID, record_count=64, created_by=owner)
    return TrainingJob.objects.create(
        training_file=dataset, base_model=base_model, name="elena v1", executor="local",
        configuration={"base_model": base_model.model_id, "hyperparameters": {}}, gpu_type="CPU_LOCAL",
        gpu_pricing_tier="spot", secret="s3cret", created_by=owner, status=status)


@pytest.fixture
def tiny_base(tiny_model) -> BaseModel:
    return BaseModel.objects.create(slug=f"tiny-{uuid.uuid4().hex[:8]}", name="Tiny Llama", model_id=str(tiny_model),
                                    parameter_count=100_000, recommended_gpu="CPU_LOCAL", context_length=1024)


@pytest.fixture
def completed(owner, tiny_base, tiny_adapter, settings) -> TrainingJob:
    job = make_job(owner, tiny_base)
    shutil.copytree(tiny_adapter, Path(settings.MEDIA_ROOT) / "jobs" / str(job.pk) / "adapter")
    JobValidation.objects.create(job=job, worker_results={
        "emotional_intelligence": {"status": "ok", "system_prompt": SYSTEM, "items": []}})
    return job


def page(job) -> str:
    return reverse("admin:validation_jobvalidation_playground", args=[job.pk])


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def direct_replies(tiny_model: Path, adapter: Path, system: str, message: str, max_new_tokens: int) -> tuple[str, str]:
    """What gpu_worker.generation gives for the same conversation, loaded on its own."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpu_worker import generation

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(adapter))
    prompts = generation.prompt_token_ids(tokenizer, [[{"role": "system", "content": system},
                                                      {"role": "user", "content": message}]])
    stop = generation.stop_token_ids(tokenizer, model)
    with generation.evaluation_mode(model):
        with model.disable_adapter():
            base = generation.generate_replies(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                               batch_size=1, stop_ids=stop)[0]["reply"]
        trained = generation.generate_replies(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                              batch_size=1, stop_ids=stop)[0]["reply"]
    return base, trained


def test_a_message_gets_both_replies_as_the_worker_generates_them(staff_client, completed, tiny_model, tiny_adapter):
    response = staff_client.get(page(completed))
    content = response.content.decode()
    assert response.status_code == 200 and 'id="playground-form"' in content
    assert html.escape(SYSTEM) in content  # prefilled with the system prompt the validation used
    assert playground.loaded_model() is None  # nothing is loaded until someone asks

    response = staff_client.post(page(completed), {"message": MESSAGE, "system_prompt": SYSTEM, "max_new_tokens": 12})
    assert response.status_code == 200
    answer = response.context["answer"]
    assert answer is not None, response.context["error"]
    expected_base, expected_trained = direct_replies(tiny_model, tiny_adapter, SYSTEM, MESSAGE, 12)
    assert (answer.base.text, answer.trained.text) == (expected_base, expected_trained)
    assert answer.base.text != answer.trained.text
    content = response.content.decode()
    assert html.escape(answer.base.text) in content and html.escape(answer.trained.text) in content
    assert f"{answer.trained.seconds:.1f} s, {answer.trained.new_tokens} tokens" in content
    assert answer.loaded_now and "this request loaded the model" in content
    # The adapter came from storage into the playground's cache; the model stays loaded.
    assert (Path(playground.cache_root()) / str(completed.pk) / "adapter" / "adapter_config.json").is_file()
    again = staff_client.post(page(completed), {"message": MESSAGE, "system_prompt": SYSTEM, "max_new_tokens": 12})
    assert not again.context["answer"].loaded_now
    assert again.context["answer"].trained.text == expected_trained


def test_a_cleared_system_prompt_sends_none(staff_client, completed, tiny_model, tiny_adapter):
    from gpu_worker import generation

    response = staff_client.post(page(completed), {"message": MESSAGE, "system_prompt": "", "max_new_tokens": 12})
    answer = response.context["answer"]
    tokenizer = playground.loaded_model().tokenizer
    alone = generation.prompt_token_ids(tokenizer, [[{"role": "user", "content": MESSAGE}]])[0]
    assert answer.prompt_tokens == len(alone)


def test_a_model_too_large_for_this_machine_is_refused_with_the_sizes_and_nothing_loaded(
        staff_client, owner, monkeypatch):
    llama = BaseModel.objects.create(slug="llama-3-70b-test", name="Llama 3 70B", model_id="meta-llama/Meta-Llama-3-70B",
                                     parameter_count=70_553_706_496, recommended_gpu="H100_80GB")
    job = make_job(owner, llama)
    monkeypatch.setattr(playground, "free_ram_bytes", lambda: 16 * 10**9)
    monkeypatch.setattr(playground, "free_gpu_bytes", lambda: None)

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be loaded")

    monkeypatch.setattr(playground, "_load", refuse)
    for response in (staff_client.get(page(job)), staff_client.post(page(job), {"message": "hi", "max_new_tokens": 5})):
        content = response.content.decode()
        assert response.status_code == 200
        assert "The playground cannot run this model here" in content
        assert "Llama 3 70B (70.6 billion parameters) cannot run here." in content
        assert "about 141 GB in bf16" in content and "no GPU" in content and "16.0 GB of memory is free" in content
        assert 'id="playground-form"' not in content and response.context["answer"] is None
    assert playground.loaded_model() is None


def test_a_model_that_fits_a_gpu_runs_there(tiny_base, monkeypatch):
    monkeypatch.setattr(playground, "free_gpu_bytes", lambda: 80 * 10**9)
    fit = playground.where_it_runs(tiny_base)
    assert fit.ok and fit.device == "cuda"
    tiny_base.parameter_count = 70_553_706_496
    fit = playground.where_it_runs(tiny_base)
    assert not fit.ok and "the GPU has 80.0 GB free" in fit.message


def test_an_over_long_prompt_is_refused_with_a_message(staff_client, completed, settings):
    settings.VALIDATION_PLAYGROUND_MAX_PROMPT_CHARS = 200
    response = staff_client.post(page(completed), {"message": "money " * 100, "system_prompt": SYSTEM, "max_new_tokens": 12})
    content = response.content.decode()
    assert "Your message is 600 characters; the playground takes at most 200. Shorten it and try again." in content
    assert response.context["answer"] is None and playground.loaded_model() is None
    # Within the characters but over the tokens the model may read with the reply's room.
    settings.VALIDATION_PLAYGROUND_MAX_PROMPT_TOKENS = 20
    response = staff_client.post(page(completed), {"message": "money " * 30, "system_prompt": SYSTEM, "max_new_tokens": 12})
    assert response.context["answer"] is None
    assert "the playground takes at most 20" in response.context["error"]
    assert "Shorten the message or the system prompt." in response.content.decode()


def test_a_job_without_an_adapter_explains(staff_client, owner, tiny_base):
    training = make_job(owner, tiny_base, status=Status.TRAINING)
    content = staff_client.get(page(training)).content.decode()
    assert "No trained adapter to try yet" in content and "there is no trained adapter yet" in content
    assert 'id="playground-form"' not in content
    done = make_job(owner, tiny_base)
    content = staff_client.get(page(done)).content.decode()
    assert "completed, but its adapter is not in storage" in content
    response = staff_client.post(page(done), {"message": "hi", "max_new_tokens": 5})
    assert response.status_code == 200 and response.context["answer"] is None


def test_a_model_that_fails_is_a_message_not_a_500(staff_client, completed, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory while loading")

    monkeypatch.setattr(playground, "_load", broken)
    response = staff_client.post(page(completed), {"message": MESSAGE, "system_prompt": "", "max_new_tokens": 12})
    assert response.status_code == 200
    assert "The models could not answer: RuntimeError: out of memory while loading" in response.content.decode()


def test_only_staff_who_may_see_the_job(completed, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(page(completed)).status_code == 404
    assert client.post(page(completed), {"message": "hi"}).status_code == 404
