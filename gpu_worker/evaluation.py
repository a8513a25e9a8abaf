"""Evaluators run after training with the model still loaded (docs/worker-contract.md,
"validation_results").

An evaluator is an `Evaluator(run, units, skip)` in `EVALUATORS`; `config.evaluators` picks them
by name and their results go, by name, into the `validation_results` event and summary.json.
Each gets an `EvalContext` (the PEFT model, its tokenizer, the tokenised held-out samples, the
validation suite, the system prompt, device, batch size, max new tokens) and a progress hook:

- `skip(ctx)` gives a reason not to run (no suite, no such set, no held-out samples) or None;
- `units(ctx)` says how many progress units it has, so `run_evaluators` reports one
  monotonic (done, total) over all of them (the heartbeats' validation_done/validation_total);
- `run(ctx, progress)` returns its result dict and calls `progress(done)` with its own units done.

Every result carries "status" ("ok" | "skipped" | "error") and "seconds". An evaluator that
raises an Exception is recorded as {"status": "error", "error_type", "message"} and the others
still run (after a CUDA out-of-memory error the allocator's cache is emptied first). Base
figures are the model inside `model.disable_adapter()`, trained ones the model as trained.
Under bf16 training (the placement's autocast) the evaluators run under the same autocast.
"""

from __future__ import annotations

import gc
import math
import string
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from gpu_worker import generation

Sample = dict[str, list[int]]
Progress = Callable[[int, int], None]  # (units done, units in all)
UnitProgress = Callable[[int], None]  # an evaluator's own units done
MAX_ERROR_MESSAGE_CHARS = 500
# The multiple-choice prompt (lm-evaluation-harness's MMLU-style "Question/Answer" format).
MCQ_CONTEXT = "Question: {question}\nAnswer:"
MCQ_CONTINUATION = " {option}"
# No truncation of a reference conversation (they are a few hundred tokens).
_NO_TRUNCATION = 1 << 30


def _no_progress(done: int, total: int) -> None:
    return None


@dataclass
class EvalContext:
    """What every evaluator may use. `batch_size` None means GENERATION_BATCH_SIZE[device];
    `stop_token_ids` None means generation.stop_token_ids(tokenizer, model)."""

    model: Any
    samples: Sequence[Sample] = ()
    tokenizer: Any = None
    suite: dict[str, Any] | None = None
    system_prompt: str | None = None
    device: str = "cpu"
    batch_size: int | None = None
    max_new_tokens: int = 192
    bf16: bool = False
    stop_token_ids: Sequence[int] | None = None

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or GENERATION_BATCH_SIZE.get(self.device, 8)

    def stop_ids(self) -> list[int]:
        if self.stop_token_ids is not None:
            return list(self.stop_token_ids)
        return generation.stop_token_ids(self.tokenizer, self.model)

    def chat(self, messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        """The conversation a prompt is rendered from: the system prompt (if any), then the turns."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": m["role"], "content": m["content"]} for m in messages]


# On 2 CPU cores, 32 of the emotional-intelligence prompts x 192 new tokens on SmolLM2-135M with a
# LoRA r16: 114.6 s at batch 8, 83.0 s at batch 32 (2026-12-07, fp32, quiet machine): decoding
# one token costs less per row in a wider batch. CUDA's 16 is not yet measured against others.
GENERATION_BATCH_SIZE = {"cpu": 32, "cuda": 16}


@dataclass(frozen=True)
class Evaluator:
    run: Callable[[EvalContext, UnitProgress], dict[str, Any]]
    units: Callable[[EvalContext], int]
    skip: Callable[[EvalContext], str | None] = lambda ctx: None


# Scoring held-out samples


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

    device = generation.model_device(model)
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
    `per_sample` lists [base NLL sum, trained NLL sum, tokens] per sample, in sample order (for
    bootstrap intervals).

    Both models score a sample before the next one starts, so `progress` counts samples whose
    figures are complete; the sums run in sample order either way.
    """
    was_training = model.training
    model.eval()
    base_nll = trained_nll = 0.0
    count = 0
    per_sample: list[list[float | int]] = []
    try:
        for done, sample in enumerate(samples, 1):
            with model.disable_adapter():
                nll, tokens = sample_nll(model, sample)
            trained = sample_nll(model, sample)[0]
            base_nll += nll
            trained_nll += trained
            count += tokens
            per_sample.append([nll, trained, tokens])
            progress(done, len(samples))
    finally:
        model.train(was_training)
    if count == 0:
        return {"base": None, "trained": None, "improvement_pct": None, "samples": len(samples), "tokens": 0,
                "per_sample": per_sample}
    base = math.exp(base_nll / count)
    trained = math.exp(trained_nll / count)
    return {
        "base": base,
        "trained": trained,
        "improvement_pct": (base - trained) / base * 100.0,
        "samples": len(samples),
        "tokens": count,
        "per_sample": per_sample,
    }


def _perplexity(ctx: EvalContext, progress: UnitProgress) -> dict[str, Any]:
    return perplexity(ctx.model, ctx.samples, lambda done, _total: progress(done))


def _perplexity_skip(ctx: EvalContext) -> str | None:
    return None if ctx.samples else "no held-out samples to score"


# The suite's sets


def _set_skip(key: str) -> Callable[[EvalContext], str | None]:
    def skip(ctx: EvalContext) -> str | None:
        if ctx.suite is None:
            return "no validation_suite in the configuration"
        if not isinstance(ctx.suite.get(key), dict):
            return f"the validation suite has no {key} set"
        if ctx.tokenizer is None:
            return "no tokenizer"
        return None

    return skip


def _set_info(ctx: EvalContext, key: str) -> dict[str, Any]:
    benchmark = ctx.suite[key]  # type: ignore[index]
    return {"name": benchmark.get("name"), "version": benchmark.get("version"), "sha256": benchmark.get("sha256")}


def _items(ctx: EvalContext, key: str) -> list[dict[str, Any]]:
    return list(ctx.suite[key]["items"])  # type: ignore[index]


def _generation_info(ctx: EvalContext) -> dict[str, Any]:
    return {"max_new_tokens": ctx.max_new_tokens, "batch_size": ctx.effective_batch_size, "do_sample": False}


def _replies(ctx: EvalContext, items: Sequence[dict[str, Any]],
             progress: UnitProgress) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(base replies, trained replies) to the items' messages: one unit per item and model."""
    prompts = generation.prompt_token_ids(ctx.tokenizer, [ctx.chat(item["messages"]) for item in items])
    stop_ids = ctx.stop_ids()
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        progress(done)

    def replies() -> list[dict[str, Any]]:
        return generation.generate_replies(ctx.model, ctx.tokenizer, prompts, max_new_tokens=ctx.max_new_tokens,
                                           batch_size=ctx.effective_batch_size, stop_ids=stop_ids, on_batch=step)

    with ctx.model.disable_adapter():
        base = replies()
    return base, replies()


def reference_sample(ctx: EvalContext, item: dict[str, Any]) -> Sample:
    """The scenario with its reference reply as the assistant turn after the messages, tokenised
    as training data is: labels on the reference's tokens and its end-of-turn token only."""
    from gpu_worker import data

    messages = [*ctx.chat(item["messages"]), {"role": "assistant", "content": item["reference"]}]
    encoded = data.tokenize_conversation(ctx.tokenizer, messages, _NO_TRUNCATION, [len(messages) - 1])
    return {"input_ids": encoded["input_ids"], "labels": encoded["labels"]}


def emotional_intelligence(ctx: EvalContext, progress: UnitProgress) -> dict[str, Any]:
    """Base and trained replies to every scenario, and the reference reply's summed NLL and
    token count under each model (3 units per scenario: base reply, trained reply, references)."""
    items = _items(ctx, "emotional_intelligence")
    base, trained = _replies(ctx, items, progress)
    done = 2 * len(items)
    for index, item in enumerate(items):
        sample = reference_sample(ctx, item)
        with ctx.model.disable_adapter():
            base_nll, tokens = sample_nll(ctx.model, sample)
        trained_nll, _ = sample_nll(ctx.model, sample)
        base[index].update(reference_nll=base_nll, reference_tokens=tokens)
        trained[index].update(reference_nll=trained_nll, reference_tokens=tokens)
        progress(done + index + 1)
    return {
        "set": _set_info(ctx, "emotional_intelligence"),
        "system_prompt": ctx.system_prompt,
        "generation": _generation_info(ctx),
        "items": [{"id": item["id"], "base": b, "trained": t} for item, b, t in zip(items, base, trained, strict=True)],
    }


def brand_voice(ctx: EvalContext, progress: UnitProgress) -> dict[str, Any]:
    """Base and trained replies to every brand-voice prompt (2 units per prompt)."""
    items = _items(ctx, "brand_voice")
    base, trained = _replies(ctx, items, progress)
    return {
        "set": _set_info(ctx, "brand_voice"),
        "system_prompt": ctx.system_prompt,
        "generation": _generation_info(ctx),
        "items": [{"id": item["id"], "base": b, "trained": t} for item, b, t in zip(items, base, trained, strict=True)],
    }


def mcq_requests(tokenizer: Any, item: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    """(context tokens, continuation tokens) for each option of a question."""
    context = MCQ_CONTEXT.format(question=item["question"])
    return [generation.encode_pair(tokenizer, context, MCQ_CONTINUATION.format(option=option))
            for option in item["options"]]


def knowledge_retention(ctx: EvalContext, progress: UnitProgress) -> dict[str, Any]:
    """Each option's summed log-likelihood as the continuation of the question, base and trained
    (lm-evaluation-harness multiple choice; acc = argmax loglik, acc_norm = argmax loglik / chars).
    A batch holds all options of `effective_batch_size` questions, longest first; 2 units per
    question (base pass, trained pass)."""
    items = _items(ctx, "knowledge_retention")
    requests = [mcq_requests(ctx.tokenizer, item) for item in items]
    order = sorted(range(len(items)), key=lambda i: (-max(len(c) + len(t) for c, t in requests[i]), i))
    size = ctx.effective_batch_size
    pad_id = ctx.tokenizer.pad_token_id if ctx.tokenizer.pad_token_id is not None else 0
    scores: dict[str, list[list[float]]] = {}
    done = 0
    for name in ("base", "trained"):
        found: list[list[float]] = [[] for _ in items]
        adapter_off = ctx.model.disable_adapter() if name == "base" else nullcontext()
        with adapter_off:
            for start in range(0, len(order), size):
                chunk = order[start:start + size]
                flat = [request for i in chunk for request in requests[i]]
                logliks = generation.continuation_logliks(ctx.model, flat, pad_id)
                at = 0
                for i in chunk:
                    found[i] = logliks[at:at + len(requests[i])]
                    at += len(requests[i])
                done += len(chunk)
                progress(done)
        scores[name] = found
    out = []
    for index, item in enumerate(items):
        chars = [len(option) for option in item["options"]]
        out.append({"id": item["id"], "answer": item["answer"],
                    "base": {"loglik": scores["base"][index], "chars": chars},
                    "trained": {"loglik": scores["trained"][index], "chars": list(chars)}})
    return {"set": _set_info(ctx, "knowledge_retention"), "items": out}


def mcq_accuracy(items: Sequence[dict[str, Any]], model: str = "trained") -> tuple[float, float]:
    """(acc, acc_norm) of knowledge_retention items of one model, as the harness computes them
    (a reference for tests and scripts; the control plane computes its own)."""
    if not items:
        return 0.0, 0.0
    acc = norm = 0
    for item in items:
        answer = string.ascii_uppercase.index(item["answer"])
        logliks, chars = item[model]["loglik"], item[model]["chars"]
        acc += max(range(len(logliks)), key=lambda i: logliks[i]) == answer
        norm += max(range(len(logliks)), key=lambda i: logliks[i] / max(chars[i], 1)) == answer
    return acc / len(items), norm / len(items)


EVALUATORS: dict[str, Evaluator] = {
    "perplexity": Evaluator(_perplexity, lambda ctx: len(ctx.samples), _perplexity_skip),
    "emotional_intelligence": Evaluator(emotional_intelligence,
                                        lambda ctx: 3 * len(_items(ctx, "emotional_intelligence")),
                                        _set_skip("emotional_intelligence")),
    "knowledge_retention": Evaluator(knowledge_retention, lambda ctx: 2 * len(_items(ctx, "knowledge_retention")),
                                     _set_skip("knowledge_retention")),
    "brand_voice": Evaluator(brand_voice, lambda ctx: 2 * len(_items(ctx, "brand_voice")), _set_skip("brand_voice")),
}


def _autocast(ctx: EvalContext) -> Any:
    if not ctx.bf16:
        return nullcontext()
    import torch

    return torch.autocast(device_type=ctx.device, dtype=torch.bfloat16)


def _free_memory_after(exc: BaseException) -> None:
    gc.collect()
    if type(exc).__name__ == "OutOfMemoryError":
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_evaluators(names: Sequence[str], ctx: EvalContext, progress: Progress = _no_progress) -> dict[str, Any]:
    """Run the named evaluators in turn and return their results by name.

    `progress(done, total)` counts units over all of them, from (0, total) (so the start is
    visible at once) to (total, total), never backwards; a skipped evaluator has none, a failed
    one's remaining units are counted done when it fails.
    """
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {', '.join(unknown)}; known: {', '.join(EVALUATORS)}")
    plan: list[tuple[str, str | None, int]] = []
    for name in names:
        evaluator = EVALUATORS[name]
        reason = evaluator.skip(ctx)
        plan.append((name, reason, 0 if reason is not None else max(int(evaluator.units(ctx)), 0)))
    total = sum(units for _, _, units in plan)
    progress(0, total)
    results: dict[str, Any] = {}
    offset = 0
    for name, reason, units in plan:
        started = time.monotonic()
        if reason is not None:
            results[name] = {"status": "skipped", "reason": reason, "seconds": 0.0}
            continue
        reached = 0

        def own(done: int, offset: int = offset, units: int = units) -> None:
            nonlocal reached
            done = min(max(int(done), reached), units)
            if done != reached:
                reached = done
                progress(offset + done, total)

        try:
            with generation.evaluation_mode(ctx.model), _autocast(ctx):
                result = EVALUATORS[name].run(ctx, own)
            result = {"status": "ok", **result}
        except Exception as exc:  # noqa: BLE001 - one evaluator failing must not lose the others
            _free_memory_after(exc)
            result = {"status": "error", "error_type": type(exc).__name__,
                      "message": str(exc)[:MAX_ERROR_MESSAGE_CHARS]}
        own(units)
        result["seconds"] = round(time.monotonic() - started, 3)
        results[name] = result
        offset += units
    return results


def responses(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies in `results`, one line per item of each generating evaluator, for
    validation_responses.jsonl: {"evaluator", "id", "base_reply", "trained_reply"}."""
    lines = []
    for name, result in results.items():
        if not isinstance(result, dict) or result.get("status") != "ok":
            continue
        for item in result.get("items") or []:
            base, trained = item.get("base") or {}, item.get("trained") or {}
            if "reply" in base or "reply" in trained:
                lines.append({"evaluator": name, "id": item.get("id"),
                              "base_reply": base.get("reply"), "trained_reply": trained.get("reply")})
    return lines
