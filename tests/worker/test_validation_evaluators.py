"""The validation evaluators (emotional_intelligence, knowledge_retention, brand_voice, and
perplexity beside them) on the tiny model with a random LoRA B, so trained != base: greedy,
batched, capped generation that equals the plain base model's; harness-style multiple-choice
log-likelihoods and reference NLLs that equal direct computations; one evaluator failing without
losing the others; one monotonic progress count; suites missing, partial and malformed."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gpu_worker import generation
from gpu_worker.config import ConfigError, WorkerConfig
from gpu_worker.evaluation import (
    EVALUATORS,
    MCQ_CONTEXT,
    EvalContext,
    Evaluator,
    mcq_accuracy,
    responses,
    run_evaluators,
)
from gpu_worker.validation_suite import (
    SuiteError,
    check_suite,
    dominant_system_prompt,
    load_suite,
    suite_system_prompt,
)

SYSTEM = "You are Elena, a financial planner."
SET = {"version": "1.0", "sha256": "0" * 64}
SUITE = {
    "system_prompt": SYSTEM,
    "emotional_intelligence": {**SET, "name": "ei-test", "items": [
        {"id": "ei-001", "category": "debt_shame", "messages": [{"role": "user", "content": "I feel worried about my debt"}],
         "good_reply": ["names the feeling"], "reference": "It is okay to feel worried. First, list your debt.",
         "needs_referral": False},
        {"id": "ei-002", "category": "job_loss", "messages": [
            {"role": "user", "content": "I lost my income this month"},
            {"role": "assistant", "content": "I am sorry. How much is in your emergency fund?"},
            {"role": "user", "content": "about two thousand and my rent is due next week, what should I pay first"}],
         "good_reply": [], "reference": "Pay the rent first, then we plan the next step.", "needs_referral": False},
        {"id": "ei-003", "category": "crisis", "messages": [{"role": "user", "content": "help"}],
         "good_reply": [], "reference": "Please call someone now.", "needs_referral": True, "referral": "a counsellor"},
    ]},
    "knowledge_retention": {**SET, "name": "kr-test", "items": [
        {"id": "kr-001", "topic": "taxes", "question": "What is a tax?", "options": ["money", "a loan", "a card", "rent"],
         "answer": "A", "explanation": "x"},
        {"id": "kr-002", "topic": "retirement", "question": "When should you save for retirement and why?",
         "options": ["never", "always with a plan", "after the year", "before you pay your rent every month"],
         "answer": "B", "explanation": "x"},
        {"id": "kr-003", "topic": "investing", "question": "Is interest good?", "options": ["yes", "no", "maybe", "ten"],
         "answer": "C", "explanation": "x"},
    ]},
    "brand_voice": {**SET, "name": "bv-test", "characteristics": [
        {"key": "warmth", "name": "Warmth", "description": "d", "anchors": {str(i): "a" for i in range(1, 6)}}],
        "items": [
            {"id": "bv-001", "topic": "budget", "messages": [{"role": "user", "content": "how do I budget"}], "needs_referral": False},
            {"id": "bv-002", "topic": "savings", "messages": [
                {"role": "user", "content": "should I save money in a bank account or pay my credit card debt first"}],
             "needs_referral": False},
        ]},
}
ALL = ["perplexity", "emotional_intelligence", "knowledge_retention", "brand_voice"]


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base.config.use_cache = False  # as the worker loads it
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                           init_lora_weights=False))  # random B: trained != base


@pytest.fixture(scope="module")
def plain_base(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def samples(tiny_tokenizer):
    from gpu_worker import data

    conversations = [[{"role": "user", "content": "save money"}, {"role": "assistant", "content": "pay the debt first"}],
                     [{"role": "user", "content": "my rent"}, {"role": "assistant", "content": "plan the budget"}]]
    out = []
    for messages in conversations:
        item = data.tokenize_conversation(tiny_tokenizer, messages, 256)
        out.append({"input_ids": item["input_ids"], "labels": item["labels"]})
    return out


@pytest.fixture
def ctx(model, tiny_tokenizer, samples):
    def make(**overrides):
        fields = {"model": model, "samples": samples, "tokenizer": tiny_tokenizer, "suite": copy.deepcopy(SUITE),
                  "system_prompt": SYSTEM, "device": "cpu", "batch_size": 3, "max_new_tokens": 8}
        fields.update(overrides)
        return EvalContext(**fields)

    return make


@pytest.fixture(scope="module")
def full_results(model, tiny_tokenizer, samples):
    calls: list[tuple[int, int]] = []
    context = EvalContext(model, samples, tiny_tokenizer, copy.deepcopy(SUITE), SYSTEM, "cpu", 3, 8)
    return run_evaluators(ALL, context, progress=lambda d, t: calls.append((d, t))), calls


def _plain_greedy(model, tokenizer, messages, max_new_tokens, stop_ids):
    """Reply tokens of `model.generate` on one unpadded prompt (the reference behaviour)."""
    ids = generation.prompt_token_ids(tokenizer, [messages])[0]
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids or None,
                         pad_token_id=tokenizer.pad_token_id, use_cache=True)
    return out[0, len(ids):].tolist()


def _chat(messages, system=SYSTEM):
    return ([{"role": "system", "content": system}] if system else []) + messages


# Output


def test_every_evaluator_reports_its_items(full_results):
    results, _ = full_results
    assert list(results) == ALL and all(r["status"] == "ok" and r["seconds"] >= 0 for r in results.values())
    perplexity = results["perplexity"]
    assert perplexity["samples"] == 2 and len(perplexity["per_sample"]) == 2
    assert perplexity["base"] != perplexity["trained"]

    ei = results["emotional_intelligence"]
    assert ei["set"] == {"name": "ei-test", "version": "1.0", "sha256": "0" * 64}
    assert ei["system_prompt"] == SYSTEM
    assert ei["generation"] == {"max_new_tokens": 8, "batch_size": 3, "do_sample": False}
    assert [i["id"] for i in ei["items"]] == ["ei-001", "ei-002", "ei-003"]
    for item in ei["items"]:
        for side in ("base", "trained"):
            got = item[side]
            assert set(got) == {"reply", "new_tokens", "hit_cap", "reference_nll", "reference_tokens"}
            assert isinstance(got["reply"], str) and 0 <= got["new_tokens"] <= 8 and isinstance(got["hit_cap"], bool)
            assert got["reference_nll"] > 0 and got["reference_tokens"] > 0
        assert item["base"]["reference_tokens"] == item["trained"]["reference_tokens"]
    assert any(i["base"]["reply"] != i["trained"]["reply"] for i in ei["items"])
    assert any(i["base"]["reference_nll"] != i["trained"]["reference_nll"] for i in ei["items"])

    bv = results["brand_voice"]
    assert bv["set"]["name"] == "bv-test" and [i["id"] for i in bv["items"]] == ["bv-001", "bv-002"]
    assert all(set(i["base"]) == {"reply", "new_tokens", "hit_cap"} for i in bv["items"])

    kr = results["knowledge_retention"]
    assert kr["set"]["name"] == "kr-test" and [i["answer"] for i in kr["items"]] == ["A", "B", "C"]
    for item in kr["items"]:
        assert len(item["base"]["loglik"]) == len(item["trained"]["loglik"]) == 4
        assert all(x < 0 for x in item["base"]["loglik"] + item["trained"]["loglik"])
        assert item["base"]["chars"] == [len(o) for o in SUITE["knowledge_retention"]["items"][0 if item["id"] == "kr-001" else
                                                                                            1 if item["id"] == "kr-002" else 2]["options"]]
    assert kr["items"][0]["base"]["loglik"] != kr["items"][0]["trained"]["loglik"]
    acc, acc_norm = mcq_accuracy(kr["items"], "base")
    assert 0 <= acc <= 1 and 0 <= acc_norm <= 1
    json.dumps(results, allow_nan=False)  # the event's payload is plain JSON


def test_responses_list_one_line_per_generated_item(full_results):
    results, _ = full_results
    lines = responses(results)
    assert [(line["evaluator"], line["id"]) for line in lines] == [
        ("emotional_intelligence", "ei-001"), ("emotional_intelligence", "ei-002"), ("emotional_intelligence", "ei-003"),
        ("brand_voice", "bv-001"), ("brand_voice", "bv-002")]
    first = results["emotional_intelligence"]["items"][0]
    assert lines[0]["base_reply"] == first["base"]["reply"] and lines[0]["trained_reply"] == first["trained"]["reply"]


def test_progress_is_one_monotonic_count_over_all_evaluators(full_results):
    _, calls = full_results
    total = 2 + 3 * 3 + 2 * 3 + 2 * 2  # samples, EI (two replies + references), KR (two passes), BV (two replies)
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)


# Generation


def test_greedy_replies_are_deterministic_and_the_base_ones_are_the_plain_base_models(ctx, plain_base, tiny_tokenizer):
    context = ctx()
    first = run_evaluators(["emotional_intelligence", "brand_voice"], context)
    again = run_evaluators(["emotional_intelligence", "brand_voice"], context)
    assert first == {k: {**v, "seconds": first[k]["seconds"]} for k, v in again.items()}
    stop_ids = generation.stop_token_ids(tiny_tokenizer, plain_base)
    for key in ("emotional_intelligence", "brand_voice"):
        for item, got in zip(SUITE[key]["items"], first[key]["items"], strict=True):
            tokens = _plain_greedy(plain_base, tiny_tokenizer, _chat(item["messages"]), 8, stop_ids)
            expected, hit_cap = generation.split_reply(tokens, stop_ids, 8)
            assert got["base"]["reply"] == tiny_tokenizer.decode(expected, skip_special_tokens=True).strip()
            assert got["base"]["new_tokens"] == len(expected) and got["base"]["hit_cap"] == hit_cap


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(ctx):
    one = run_evaluators(["emotional_intelligence", "brand_voice"], ctx(batch_size=1, max_new_tokens=12))
    batched = run_evaluators(["emotional_intelligence", "brand_voice"], ctx(batch_size=3, max_new_tokens=12))
    for key in one:
        assert [i["base"] for i in one[key]["items"]] == [i["base"] for i in batched[key]["items"]]
        assert [i["trained"] for i in one[key]["items"]] == [i["trained"] for i in batched[key]["items"]]


def test_the_cap_and_the_stop_tokens_end_replies(ctx, model, tiny_tokenizer):
    capped = run_evaluators(["brand_voice"], ctx(max_new_tokens=3, stop_token_ids=[]))["brand_voice"]["items"]
    assert all(i[side]["new_tokens"] == 3 and i[side]["hit_cap"] for i in capped for side in ("base", "trained"))

    # A stop token the trained model emits as its k-th new token ends that reply before it.
    messages = _chat(SUITE["brand_voice"]["items"][0]["messages"])
    model.eval()
    tokens = _plain_greedy(model, tiny_tokenizer, messages, 10, [])
    k = next(j for j in range(1, len(tokens)) if tokens[j] not in tokens[:j])
    stopped = run_evaluators(["brand_voice"], ctx(max_new_tokens=10, stop_token_ids=[tokens[k]]))
    trained = stopped["brand_voice"]["items"][0]["trained"]
    assert trained["new_tokens"] == k and trained["hit_cap"] is False
    assert trained["reply"] == tiny_tokenizer.decode(tokens[:k], skip_special_tokens=True).strip()


def test_generation_uses_the_kv_cache_and_restores_the_models_mode(ctx, model):
    base = model.get_base_model()
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    base.enable_input_require_grads()  # as build_trainer does with gradient checkpointing
    base.generation_config.temperature, base.generation_config.top_p = 0.7, 0.9  # as Hub models ship
    base.generation_config.do_sample = True
    saved_generation_config = base.generation_config
    widths: list[int] = []
    hook = base.get_input_embeddings().register_forward_hook(lambda m, args, out: widths.append(args[0].shape[1]))
    model.train()
    try:
        result = run_evaluators(["brand_voice"], ctx(max_new_tokens=6, stop_token_ids=[]))
        assert result["brand_voice"]["status"] == "ok"
        # Per batch and model: one prompt pass, then one token per step (the cache holds the rest).
        assert widths.count(1) == 2 * 5 and len(widths) == 2 * 6
        assert model.training and base.config.use_cache is False
        assert base.generation_config is saved_generation_config and base.generation_config.temperature == 0.7
    finally:
        hook.remove()
        base.activation_checkpointing_disable()
        base.disable_input_require_grads()
        base.generation_config.temperature = base.generation_config.top_p = None
        base.generation_config.do_sample = False
        model.eval()
    reference = run_evaluators(["brand_voice"], ctx(max_new_tokens=6, stop_token_ids=[]))
    assert [i["trained"] for i in result["brand_voice"]["items"]] == [i["trained"] for i in reference["brand_voice"]["items"]]


def test_no_sampling_warnings_are_logged(ctx, model):
    """A Hub model ships temperature/top_p in its generation config; greedy decoding must not
    carry them over (transformers would warn that they are ignored)."""
    import logging

    from transformers.utils import logging as hf_logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    library = hf_logging.get_logger("transformers")
    library.addHandler(handler)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    hf_logging.warning_once.cache_clear()  # transformers says each warning once per process
    base = model.get_base_model()
    base.generation_config.temperature, base.generation_config.top_p = 0.2, 0.9
    try:
        run_evaluators(["brand_voice"], ctx(max_new_tokens=2))
    finally:
        base.generation_config.temperature = base.generation_config.top_p = None
        library.removeHandler(handler)
        hf_logging.set_verbosity(level)
    messages = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert not [m for m in messages if "temperature" in m or "top_p" in m or "generation flags" in m], messages


# Scoring


def _direct_loglik(model, context_ids, continuation_ids):
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(context_ids)
    return sum(float(logprobs[start + j - 1, t]) for j, t in enumerate(continuation_ids))


def test_option_logliks_equal_a_direct_computation_whatever_the_batch(ctx, model, tiny_tokenizer):
    one = run_evaluators(["knowledge_retention"], ctx(batch_size=1))["knowledge_retention"]["items"]
    many = run_evaluators(["knowledge_retention"], ctx(batch_size=3))["knowledge_retention"]["items"]
    model.eval()
    for question, a, b in zip(SUITE["knowledge_retention"]["items"], one, many, strict=True):
        context = MCQ_CONTEXT.format(question=question["question"])
        context_ids = tiny_tokenizer(context, add_special_tokens=False)["input_ids"]
        for index, option in enumerate(question["options"]):
            whole = tiny_tokenizer(context + " " + option, add_special_tokens=False)["input_ids"]
            continuation = whole[len(context_ids):]  # the harness's boundary rule
            with model.disable_adapter():
                base = _direct_loglik(model, context_ids, continuation)
            trained = _direct_loglik(model, context_ids, continuation)
            for got in (a, b):
                assert got["base"]["loglik"][index] == pytest.approx(base, abs=1e-4)
                assert got["trained"]["loglik"][index] == pytest.approx(trained, abs=1e-4)


def test_encode_pair_moves_trailing_spaces_into_the_continuation(tiny_tokenizer):
    context, continuation = generation.encode_pair(tiny_tokenizer, "Answer: ", "money")
    assert context == tiny_tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    whole = tiny_tokenizer("Answer: money", add_special_tokens=False)["input_ids"]
    assert context + continuation == whole or continuation == whole[len(context):]


def test_reference_nll_equals_a_direct_computation(ctx, model, tiny_tokenizer):
    import torch.nn.functional as F

    items = run_evaluators(["emotional_intelligence"], ctx())["emotional_intelligence"]["items"]
    model.eval()
    end_of_turn = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    for scenario, got in zip(SUITE["emotional_intelligence"]["items"], items, strict=True):
        prompt = _chat(scenario["messages"])
        prefix = generation.prompt_token_ids(tiny_tokenizer, [prompt])[0]
        text = tiny_tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": scenario["reference"]}],
                                                  tokenize=False)
        full = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert full[:len(prefix)] == prefix
        end = len(full) - full[::-1].index(end_of_turn)  # the reference and its end-of-turn token
        target = torch.tensor(full[len(prefix):end])
        ids = torch.tensor([full[:end]])
        with torch.inference_mode():
            with model.disable_adapter():
                base = float(F.cross_entropy(model(input_ids=ids).logits[0, len(prefix) - 1:end - 1].float(), target, reduction="sum"))
            trained = float(F.cross_entropy(model(input_ids=ids).logits[0, len(prefix) - 1:end - 1].float(), target, reduction="sum"))
        assert got["base"]["reference_tokens"] == got["trained"]["reference_tokens"] == len(target)
        assert got["base"]["reference_nll"] == pytest.approx(base, rel=1e-5)
        assert got["trained"]["reference_nll"] == pytest.approx(trained, rel=1e-5)


def test_bf16_autocast_runs_every_evaluator(ctx):
    results = run_evaluators(ALL, ctx(bf16=True, max_new_tokens=2))
    assert all(r["status"] == "ok" for r in results.values()), results


# Failures and skips


def test_a_failing_evaluator_loses_nothing_else(ctx, monkeypatch):
    def boom(context, progress):
        progress(2)
        raise RuntimeError("the judge fell over " + "x" * 1000)

    monkeypatch.setitem(EVALUATORS, "boom", Evaluator(boom, lambda context: 5))
    calls: list[tuple[int, int]] = []
    results = run_evaluators(["perplexity", "boom", "knowledge_retention"], ctx(), lambda d, t: calls.append((d, t)))
    assert results["perplexity"]["status"] == "ok" and results["knowledge_retention"]["status"] == "ok"
    assert results["boom"]["status"] == "error" and results["boom"]["error_type"] == "RuntimeError"
    assert results["boom"]["message"].startswith("the judge fell over") and len(results["boom"]["message"]) == 500
    total = 2 + 5 + 6
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_evaluators_without_their_set_are_skipped(ctx):
    calls: list[tuple[int, int]] = []
    results = run_evaluators(ALL, ctx(suite=None), lambda d, t: calls.append((d, t)))
    assert results["perplexity"]["status"] == "ok"
    for name in ALL[1:]:
        assert results[name]["status"] == "skipped" and "validation_suite" in results[name]["reason"]
    assert calls[0] == (0, 2) and calls[-1] == (2, 2)

    partial = copy.deepcopy(SUITE)
    del partial["brand_voice"]
    results = run_evaluators(["brand_voice", "knowledge_retention"], ctx(suite=partial))
    assert results["brand_voice"] == {"status": "skipped", "reason": "the validation suite has no brand_voice set",
                                      "seconds": 0.0}
    assert results["knowledge_retention"]["status"] == "ok"
    assert run_evaluators(["perplexity"], ctx(samples=[]))["perplexity"]["status"] == "skipped"


# The suite and the system prompt


def test_the_dominant_system_prompt_is_the_one_at_least_half_carry():
    def conv(system=None):
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "hi"}]

    assert dominant_system_prompt([conv("A"), conv("A"), conv("B"), conv()]) == "A"  # 2 of 4
    assert dominant_system_prompt([conv("A"), conv("B"), conv("C"), conv()]) is None  # all have one, none dominant
    assert dominant_system_prompt([conv("A"), conv(), conv()]) is None  # 1 of 3
    assert dominant_system_prompt([conv(), conv()]) is None and dominant_system_prompt([]) is None
    assert suite_system_prompt({"system_prompt": None}, [conv("A")]) == "A"
    assert suite_system_prompt({"system_prompt": "S"}, [conv("A")]) == "S"
    assert suite_system_prompt({"system_prompt": ""}, [conv("A")]) is None  # "" asks for none
    assert suite_system_prompt({}, [conv("A"), conv()]) == "A"


def test_the_system_prompt_goes_before_every_prompt(ctx, plain_base, tiny_tokenizer):
    got = run_evaluators(["brand_voice"], ctx(system_prompt=None))["brand_voice"]
    assert got["system_prompt"] is None
    stop_ids = generation.stop_token_ids(tiny_tokenizer, plain_base)
    for item, result in zip(SUITE["brand_voice"]["items"], got["items"], strict=True):
        tokens = _plain_greedy(plain_base, tiny_tokenizer, item["messages"], 8, stop_ids)
        reply, _ = generation.split_reply(tokens, stop_ids, 8)
        assert result["base"]["reply"] == tiny_tokenizer.decode(reply, skip_special_tokens=True).strip()


def test_a_malformed_suite_names_the_field(tmp_path):
    bad = copy.deepcopy(SUITE)
    bad["knowledge_retention"]["items"][1]["answer"] = "E"
    bad["emotional_intelligence"]["items"][0]["messages"].append({"role": "assistant", "content": "hi"})
    bad["brand_voice"]["items"][1]["id"] = "bv-001"
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(bad))
    config = WorkerConfig.from_dict({"job_id": "j", "dataset": "d.jsonl", "validation_suite": str(path),
                                     "output_dir": str(tmp_path / "out")})
    with pytest.raises(ConfigError) as raised:
        load_suite(config.validation_suite)
    message = str(raised.value)
    assert message.splitlines()[0] == ("validation_suite: emotional_intelligence.items[0].messages: must end with a "
                                       "user turn (the reply is the model's) (and 2 more problems)")
    assert "knowledge_retention.items[1].answer: must be one of A, B, C, D (got 'E')" in message
    assert "brand_voice.items[1].id: 'bv-001' is used by an earlier item" in message

    # The job stops in preprocessing with it, classified as a configuration error.
    from gpu_worker.errors import classify_error
    from gpu_worker.train import _Job

    job = _Job(config, tmp_path / "out", None, None, None, None)
    with pytest.raises(SuiteError) as raised:
        job.load_validation_suite([])
    classified = classify_error(raised.value)
    assert classified.error_type == "configuration" and "emotional_intelligence.items[0].messages" in classified.message

    path.write_text("{not json")
    with pytest.raises(SuiteError, match=r"invalid JSON at line 1, column 2"):
        load_suite(path)
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite(tmp_path / "missing.json")
    with pytest.raises(SuiteError, match=r"brand_vioce: unknown key"):
        check_suite({"brand_vioce": SUITE["brand_voice"]})
    with pytest.raises(SuiteError, match=r"knowledge_retention.items: must be a non-empty list"):
        check_suite({"knowledge_retention": {**SET, "name": "n", "items": []}})
    check_suite(SUITE)  # the good one passes
    check_suite({})  # every set may be absent


def test_config_checks_the_validation_fields():
    base = {"job_id": "j", "dataset": "d.jsonl"}
    assert WorkerConfig.from_dict(base).evaluators == ALL
    for field, value in (("validation_max_new_tokens", 0), ("validation_batch_size", 0), ("validation_suite", ""),
                         ("validation_batch_size", True), ("evaluators", "perplexity")):
        with pytest.raises(ConfigError, match=field):
            WorkerConfig.from_dict({**base, field: value})


# The whole worker


def test_the_worker_runs_the_suite_and_uploads_the_replies(tmp_path, job_config, receiver):
    from tests.worker.conftest import run_worker

    suite = copy.deepcopy(SUITE)
    suite["system_prompt"] = None  # the data's dominant one: write_chat_dataset gives every record SYSTEM
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    config = job_config(max_steps=2, checkpoint_interval=0, eval_interval=0, validation_suite=str(tmp_path / "suite.json"),
                        validation_max_new_tokens=4, webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == 0, result.stderr
    events = receiver.events
    reported = next(e for e in events if e["type"] == "validation_results")["data"]["evaluators"]
    assert [i["id"] for i in reported["knowledge_retention"]["items"]] == ["kr-001", "kr-002", "kr-003"]
    assert all(i["trained"]["new_tokens"] <= 4 for i in reported["brand_voice"]["items"])
    total = 8 + 3 * 3 + 2 * 3 + 2 * 2  # 8 held-out samples
    progress = [(e["data"]["validation_done"], e["data"]["validation_total"]) for e in events
                if e["type"] == "heartbeat" and e["data"]["validation_total"] is not None]
    assert progress[0] == (0, total) and all(t == total for _, t in progress)
    out, store = tmp_path / "out", tmp_path / "store"
    summary = json.loads((store / "reports" / "summary.json").read_text())
    validation = summary["validation"]
    assert {name: r["status"] for name, r in validation.items()} == dict.fromkeys(ALL, "ok")
    assert validation["emotional_intelligence"]["system_prompt"] == SYSTEM
    assert "items" not in validation["brand_voice"] and "per_sample" in validation["perplexity"]
    assert summary["validation_responses"] == "reports/validation_responses.jsonl"
    lines = [json.loads(line) for line in (store / "reports" / "validation_responses.jsonl").read_text().splitlines()]
    assert [(line["evaluator"], line["id"]) for line in lines] == [
        ("emotional_intelligence", i["id"]) for i in SUITE["emotional_intelligence"]["items"]] + [
        ("brand_voice", i["id"]) for i in SUITE["brand_voice"]["items"]]
    assert (out / "validation_responses.jsonl").read_text() == (store / "reports" / "validation_responses.jsonl").read_text()
    assert lines[0]["trained_reply"] == reported["emotional_intelligence"]["items"][0]["trained"]["reply"]
    assert {k: v for k, v in reported["brand_voice"].items() if k != "items"} == validation["brand_voice"]


def test_option_scoring_splits_passes_at_the_logits_budget(model, tiny_tokenizer):
    requests = [generation.encode_pair(tiny_tokenizer, MCQ_CONTEXT.format(question=q["question"]), " " + option)
                for q in SUITE["knowledge_retention"]["items"] for option in q["options"]]
    model.eval()
    whole = generation.continuation_logliks(model, requests, tiny_tokenizer.pad_token_id)
    for budget in (1, 7):  # one request per pass; a few per pass
        split = generation.continuation_logliks(model, requests, tiny_tokenizer.pad_token_id, max_positions=budget)
        assert split == pytest.approx(whole, abs=1e-4)
