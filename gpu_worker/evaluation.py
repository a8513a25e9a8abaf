"""Evaluators run after training with the model still loaded.

An evaluator is `fn(model, samples) -> dict` where `samples` are tokenised held-out examples
(`{"input_ids": [...], "labels": [...]}`, labels -100 outside assistant turns). Register new ones
in `EVALUATORS`; `config.evaluators` picks them by name and their results go, by name, into the
`validation_results` event and summary.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Sample = dict[str, list[int]]
Evaluator = Callable[[Any, Sequence[Sample]], dict[str, Any]]


def assistant_nll(model: Any, samples: Sequence[Sample]) -> tuple[float, int]:
    """Summed next-token NLL over the labelled (assistant) tokens, and how many there were.

    One sample per forward pass: no padding, and memory stays bounded for long sequences and
    large vocabularies.
    """
    import torch
    import torch.nn.functional as F

    device = next(p.device for p in model.parameters())
    total, count = 0.0, 0
    with torch.inference_mode():
        for sample in samples:
            input_ids = torch.tensor([sample["input_ids"]], device=device)
            labels = torch.tensor(sample["labels"][1:], device=device)
            keep = labels != -100
            if not bool(keep.any()):
                continue
            logits = model(input_ids=input_ids).logits[0, :-1]
            nll = F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
            total += float(nll)
            count += int(keep.sum())
    return total, count


def perplexity(model: Any, samples: Sequence[Sample]) -> dict[str, Any]:
    """Held-out perplexity (token-weighted mean NLL over assistant tokens, exponentiated) of the
    base model (adapter disabled) and of the trained model; improvement_pct = (base - trained) / base * 100."""
    was_training = model.training
    model.eval()
    try:
        with model.disable_adapter():
            base_nll, count = assistant_nll(model, samples)
        trained_nll, _ = assistant_nll(model, samples)
    finally:
        model.train(was_training)
    if count == 0:
        return {"base": None, "trained": None, "improvement_pct": None, "samples": len(samples), "tokens": 0}
    base = math.exp(base_nll / count)
    trained = math.exp(trained_nll / count)
    return {
        "base": base,
        "trained": trained,
        "improvement_pct": (base - trained) / base * 100.0,
        "samples": len(samples),
        "tokens": count,
    }


EVALUATORS: dict[str, Evaluator] = {"perplexity": perplexity}


def run_evaluators(names: Sequence[str], model: Any, samples: Sequence[Sample]) -> dict[str, Any]:
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {', '.join(unknown)}; known: {', '.join(EVALUATORS)}")
    return {name: EVALUATORS[name](model, samples) for name in names}
