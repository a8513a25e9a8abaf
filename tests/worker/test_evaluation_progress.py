"""The evaluators' progress hook (heartbeats' validation_done/validation_total) on the tiny model:
samples counted as both models finish them, and the figures the same as a run without the hook."""

from __future__ import annotations

import math

import pytest
import torch

from gpu_worker.evaluation import EvalContext, assistant_nll, perplexity, run_evaluators


@pytest.fixture(scope="module")
def model_and_samples(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                            init_lora_weights=False))  # random B: trained != base
    samples = [{"input_ids": list(range(3, 3 + n)), "labels": [-100] * 2 + list(range(5, 3 + n))}
               for n in (6, 9, 12)]
    samples.append({"input_ids": [3, 4, 5], "labels": [-100, -100, -100]})  # nothing to score
    return model, samples


def test_progress_counts_each_sample_once_from_zero(model_and_samples):
    model, samples = model_and_samples
    calls: list[tuple[int, int]] = []
    results = run_evaluators(["perplexity"], EvalContext(model, samples), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    measured = {k: v for k, v in results["perplexity"].items() if k not in ("status", "seconds")}
    assert results["perplexity"]["status"] == "ok" and results["perplexity"]["seconds"] >= 0
    assert measured == perplexity(model, samples)  # the hook changes nothing measured


def test_several_evaluators_share_one_count(model_and_samples):
    model, samples = model_and_samples
    calls: list[tuple[int, int]] = []
    run_evaluators(["perplexity", "perplexity"], EvalContext(model, samples), progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 8) and calls[-1] == (8, 8)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_perplexity_is_the_token_weighted_nll_of_each_model(model_and_samples):
    model, samples = model_and_samples
    result = perplexity(model, samples)
    model.eval()
    with model.disable_adapter():
        base_nll, count = assistant_nll(model, samples)
    trained_nll, _ = assistant_nll(model, samples)
    assert count == result["tokens"] == 4 + 7 + 10
    assert result["base"] == pytest.approx(math.exp(base_nll / count), rel=1e-12)
    assert result["trained"] == pytest.approx(math.exp(trained_nll / count), rel=1e-12)
    assert result["base"] != result["trained"]
    # Per-sample sums, for bootstrap intervals: they add up to the totals.
    assert [tokens for _, _, tokens in result["per_sample"]] == [4, 7, 10, 0]
    assert sum(b for b, _, _ in result["per_sample"]) == pytest.approx(base_nll, rel=1e-12)
    assert sum(t for _, t, _ in result["per_sample"]) == pytest.approx(trained_nll, rel=1e-12)
