"""Deterministic batched generation and multiple-choice log-likelihoods, for the evaluators.

Generation is greedy (`do_sample=False`, one beam): the same model and prompt give the same
reply on every run, and batching changes nothing but speed. Prompts are sorted by length and
batched with LEFT padding (the attention mask hides the pads and positions count from each
row's first real token), so a row's reply is the one it gets alone. Each reply stops at the
first stop token (the tokenizer's eos, ChatML's `<|im_end|>`, the model's generation-config eos)
or at `max_new_tokens`.

Multiple choice is scored as lm-evaluation-harness scores `multiple_choice` tasks: for a context
and a continuation, tokenise the context and context + continuation; the continuation's tokens
are the whole's tail after as many tokens as the context has (so a BPE merge across the
boundary is resolved as the harness resolves it); the model reads context tokens + continuation
tokens minus the last, and the score is the summed log-probability of the continuation tokens.
Trailing spaces of the context move to the continuation first, as in the harness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def _base_model(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_device(model: Any) -> Any:
    return next(p.device for p in model.parameters())


@contextmanager
def evaluation_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout; gradient checkpointing off, since transformers applies it only in
    training mode) and the KV cache on, whatever training left (the worker loads models with
    `use_cache=False`); the model's training mode and config are put back afterwards."""
    base = _base_model(model)
    was_training = model.training
    use_cache = getattr(base.config, "use_cache", None)
    model.eval()
    base.config.use_cache = True
    try:
        yield
    finally:
        base.config.use_cache = use_cache
        model.train(was_training)


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Token ids that end a reply: the tokenizer's eos, the end-of-turn tokens of the common chat
    templates that the vocabulary has, and the eos ids of the model's generation config."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids += [int(vocab[token]) for token in END_OF_TURN_TOKENS if token in vocab]
    generation_config = getattr(_base_model(model), "generation_config", None) if model is not None else None
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.append(configured)
    elif isinstance(configured, list | tuple):
        ids += [int(i) for i in configured if isinstance(i, int)]
    return list(dict.fromkeys(ids))


def prompt_token_ids(tokenizer: Any, conversations: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """The chat template of each conversation with the assistant's generation prompt, tokenised
    (rendered to text, then tokenised without special tokens, as apply_chat_template does)."""
    if not conversations:
        return []
    texts = [tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
             for messages in conversations]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _pad_id(tokenizer: Any, stop_ids: Sequence[int]) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(stop_ids[0]) if stop_ids else 0


def _left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """(input_ids, attention_mask, position_ids) of rows padded on the left to the longest."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            input_ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
            mask[i, width - len(row):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), mask.to(device), positions.to(device)


def split_reply(tokens: Sequence[int], stop_ids: Sequence[int], max_new_tokens: int) -> tuple[list[int], bool]:
    """(the reply's tokens before the first stop token, whether the cap ended it without one)."""
    stops = set(stop_ids)
    for index, token in enumerate(tokens):
        if token in stops:
            return list(tokens[:index]), False
    return list(tokens[:max_new_tokens]), True


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_ids: Sequence[int],
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Greedy replies to tokenised prompts, in the prompts' order:
    [{"reply": str, "new_tokens": int, "hit_cap": bool}, ...].

    `new_tokens` counts the reply's tokens (the stop token not included); `hit_cap` is true when
    generation stopped at `max_new_tokens` with no stop token. `on_batch(n)` is called after each
    batch with the number of prompts it held. Call inside `evaluation_mode(model)`.
    """
    import torch
    from transformers import GenerationConfig

    if not prompts:
        return []
    device = model_device(model)
    pad_id = _pad_id(tokenizer, stop_ids)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
        eos_token_id=list(stop_ids) or None, pad_token_id=pad_id,
    )
    base = _base_model(model)
    # generate() fills every field left unset in `config` from the model's own generation config
    # (a Hub model's temperature/top_p, which greedy decoding would warn about): a plain one
    # stands in for it meanwhile.
    saved = getattr(base, "generation_config", None)
    base.generation_config = GenerationConfig()
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            input_ids, mask, _ = _left_padded([prompts[i] for i in chunk], pad_id, device)
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
            new = out[:, input_ids.shape[1]:].tolist()
            for row, index in enumerate(chunk):
                tokens, hit_cap = split_reply(new[row], stop_ids, max_new_tokens)
                results[index] = {
                    "reply": tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                    "new_tokens": len(tokens),
                    "hit_cap": hit_cap,
                }
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        base.generation_config = saved
    return results  # type: ignore[return-value]


# Multiple choice


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) as lm-evaluation-harness's `_encode_pair`."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return list(context_ids), list(whole[len(context_ids):])


# Rows x scored positions one multiple-choice forward pass may project onto the vocabulary
# (logits of 1,024 positions: 0.2 GB in fp32 for SmolLM2's 49,152 tokens, 0.5 GB for Llama 3's).
MAX_SCORED_POSITIONS = 1024


def continuation_logliks(model: Any, requests: Sequence[tuple[Sequence[int], Sequence[int]]],
                         pad_id: int, max_positions: int = MAX_SCORED_POSITIONS) -> list[float]:
    """Summed log-probability of each request's continuation tokens given its context tokens.

    Requests are scored together in left-padded forward passes (the continuations end every
    row, so the LM head projects only the last max-continuation positions), as many per pass as
    keep rows x positions within `max_positions` (at least one).
    """
    scores: list[float] = []
    start = 0
    while start < len(requests):
        end, keep = start, 0
        while end < len(requests):
            wanted = max(keep, len(requests[end][1]))
            if end > start and (end - start + 1) * wanted > max_positions:
                break
            keep, end = wanted, end + 1
        scores += _continuation_logliks(model, requests[start:end], pad_id)
        start = end
    return scores


def _continuation_logliks(model: Any, requests: Sequence[tuple[Sequence[int], Sequence[int]]],
                          pad_id: int) -> list[float]:
    import torch

    if not requests:
        return []
    rows = [list(context) + list(continuation[:-1]) if continuation else list(context)
            for context, continuation in requests]
    keep = max(len(continuation) for _, continuation in requests)
    if keep == 0:
        return [0.0] * len(requests)
    input_ids, mask, positions = _left_padded(rows, pad_id, model_device(model))
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       logits_to_keep=keep).logits
        scores = []
        for row, (_, continuation) in enumerate(requests):
            n = len(continuation)
            if n == 0:
                scores.append(0.0)
                continue
            logprobs = torch.log_softmax(logits[row, keep - n:].float(), dim=-1)
            target = torch.tensor(list(continuation), device=logprobs.device).unsqueeze(-1)
            scores.append(float(logprobs.gather(-1, target).sum()))
    return scores
