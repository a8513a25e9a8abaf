"""Evaluators run after training with the model still loaded.

An evaluator is `fn(model, samples) -> dict` where `samples` are tokenised held-out examples
(`{"input_ids": [...], "labels": [...]}`, labels -100 outside assistant turns). Register new ones
in `EVALUATORS`; `config.evaluators` picks them by name and their results go, by name, into the
`validation_results` event and summary.json. `run_evaluators` reports its progress as held-out
samples done of the total (the heartbeats' validation_done/validation_total).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Sample = dict[str, list[int]]
Progress = Callable[[int, int], None]  # (samples done, samples in all)
Evaluator = Callable[[Any, Sequence[Sample], Progress], dict[str, Any]]


def _no_progress(done: int, total: int) -> None:
    return None


def sample_nll(model: Any, sample: Sample) -> tuple[float, int]:
    """One sample's summed next-token NLL over its labelled (assistant) tokens, and their count.

    One sample per forward pass: no padding, and memory stays bounded for long sequences and
    large vocabularies. The LM head projects only the positions whose next token is labelled
    (`logits_to_keep`), so the logits are labelled tokens x vocabulary, not the whole sequence's
    (for SmolLM2's 49,152-token vocabulary, 0.2 GB per 1,000 positions in fp32), and the prompt's
    positions cost no head FLOPs; the scores are the same.
    """
    import torch
    import torch.nn.functional as F

    device = next(p.device for p in model.parameters())
    with torch.inference_mode():
        input_ids = torch.tensor([sample["input_ids"]], device=device)
        labels = torch.tensor(sample["labels"][1:], device=device)
        keep = labels != -100
        if not bool(keep.any()):
            return 0.0, 0
        # Position i predicts token i + 1, which is labels[i] (labels are shifted by one above).
        positions = keep.nonzero().squeeze(-1)
        logits = model(input_ids=input_ids, logits_to_keep=positions).logits[0]
        nll = F.cross_entropy(logits.float(), labels[keep], reduction="sum")
        return float(nll), int(keep.sum())


def assistant_nll(model: Any, samples: Sequence[Sample]) -> tuple[float, int]:
    """Summed next-token NLL over the labelled (assistant) tokens of `samples`, and their count."""
    total, count = 0.0, 0
    for sample in samples:
        nll, tokens = sample_nll(model, sample)
        total += nll
        count += tokens
    return total, count


def perplexity(model: Any, samples: Sequence[Sample], progress: Progress = _no_progress) -> dict[str, Any]:
    """Held-out perplexity (token-weighted mean NLL over assistant tokens, exponentiated) of the
    base model (adapter disabled) and of the trained model; improvement_pct = (base - trained) / base * 100.

    Both models score a sample before the next one starts, so `progress` counts samples whose
    figures are complete; the sums run in sample order either way.
    """
    was_training = model.training
    model.eval()
    base_nll = trained_nll = 0.0
    count = 0
    try:
        for done, sample in enumerate(samples, 1):
            with model.disable_adapter():
                nll, tokens = sample_nll(model, sample)
            base_nll += nll
            count += tokens
            trained_nll += sample_nll(model, sample)[0]
            progress(done, len(samples))
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


def run_evaluators(names: Sequence[str], model: Any, samples: Sequence[Sample],
                   progress: Progress = _no_progress) -> dict[str, Any]:
    """Run the named evaluators in turn; `progress(done, total)` counts held-out samples, each
    evaluator one pass over them (0 of the total first, so the start is visible at once)."""
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {', '.join(unknown)}; known: {', '.join(EVALUATORS)}")
    total = len(names) * len(samples)
    progress(0, total)
    results: dict[str, Any] = {}
    for index, name in enumerate(names):
        offset = index * len(samples)
        results[name] = EVALUATORS[name](model, samples, lambda done, _n, offset=offset: progress(offset + done, total))
    return results
