"""Padding-free batches (TRL `padding_free=True`) learn exactly what padded batches learn.

The samples of a batch are concatenated into one row with per-sample position_ids; transformers
derives a block-diagonal attention mask from the position_ids (sdpa/eager), so no sample attends
to another and no compute goes to padding.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from gpu_worker.data import tokenize_conversation


@pytest.fixture(scope="module")
def model_and_samples(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32)
    model.eval()
    conversations = [
        [{"role": "user", "content": "save money"}, {"role": "assistant", "content": "plan the budget first"}],
        [{"role": "system", "content": "You are Elena."}, {"role": "user", "content": "debt and rent and tax help"},
         {"role": "assistant", "content": "pay the card with the highest interest rate first, then the next one"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}],
    ]
    samples = [tokenize_conversation(tokenizer, c, 512) for c in conversations]
    samples = [{"input_ids": s["input_ids"], "labels": s["labels"]} for s in samples]
    assert len({len(s["input_ids"]) for s in samples}) == 3  # different lengths: real padding
    return model, tokenizer, samples


def per_token_losses(model, batch) -> torch.Tensor:
    """Next-token NLL at every labelled position, in order."""
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits  # as in training (SFTTrainer sets it)
    shift_logits, shift_labels = logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1)
    keep = shift_labels != -100
    return F.cross_entropy(shift_logits[keep], shift_labels[keep], reduction="none")


def test_padding_free_loss_equals_padded_loss_per_token(model_and_samples):
    model, tokenizer, samples = model_and_samples
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(samples)
    packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(samples)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert packed["input_ids"].numel() == sum(len(s["input_ids"]) for s in samples) < padded["input_ids"].numel()

    padded_losses = per_token_losses(model, dict(padded))
    packed_losses = per_token_losses(model, dict(packed))
    assert padded_losses.shape == packed_losses.shape
    torch.testing.assert_close(packed_losses, padded_losses, atol=1e-5, rtol=0)
    assert abs(packed_losses.mean() - padded_losses.mean()) < 1e-5


def test_packed_samples_do_not_attend_to_each_other(model_and_samples):
    model, tokenizer, samples = model_and_samples
    collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    changed = [dict(s) for s in samples]
    changed[0] = {"input_ids": [t if t < 3 else 3 + (t + 7) % 500 for t in samples[0]["input_ids"]],
                  "labels": samples[0]["labels"]}
    first = len(samples[0]["input_ids"])
    with torch.no_grad():
        before = model(**{k: v for k, v in collate(samples).items() if k != "labels"}, use_cache=False).logits[0, first:]
        after = model(**{k: v for k, v in collate(changed).items() if k != "labels"}, use_cache=False).logits[0, first:]
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


@pytest.fixture
def lora_model(model_and_samples):
    """The module's base model with a fresh LoRA adapter, removed again afterwards."""
    from peft import LoraConfig, get_peft_model

    base = model_and_samples[0]
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    yield model
    model.unload()  # leave the module-scoped base model as it was


def sft_trainer(model, tokenizer, samples, output_dir, **config):
    """An SFTTrainer over already-tokenised samples, as the worker builds it."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(output_dir), max_length=None, dataset_kwargs={"skip_prepare_dataset": True},
                     remove_unused_columns=False, report_to="none", use_cpu=True,
                     per_device_train_batch_size=len(samples), **config)
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(samples), processing_class=tokenizer)


def test_the_trainer_loss_is_the_same_padded_or_padding_free(model_and_samples, lora_model, tmp_path):
    """The path training really takes: SFTTrainer.compute_loss (fused LM head, use_cache off)."""
    _, tokenizer, samples = model_and_samples
    losses = {}
    for padding_free in (False, True):
        trainer = sft_trainer(lora_model, tokenizer, samples, tmp_path / str(padding_free), padding_free=padding_free)
        losses[padding_free] = float(trainer.compute_loss(lora_model, trainer.data_collator(samples)))
    assert abs(losses[True] - losses[False]) < 1e-5, losses


def test_scoring_only_labelled_positions_leaves_loss_and_gradients_unchanged(model_and_samples, lora_model,
                                                                               tmp_path, monkeypatch):
    """On CPU the worker makes TRL's fused LM head project only the labelled positions
    (gpu_worker.train._score_only_labelled_positions): fewer rows through the 49k-wide head, the
    same loss and the same gradients."""
    from trl.kernels import chunked_logprob
    from trl.trainer import utils as trl_utils

    from gpu_worker.train import _score_only_labelled_positions

    rows: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)
    monkeypatch.setattr(trl_utils, "_use_triton", chunked_logprob._use_triton)  # TRL as shipped
    _, tokenizer, samples = model_and_samples
    results = {}
    for compact in (False, True):
        if compact:
            _score_only_labelled_positions()
        trainer = sft_trainer(lora_model, tokenizer, samples, tmp_path / str(compact))
        lora_model.zero_grad()
        loss = trainer.compute_loss(lora_model, trainer.data_collator(samples))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in lora_model.named_parameters() if p.grad is not None}
        results[compact] = (float(loss), grads, rows[-1])
    (full_loss, full_grads, full_rows), (compact_loss, compact_grads, compact_rows) = results[False], results[True]
    labelled = sum(sum(1 for x in s["labels"][1:] if x != -100) for s in samples)
    assert compact_rows == labelled < full_rows  # only labelled positions went through the head
    assert abs(compact_loss - full_loss) < 1e-5
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, atol=1e-5, rtol=1e-4)
