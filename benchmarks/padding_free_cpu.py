"""Measure LoRA SFT step time on CPU: padded batches vs padding-free vs group_by_length.

    python benchmarks/padding_free_cpu.py [--model PATH] [--steps 6] [--batch 4] [--max-len 256]

Default model: the embedded SmolLM2-135M-Instruct (converted once into the cache). Data: the
sample chat dataset, tokenised exactly as the worker does (loss on assistant tokens only).
Prints, per mode, seconds per optimiser step (median after one warm-up step), non-padding
tokens per second, and the padded tokens per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--data", default=str(REPO / "data/sample/elena_morales_chat.jsonl"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=256)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from gpu_worker import data, model_loading

    path = model_loading.resolve_base_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    report = data.validate_dataset_file(args.data)
    samples = []
    for conv in report.conversations:
        item = data.tokenize_conversation(tokenizer, conv.messages, args.max_len, conv.trainable_turns)
        samples.append({"input_ids": item["input_ids"], "labels": item["labels"]})
    real_tokens = sum(len(s["input_ids"]) for s in samples)
    print(f"{len(samples)} samples, mean length {real_tokens / len(samples):.0f} tokens, torch threads {torch.get_num_threads()}")

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], None

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t0)

    modes = {
        "padded": {"padding_free": False},
        "group_by_length": {"padding_free": False, "train_sampling_strategy": "group_by_length"},
        "padding_free": {"padding_free": True},
    }
    for name, extra in modes.items():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
        model.config.use_cache = False
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"))
        cfg = SFTConfig(output_dir=f"/tmp/bench-{name}", per_device_train_batch_size=args.batch, max_steps=args.steps,
                        max_length=None, dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False,
                        report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no", logging_steps=1000,
                        seed=42, **extra)
        timer = Timer()
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(samples),
                             processing_class=tokenizer, callbacks=[timer])
        loader = trainer.get_train_dataloader()
        shapes = [b["input_ids"].numel() for _, b in zip(range(args.steps), loader, strict=False)]
        trainer.train()
        step = statistics.median(timer.times[1:])
        real_per_step = args.batch * real_tokens / len(samples)
        print(f"{name:16s} {step:6.2f} s/step  {real_per_step / step:7.0f} real tok/s  "
              f"{statistics.mean(shapes):6.0f} tokens computed per step")


if __name__ == "__main__":
    main()
