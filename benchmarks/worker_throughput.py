"""gpu_worker vs a plain TRL SFTTrainer script: effective (non-padding) tokens/s, held-out loss,
and the cost of reporting + checkpointing. One invocation, variants interleaved, medians.

    python benchmarks/worker_throughput.py                 # 3 reps x 4 steps (see runtime below)
    python benchmarks/worker_throughput.py --quick         # 1 rep x 2 steps, smoke test
    python benchmarks/worker_throughput.py --reps 5 --steps 10 --baseline-no-gc

Variants, run as fresh subprocesses in the order A B C A B C ... (so load drifts hit all alike):

  A  baseline: a plain TRL script. `SFTTrainer(model=<path>, args=SFTConfig(<defaults> + the same
     hyperparameters), train_dataset=<conversational prompt/completion records>, peft_config=...)`.
     TRL renders the chat template itself and, prompt/completion being its format for it,
     trains on the completion (the target response) only (completion_only_loss defaults to True).
     Default padding: no padding_free, no packing, no group_by_length.
  B  gpu_worker as a real subprocess (`python -m gpu_worker --config ...`), webhook reporting on
     to a local signed receiver (tests/worker/receiver.py), checkpoint every `--checkpoint-interval`
     steps (default 2, so 2 checkpoints in 4 steps: far more often than a real job) committed to a
     local store.
  C  the same worker with reporting and checkpointing off (webhook_url null, checkpoint_interval 0).

Same hyperparameters for all: LoRA r=16 alpha=32 dropout=0.05 all-linear, lr 2e-4 linear schedule
without warmup (TRL's default schedule; the worker is configured to match), AdamW (both use the
transformers default optimiser), weight decay 0, grad clip 1.0, per-device batch 4, accumulation 1,
max length 1024, seed 42, `--steps` optimiser steps, fp32 on CPU.

Data: data/sample/elena_morales_pairs.jsonl (training_pairs format, 178 records, 0-6 earlier
turns each, so sequence lengths vary a lot: that is where padding costs the baseline). Both sides
train on the worker's seeded 80/20 split (gpu_worker.data.split_conversations, seed 42); the
held-out 20 % is evaluated after training with one function, gpu_worker.evaluation.assistant_nll
(mean NLL over the target-response tokens, samples tokenised by gpu_worker.data), applied to every
variant's saved adapter.

Throughput: the Trainer's own `train_runtime` (start to end of the training loop: model load,
dataset preparation and validation excluded; checkpoint saves included) and the non-padding
tokens the model computed on during it: for A the attention-mask sum of every training batch
(counted by wrapping TRL's collator), for B/C the worker's own count (summary.json
`tokens_trained`, non-padding by construction: padding-free batches). effective tok/s =
tokens / train_runtime. The ratio printed last is median(B) / median(A).

Runtime: a step of SmolLM2-135M at batch 4 x ~560 tokens takes about 1-3 minutes on 2 shared CPU
cores, so the defaults (3 reps x 3 variants x 4 steps + ~1 min of model loading per run) take
roughly 30-60 minutes there; --quick about 10-15. Use a quiet machine, or more reps. Read the
tok/CPU-s column when the load average is above the core count: wall time then measures the
neighbours as much as the trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data/sample/elena_morales_pairs.jsonl"
MODEL = "embedded:smollm2-135m-instruct"
HYPER = {
    "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
    "learning_rate": 2e-4, "per_device_batch_size": 4, "gradient_accumulation_steps": 1,
    "max_seq_length": 1024, "seed": 42, "eval_split": 0.2, "lr_scheduler": "linear",
    "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
}


# Written next to the run folders and put first on the children's PYTHONPATH: wraps
# transformers' Trainer.train so every variant (the TRL script and `python -m gpu_worker` alike)
# records the wall and process-CPU seconds of its training loop the same way. CPU seconds (all
# threads of the training process: the loop, and the worker's reporter/ticker/uploader threads)
# are much less sensitive than wall seconds to other processes competing for the cores.
SITECUSTOMIZE = """
import os
if os.environ.get("WT_TIMING_FILE"):
    import functools, json, time
    import transformers.trainer as _trainer
    _train = _trainer.Trainer.train

    @functools.wraps(_train)
    def train(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return _train(self, *args, **kwargs)
        finally:
            with open(os.environ["WT_TIMING_FILE"], "w") as handle:
                json.dump({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}, handle)

    _trainer.Trainer.train = train
"""
_HOOK_DIR: Path | None = None


def _env(timing_file: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if timing_file is not None and _HOOK_DIR is not None:
        env["WT_TIMING_FILE"] = str(timing_file)
        env["PYTHONPATH"] = str(_HOOK_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("GPU_WORKER_CACHE", str(REPO / "var/cache/models"))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_VERBOSITY"] = "error"
    return env


# ----- data shared by the variants -----


def split(data_path: str) -> tuple[list, list]:
    from gpu_worker import data

    report = data.validate_dataset_file(data_path)
    return data.split_conversations(report.conversations, HYPER["eval_split"], HYPER["seed"])


def baseline_records(train_convs: list) -> list[dict]:
    """The training split as TRL's conversational prompt/completion records: the prompt is every
    message before the trained assistant turn, the completion is that turn (the target)."""
    records = []
    for conv in train_convs:
        turns = conv.trainable_turns
        last = turns[-1] if turns else max(i for i, m in enumerate(conv.messages) if m["role"] == "assistant")
        records.append({"prompt": conv.messages[:last], "completion": [conv.messages[last]]})
    return records


# ----- variant A: the plain TRL script (runs in a child process) -----


def run_baseline_child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            self.seconds = time.perf_counter() - self.t0

    counted = {"tokens": 0, "computed": 0}

    class CountingCollator:
        """TRL's own collator, unchanged; records non-padding and computed (padded) tokens."""

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, examples):
            batch = self.inner(examples)
            counted["tokens"] += int(batch["attention_mask"].sum())
            counted["computed"] += int(batch["input_ids"].numel())
            return batch

    h = spec["hyper"]
    args = SFTConfig(
        output_dir=spec["output_dir"],
        report_to="none",
        use_cpu=True,
        bf16=spec["bf16"],  # TRL's default is True; the worker trains fp32 on CPU
        gradient_checkpointing=spec["gradient_checkpointing"],  # TRL's default is True
        per_device_train_batch_size=h["per_device_batch_size"],
        gradient_accumulation_steps=h["gradient_accumulation_steps"],
        learning_rate=h["learning_rate"],
        lr_scheduler_type=h["lr_scheduler"],
        warmup_steps=h["warmup_ratio"],
        weight_decay=h["weight_decay"],
        max_grad_norm=h["max_grad_norm"],
        max_length=h["max_seq_length"],
        max_steps=spec["steps"],
        seed=h["seed"],
        save_strategy="no",
        logging_steps=1,  # TRL's default is 10; 1 costs nothing measurable and shows the loss
        disable_tqdm=True,
    )
    peft_config = LoraConfig(r=h["lora_r"], lora_alpha=h["lora_alpha"], lora_dropout=h["lora_dropout"],
                             target_modules=h["target_modules"], bias="none", task_type="CAUSAL_LM")
    timer = Timer()
    trainer = SFTTrainer(model=spec["model_path"], args=args, train_dataset=Dataset.from_list(spec["records"]),
                         peft_config=peft_config, callbacks=[timer])
    trainer.data_collator = CountingCollator(trainer.data_collator)
    out = trainer.train()
    trainer.save_model(spec["output_dir"] + "/adapter")
    result = {
        "train_runtime": out.metrics["train_runtime"], "callback_seconds": timer.seconds,
        "tokens": counted["tokens"], "computed_tokens": counted["computed"],
        "steps": trainer.state.global_step, "adapter": spec["output_dir"] + "/adapter",
        "completion_only_loss": trainer.completion_only_loss,
        "final_train_loss": next((r["loss"] for r in reversed(trainer.state.log_history) if "loss" in r), None),
    }
    Path(spec["result"]).write_text(json.dumps(result))


def run_a(work: Path, model_path: str, records: list, steps: int, gc: bool) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    spec = {"output_dir": str(work), "model_path": model_path, "records": records, "steps": steps,
            "hyper": HYPER, "bf16": False, "gradient_checkpointing": gc, "result": str(work / "result.json")}
    (work / "spec.json").write_text(json.dumps(spec))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--_baseline-child", str(work / "spec.json")],
                          env=_env(work / "timing.json"), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"baseline failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads((work / "result.json").read_text())
    result["process_seconds"] = time.perf_counter() - t0
    result["timing"] = json.loads((work / "timing.json").read_text())
    return result


# ----- variants B and C: the worker as a real subprocess -----


def run_worker(work: Path, data_path: str, steps: int, reporting: bool, checkpoint_interval: int,
               receiver) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "job_id": f"bench-{work.name}", "dataset": data_path, "base_model": MODEL,
        "output_dir": str(work / "out"), "device": "cpu", "max_steps": steps,
        **HYPER,
        "eval_interval": 0,  # only at the end, outside the training loop
        "validation_max_samples": 1,  # the worker's own end-of-run eval is not used here
        "evaluators": [],  # held-out loss is measured by this script, identically for every variant
        "resume_from": None,
        "checkpoint_interval": checkpoint_interval if reporting else 0,
        "store": {"kind": "local", "root": str(work / "store")},
        "webhook_url": receiver.events_url if reporting else None,
        "webhook_secret": receiver.secret if reporting else None,
        "heartbeat_interval": 30.0, "metrics_flush_interval": 5.0, "logging_steps": 1,
    }
    (work / "job.json").write_text(json.dumps(config))
    events_before = len(receiver.events)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gpu_worker", "--config", str(work / "job.json")],
                          env=_env(work / "timing.json"), cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    summary = json.loads((work / "out/summary.json").read_text())
    points = [json.loads(line) for line in (work / "out/metrics.jsonl").read_text().splitlines() if line.strip()]
    events = receiver.events[events_before:]
    return {
        "train_runtime": summary["train_runtime_s"], "tokens": summary["tokens_trained"],
        "computed_tokens": summary["tokens_computed_this_attempt"], "steps": summary["steps"],
        "adapter": str(work / "out/adapter"), "final_train_loss": summary["final_train_loss"],
        "process_seconds": time.perf_counter() - t0,
        "checkpoints": len(list((work / "store").glob("checkpoints/step-*"))) if reporting else 0,
        "events": len(events), "metric_points": len(points),
        "timing": json.loads((work / "timing.json").read_text()),
    }


# ----- held-out loss, one function for every adapter -----


def heldout_loss(model_path: str, adapter: str, samples: list[dict]) -> float:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from gpu_worker.evaluation import assistant_nll

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    model = PeftModel.from_pretrained(base, adapter)
    model.eval()
    total, count = assistant_nll(model, samples)
    return total / max(count, 1)


def base_loss(model_path: str, samples: list[dict]) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    from gpu_worker.evaluation import assistant_nll

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    total, count = assistant_nll(model, samples)
    return total / max(count, 1)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--checkpoint-interval", type=int, default=2)
    parser.add_argument("--eval-samples", type=int, default=12,
                        help="held-out conversations evaluated per adapter (the first N of the split)")
    parser.add_argument("--eval-all-reps", action="store_true",
                        help="evaluate every rep's adapter (default: rep 1; runs are seeded and deterministic)")
    parser.add_argument("--baseline-no-gc", action="store_true",
                        help="baseline with gradient_checkpointing=False (TRL's default is True)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--workdir", default=None, help="keep run folders here (default: a temp dir, removed)")
    parser.add_argument("--quick", action="store_true", help="1 rep x 2 steps, checkpoint every step, 4 eval samples")
    parser.add_argument("--_baseline-child", dest="baseline_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        run_baseline_child(args.baseline_child)
        return
    if args.quick:
        args.reps, args.steps, args.eval_samples = 1, 2, 4
        args.checkpoint_interval = 1

    os.environ.update({k: v for k, v in _env().items() if k != "PYTHONPATH"})
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import AutoTokenizer

    from gpu_worker import data, model_loading
    from tests.worker.receiver import Receiver

    model_path = model_loading.resolve_base_model(MODEL)  # converts the GGUF once into $GPU_WORKER_CACHE
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_convs, eval_convs = split(args.data)
    records = baseline_records(train_convs)
    eval_samples = []
    for conv in eval_convs[: args.eval_samples]:
        item = data.tokenize_conversation(tokenizer, conv.messages, HYPER["max_seq_length"], conv.trainable_turns)
        eval_samples.append({"input_ids": item["input_ids"], "labels": item["labels"]})
    lengths = sorted(len(data.tokenize_conversation(tokenizer, c.messages, 1024, c.trainable_turns)["input_ids"])
                     for c in train_convs)
    print(f"data: {args.data} ({len(train_convs)} train / {len(eval_convs)} held-out conversations; "
          f"train lengths min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]} tokens)")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} threads {torch.get_num_threads()}; "
          f"reps {args.reps} x {args.steps} steps, checkpoint every {args.checkpoint_interval} steps in B; "
          f"baseline gradient_checkpointing={'False' if args.baseline_no_gc else 'True (TRL default)'}")
    print(f"load average at start: {loadavg()}", flush=True)

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="worker-throughput-"))
    root.mkdir(parents=True, exist_ok=True)
    global _HOOK_DIR
    _HOOK_DIR = root / "hook"
    _HOOK_DIR.mkdir(exist_ok=True)
    (_HOOK_DIR / "sitecustomize.py").write_text(SITECUSTOMIZE)
    names = {"A": "A baseline TRL", "B": "B gpu_worker", "C": "C worker, no report/ckpt"}
    results: dict[str, list[dict]] = {k: [] for k in names}
    loads = []
    try:
        with Receiver(root / "receiver") as rx:
            for rep in range(args.reps):
                for key in names:
                    work = root / f"rep{rep + 1}-{key}"
                    if key == "A":
                        r = run_a(work, model_path, records, args.steps, gc=not args.baseline_no_gc)
                    else:
                        r = run_worker(work, args.data, args.steps, reporting=key == "B",
                                       checkpoint_interval=args.checkpoint_interval, receiver=rx)
                    r["tok_s"] = r["tokens"] / r["train_runtime"]
                    r["tok_cpu_s"] = r["tokens"] / r["timing"]["cpu"]
                    r["load"] = os.getloadavg()[0]
                    loads.append(r["load"])
                    results[key].append(r)
                    extra = (f" checkpoints {r['checkpoints']} events {r['events']}" if key == "B" else "")
                    print(f"  rep {rep + 1} {names[key]:26s} {r['steps']} steps {r['train_runtime']:7.1f} s "
                          f"{r['tokens']:6d} tok ({r['computed_tokens']} computed) {r['tok_s']:7.1f} tok/s "
                          f"{r['tok_cpu_s']:6.1f} tok/CPU-s "
                          f"train loss {r['final_train_loss'] if r['final_train_loss'] is None else round(r['final_train_loss'], 4)} load {r['load']:.2f}{extra}", flush=True)
                if rep == 0 or args.eval_all_reps:
                    # Between reps, outside every timed region: rep 1's numbers survive an interrupted run.
                    if rep == 0:
                        base = base_loss(model_path, eval_samples)
                        print(f"  held-out: {len(eval_samples)} conversations, "
                              f"{sum(sum(1 for x in s['labels'][1:] if x != -100) for s in eval_samples)} "
                              f"assistant tokens; base model loss {base:.4f}", flush=True)
                    for key in names:
                        r = results[key][rep]
                        r["heldout"] = heldout_loss(model_path, r["adapter"], eval_samples)
                        print(f"  held-out loss rep {rep + 1} {names[key]:26s} {r['heldout']:.4f}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)

    med = {k: statistics.median(r["tok_s"] for r in v) for k, v in results.items()}
    med_cpu = {k: statistics.median(r["tok_cpu_s"] for r in v) for k, v in results.items()}
    print()
    print(f"{'variant':28s} {'tok/s (median)':>14s} {'all reps':>24s} {'tok/CPU-s':>9s} {'train s':>8s} "
          f"{'pad waste':>9s} {'held-out loss':>13s}")
    for key, label in names.items():
        rs = results[key]
        waste = 1 - sum(r["tokens"] for r in rs) / sum(r["computed_tokens"] for r in rs)
        held = [r["heldout"] for r in rs if "heldout" in r]
        print(f"{label:28s} {med[key]:14.1f} {' '.join(format(r['tok_s'], '.1f') for r in rs):>24s} {med_cpu[key]:9.1f} "
              f"{statistics.median(r['train_runtime'] for r in rs):8.1f} {waste:8.1%} "
              f"{' '.join(format(h, '.4f') for h in held):>13s}")
    print(f"{'base model (no adapter)':28s} {'':>14s} {'':>24s} {'':>9s} {'':>8s} {'':>9s} {base:13.4f}")
    print(f"load average: median over runs {statistics.median(loads):.2f} (min {min(loads):.2f}, "
          f"max {max(loads):.2f}); at end {loadavg()}")
    held_a, held_b = results["A"][0]["heldout"], results["B"][0]["heldout"]
    print(f"held-out loss A {held_a:.4f} vs B {held_b:.4f}: difference {held_b - held_a:+.4f} "
          f"({(held_b - held_a) / held_a:+.2%}); training moved it from {base:.4f} "
          f"(A {held_a - base:+.4f}, B {held_b - base:+.4f})")
    overhead = (med["C"] - med["B"]) / med["C"]
    overhead_cpu = (med_cpu["C"] - med_cpu["B"]) / med_cpu["C"]
    print(f"reporting + checkpointing overhead (B vs C): {overhead:+.2%} wall tok/s, {overhead_cpu:+.2%} "
          f"CPU-time tok/s (checkpoint every {args.checkpoint_interval} steps, webhook events on)")
    print(f"ratio gpu_worker/baseline, tokens per CPU-second (less load-sensitive): "
          f"{med_cpu['B'] / med_cpu['A']:.2f}×")
    print(f"ratio gpu_worker/baseline effective tokens/s: {med['B'] / med['A']:.2f}×")


if __name__ == "__main__":
    main()
