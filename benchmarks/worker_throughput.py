"""gpu_worker vs TRL as its users run it, and with the best flags: effective (non-padding)
tokens/s, held-out loss, useful FLOP/s against this machine's measured matmul rates, and the cost
of reporting + checkpointing. One invocation, variants interleaved, medians.

    python benchmarks/worker_throughput.py                    # 2 reps x 2 steps (about 10-15 min)
    python benchmarks/worker_throughput.py --quick            # 1 rep x 1 step, smoke test
    python benchmarks/worker_throughput.py --reps 3 --steps 4 --baseline-timeout 900

Variants, run as fresh subprocesses in the order A A' B C A A' B C ... (so load drifts hit all alike):

  A   TRL with its defaults, as a user gets them on this machine: `SFTTrainer(model=<path>,
      args=SFTConfig(<defaults> + the same hyperparameters), train_dataset=<conversational
      prompt/completion records>, peft_config=...)`. So bf16 autocast (SFTConfig's default, also
      on a CPU), gradient checkpointing on (TRL's default), random batches padded to their
      longest sample, no padding_free, no packing. TRL renders the chat template and, for
      prompt/completion records, trains on the completion only (completion_only_loss).
  A'  TRL with the flags a skilled user would set: gradient checkpointing off, length-grouped
      batches (train_sampling_strategy="group_by_length"; padding_free packs a batch into one row,
      which only pays with a varlen flash-attention kernel, so not on CPU/sdpa, see
      docs/performance.md), and bf16 where this machine multiplies bf16 faster than fp32 (the
      matmul rates measured at start; `--tuned-precision` overrides), fp32 elsewhere.
  B   gpu_worker as a real subprocess (`python -m gpu_worker --config ...`), its own precision
      choice (`precision: auto`, or `--worker-precision`), webhook reporting on to a local signed
      receiver (tests/worker/receiver.py), a checkpoint every `--checkpoint-interval` steps
      committed to a local store.
  C   the same worker with reporting and checkpointing off (webhook_url null, checkpoint_interval 0).

A CPU without fast bf16 (no AMX, no AVX-512-BF16) runs TRL's default bf16 emulated, many times
slower than fp32: A may then not finish one step in reasonable time. Its training loop is given
`--baseline-timeout` seconds; past that it is stopped, and what it did is an upper bound on its
speed: tokens of the finished steps plus those of the step in flight, over the seconds it ran.
Its ratios are then printed as lower bounds (>=), and later reps do not run it again.

Same hyperparameters for all: LoRA r=16 alpha=32 dropout=0.05 all-linear, lr 2e-4 linear schedule
without warmup (TRL's default schedule; the worker is configured to match), AdamW (both use the
transformers default optimiser), weight decay 0, grad clip 1.0, per-device batch 4, accumulation 1,
max length 1024, seed 42, `--steps` optimiser steps.

Data: data/sample/elena_morales_pairs.jsonl (training_pairs format, 178 records, 0-6 earlier
turns each, so sequence lengths vary a lot: that is where padding costs a padded trainer). All
train on the worker's seeded 80/20 split (gpu_worker.data.split_conversations, seed 42); the
held-out 20 % is evaluated after training with one function, gpu_worker.evaluation.assistant_nll
(mean NLL over the target-response tokens, samples tokenised by gpu_worker.data, fp32), applied
to every variant's saved adapter.

Throughput: the Trainer's own `train_runtime` (start to end of the training loop: model load,
dataset preparation and validation excluded; checkpoint saves included) and the non-padding
tokens the model computed on during it: for A/A' the attention-mask sum of every training batch
(counted by wrapping TRL's collator), for B/C the worker's own count (summary.json
`tokens_trained`). effective tok/s = tokens / train_runtime; tok/CPU-s divides by the training
process's CPU seconds instead (less sensitive to neighbours on a shared machine).

FLOP/s: useful FLOPs per effective token = 4 N, N = the model's matmul weights (every linear
layer of the decoder blocks plus the LM head): 2 N forward, 2 N backward for the activation
gradients; the frozen weights get no weight gradients. LoRA's own rank-r products and attention's
sequence-length term are left out, so the figure is a slight undercount. Achieved = 4 N x
effective tok/s, set against the bf16 and fp32 rates of a 2048x576 by 576x1536 matmul (the shape
of SmolLM2's MLP projections) measured in this process at this thread count at the start and at
the end of the run.

The ratios printed last are median(B) / median(A) and median(B) / median(A').
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

    counted = {"tokens": 0, "computed": 0, "steps": 0, "tokens_done": 0, "t0": None, "batches": [], "computed_batches": []}
    progress = Path(spec["progress"])

    def write_progress() -> None:
        # Read by the parent if it has to stop this run (--baseline-timeout): what was done when.
        progress.write_text(json.dumps({**counted, "now": time.time()}))

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t0 = time.perf_counter()
            counted["t0"] = time.time()
            write_progress()

        def on_step_end(self, args, state, control, **k):
            counted["steps"], counted["tokens_done"] = state.global_step, counted["tokens"]
            write_progress()

        def on_train_end(self, *a, **k):
            self.seconds = time.perf_counter() - self.t0

    class CountingCollator:
        """TRL's own collator, unchanged; records non-padding and computed (padded) tokens."""

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, examples):
            batch = self.inner(examples)
            counted["tokens"] += int(batch["attention_mask"].sum())
            counted["computed"] += int(batch["input_ids"].numel())
            counted["batches"].append(int(batch["attention_mask"].sum()))
            counted["computed_batches"].append(int(batch["input_ids"].numel()))
            write_progress()
            return batch

    h = spec["hyper"]
    # Only what the variant sets differs from SFTConfig's defaults: A sets nothing of its own
    # (TRL's bf16 and gradient checkpointing defaults stand), A' its tuned flags.
    own = {} if spec["variant"] == "A" else {
        "bf16": spec["bf16"], "gradient_checkpointing": False, "train_sampling_strategy": "group_by_length"}
    args = SFTConfig(
        output_dir=spec["output_dir"],
        report_to="none",
        use_cpu=True,
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
        **own,
    )
    peft_config = LoraConfig(r=h["lora_r"], lora_alpha=h["lora_alpha"], lora_dropout=h["lora_dropout"],
                             target_modules=h["target_modules"], bias="none", task_type="CAUSAL_LM")
    timer = Timer()
    trainer = SFTTrainer(model=spec["model_path"], args=args, train_dataset=Dataset.from_list(spec["records"]),
                         peft_config=peft_config, callbacks=[timer])
    trainer.data_collator = CountingCollator(trainer.data_collator)
    out = trainer.train()
    trainer.save_model(spec["output_dir"] + "/adapter")
    # The data loader (accelerate's DataLoaderShard) draws one batch ahead, so the collator has
    # seen a batch more than was trained on: count the trained ones only.
    trained = trainer.state.global_step * h["gradient_accumulation_steps"]
    result = {
        "train_runtime": out.metrics["train_runtime"], "callback_seconds": timer.seconds,
        "tokens": sum(counted["batches"][:trained]), "computed_tokens": sum(counted["computed_batches"][:trained]),
        "batches_drawn": len(counted["batches"]),
        "steps": trainer.state.global_step, "adapter": spec["output_dir"] + "/adapter",
        "completion_only_loss": trainer.completion_only_loss, "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
        "sampling": args.train_sampling_strategy,
        "final_train_loss": next((r["loss"] for r in reversed(trainer.state.log_history) if "loss" in r), None),
    }
    Path(spec["result"]).write_text(json.dumps(result))


class VariantFailed(Exception):
    """A variant's process failed; the reps completed before it are still summarised."""


def run_trl(work: Path, variant: str, model_path: str, records: list, steps: int, bf16: bool,
            timeout: float | None) -> dict:
    """Variant A (TRL's defaults) or A' (tuned flags) in a child process. With `timeout`, a
    training loop still running that many seconds after it began is stopped, and the result is
    an upper bound on its speed (see the module docstring)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = {"output_dir": str(work), "variant": variant, "model_path": model_path, "records": records,
            "steps": steps, "hyper": HYPER, "bf16": bf16, "result": str(work / "result.json"),
            "progress": str(work / "progress.json")}
    (work / "spec.json").write_text(json.dumps(spec))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--_baseline-child", str(work / "spec.json")],
                            env=_env(work / "timing.json"), stdout=subprocess.DEVNULL,
                            stderr=(work / "stderr.txt").open("w"))
    stopped = None
    while proc.poll() is None:
        time.sleep(1)
        if timeout is None or not (work / "progress.json").exists():
            continue
        try:
            progress = json.loads((work / "progress.json").read_text())
        except json.JSONDecodeError:  # caught mid-write: the next second reads it whole
            continue
        if progress["t0"] is not None and time.time() - progress["t0"] > timeout:
            proc.kill()
            proc.wait()
            stopped = {**progress, "killed_at": time.time()}
    if stopped is not None:
        ran = stopped["killed_at"] - stopped["t0"]
        # The finished steps' batches and the step in flight's had not all been trained on when
        # it was stopped: their tokens over the seconds it ran bound its rate from above. (The
        # data loader draws a batch ahead; that one is not counted.)
        upto = (stopped["steps"] + 1) * HYPER["gradient_accumulation_steps"]
        return {"timed_out": True, "train_runtime": ran, "tokens": sum(stopped["batches"][:upto]),
                "computed_tokens": sum(stopped["computed_batches"][:upto]), "steps": stopped["steps"], "adapter": None,
                "final_train_loss": None, "process_seconds": time.perf_counter() - t0,
                "timing": {"cpu": None}, "bf16": variant == "A" or bf16}
    if proc.returncode != 0:
        raise VariantFailed(f"TRL variant {variant} exited {proc.returncode} (-9: killed, e.g. by the "
                            f"kernel's OOM killer):\n{(work / 'stderr.txt').read_text()[-2000:]}")
    result = json.loads((work / "result.json").read_text())
    result["process_seconds"] = time.perf_counter() - t0
    result["timing"] = json.loads((work / "timing.json").read_text())
    return result


# ----- variants B and C: the worker as a real subprocess -----


def run_worker(work: Path, data_path: str, steps: int, reporting: bool, checkpoint_interval: int,
               receiver, precision: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "job_id": f"bench-{work.name}", "dataset": data_path, "base_model": MODEL,
        "output_dir": str(work / "out"), "device": "cpu", "max_steps": steps, "precision": precision,
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
        raise VariantFailed(f"worker exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    summary = json.loads((work / "out/summary.json").read_text())
    points = [json.loads(line) for line in (work / "out/metrics.jsonl").read_text().splitlines() if line.strip()]
    events = receiver.events[events_before:]
    return {
        "train_runtime": summary["train_runtime_s"], "tokens": summary["tokens_trained"],
        "computed_tokens": summary["tokens_computed_this_attempt"], "steps": summary["steps"],
        "adapter": str(work / "out/adapter"), "final_train_loss": summary["final_train_loss"],
        "bf16": summary.get("precision") == "bf16", "process_seconds": time.perf_counter() - t0,
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


# ----- the machine's own yardsticks -----


def matmul_rate(dtype_name: str, seconds: float = 2.0) -> float:
    """GFLOP/s of a 2048x576 @ 576x1536 matmul (SmolLM2's MLP projection at batch 4 x 512) at
    torch's thread count: the median of timed calls over about `seconds` (at least 3 calls)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(2048, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    a @ b  # warm-up: kernel selection, page faults
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * 2048 * 576 * 1536 / statistics.median(times) / 1e9


def matmul_weights(model_path: str) -> int:
    """N for the 4 N FLOPs per trained token: the decoder blocks' linear weights plus the LM head,
    from the model's config.json (a Llama-shaped model)."""
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or hidden // heads
    kv = cfg.get("num_key_value_heads", heads) * head_dim
    attention = hidden * heads * head_dim * 2 + hidden * kv * 2  # q and o, k and v
    mlp = 3 * hidden * inter  # gate, up, down
    return layers * (attention + mlp) + hidden * cfg["vocab_size"]


def fmt_ratio(num: float, den: float, bound: bool) -> str:
    # A stopped A is an upper bound on its speed, so B over it is a lower bound.
    return f"{'>= ' if bound else ''}{num / den:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--checkpoint-interval", type=int, default=1,
                        help="B checkpoints every N steps (default 1: every step, far more often than a real job)")
    parser.add_argument("--eval-samples", type=int, default=8,
                        help="held-out conversations evaluated per adapter (the first N of the split)")
    parser.add_argument("--eval-all-reps", action="store_true",
                        help="evaluate every rep's adapters (default: rep 1; runs are seeded and deterministic)")
    parser.add_argument("--baseline-timeout", type=float, default=None,
                        help="seconds A's training loop may run before it is stopped and reported as a "
                             "bound (default 180; 120 with --quick)")
    parser.add_argument("--tuned-precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="A' precision; auto: bf16 where the bf16 matmul measures faster than fp32")
    parser.add_argument("--worker-precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="B and C: the worker's `precision` field")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--workdir", default=None, help="keep run folders here (default: a temp dir, removed)")
    parser.add_argument("--quick", action="store_true", help="1 rep x 1 step, 4 eval samples, A stopped after 120 s")
    parser.add_argument("--_baseline-child", dest="baseline_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        run_baseline_child(args.baseline_child)
        return
    if args.quick:
        args.reps, args.steps, args.eval_samples = 1, 1, 4
    if args.baseline_timeout is None:
        args.baseline_timeout = 120.0 if args.quick else 180.0

    os.environ.update({k: v for k, v in _env().items() if k != "PYTHONPATH"})
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import AutoTokenizer

    from gpu_worker import data, model_loading
    from tests.worker.receiver import Receiver

    started = time.time()
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
    n_weights = matmul_weights(model_path)
    flops_per_token = 4 * n_weights
    cpu_flags = sorted(model_loading.cpu_bf16_flags(Path("/proc/cpuinfo").read_text())) if Path("/proc/cpuinfo").exists() else []
    rates_start = {"fp32": matmul_rate("float32"), "bf16": matmul_rate("bfloat16")}
    tuned_bf16 = (rates_start["bf16"] > rates_start["fp32"]) if args.tuned_precision == "auto" else args.tuned_precision == "bf16"
    worker_placement = model_loading.choose_placement("cpu", "none", cuda_available=False, precision=args.worker_precision)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"data: {args.data} ({len(train_convs)} train / {len(eval_convs)} held-out conversations; "
          f"train lengths min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]} tokens)")
    print(f"machine: {os.cpu_count()} CPUs ({affinity} usable), torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"fast-bf16 flags: {', '.join(cpu_flags) or 'none'}")
    print(f"matmul 2048x576 @ 576x1536 at start: fp32 {rates_start['fp32']:.1f} GFLOP/s, bf16 "
          f"{rates_start['bf16']:.1f} GFLOP/s (bf16/fp32 {rates_start['bf16'] / rates_start['fp32']:.2f})")
    print(f"FLOPs per effective token: 4 N = {flops_per_token / 1e9:.3f} GFLOP, N = {n_weights / 1e6:.1f} M "
          f"matmul weights (decoder linears + LM head)")
    print(f"reps {args.reps} x {args.steps} steps; A: TRL defaults (bf16 autocast, gradient checkpointing, "
          f"random padded batches), stopped after {args.baseline_timeout:.0f} s of training; A': no gradient "
          f"checkpointing, group_by_length, {'bf16' if tuned_bf16 else 'fp32'}; B/C: precision "
          f"{args.worker_precision} -> {worker_placement.precision}; B checkpoints every {args.checkpoint_interval} step(s)")
    print(f"load average at start: {loadavg()}", flush=True)

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="worker-throughput-"))
    root.mkdir(parents=True, exist_ok=True)
    global _HOOK_DIR
    _HOOK_DIR = root / "hook"
    _HOOK_DIR.mkdir(exist_ok=True)
    (_HOOK_DIR / "sitecustomize.py").write_text(SITECUSTOMIZE)
    names = {"A": "A TRL defaults", "Ap": "A' TRL tuned flags", "B": "B gpu_worker", "C": "C worker, no report/ckpt"}
    results: dict[str, list[dict]] = {k: [] for k in names}
    loads = []
    base = None
    try:
        with Receiver(root / "receiver") as rx:
            for rep in range(args.reps):
                failed = False
                for key in names:
                    if key == "A" and results["A"] and results["A"][0].get("timed_out"):
                        continue  # a bound already; running it again would only cost the timeout
                    work = root / f"rep{rep + 1}-{key}"
                    try:
                        if key in ("A", "Ap"):
                            r = run_trl(work, key, model_path, records, args.steps, bf16=tuned_bf16,
                                        timeout=args.baseline_timeout if key == "A" else None)
                        else:
                            r = run_worker(work, args.data, args.steps, reporting=key == "B",
                                           checkpoint_interval=args.checkpoint_interval, receiver=rx,
                                           precision=args.worker_precision)
                    except VariantFailed as exc:
                        if rep == 0:
                            sys.exit(str(exc))
                        # Medians over complete reps only: this rep's runs are dropped.
                        print(f"  rep {rep + 1} {names[key]} FAILED, later runs skipped: {exc}", flush=True)
                        for runs in results.values():
                            del runs[rep:]
                        failed = True
                        break
                    r["tok_s"] = r["tokens"] / r["train_runtime"]
                    r["tok_cpu_s"] = r["tokens"] / r["timing"]["cpu"] if r["timing"]["cpu"] else None
                    r["load"] = os.getloadavg()[0]
                    loads.append(r["load"])
                    results[key].append(r)
                    extra = f" checkpoints {r['checkpoints']} events {r['events']}" if key == "B" else ""
                    if r.get("timed_out"):
                        extra += (f" STOPPED after {r['train_runtime']:.0f} s: {r['steps']} steps done, "
                                  f"tok/s is an upper bound")
                    loss = r["final_train_loss"]
                    print(f"  rep {rep + 1} {names[key]:26s} {'bf16' if r['bf16'] else 'fp32'} {r['steps']} steps "
                          f"{r['train_runtime']:7.1f} s {r['tokens']:6d} tok ({r['computed_tokens']} computed) "
                          f"{r['tok_s']:7.1f} tok/s "
                          f"{'' if r['tok_cpu_s'] is None else format(r['tok_cpu_s'], '6.1f') + ' tok/CPU-s '}"
                          f"train loss {'-' if loss is None else round(loss, 4)} load {r['load']:.2f}{extra}", flush=True)
                if failed:
                    break
                if rep == 0 or args.eval_all_reps:
                    # Between reps, outside every timed region: rep 1's numbers survive an interrupted run.
                    if base is None:
                        base = base_loss(model_path, eval_samples)
                        print(f"  held-out: {len(eval_samples)} conversations, "
                              f"{sum(sum(1 for x in s['labels'][1:] if x != -100) for s in eval_samples)} "
                              f"assistant tokens; base model loss {base:.4f}", flush=True)
                    for key in names:
                        if len(results[key]) <= rep or results[key][rep]["adapter"] is None:
                            continue
                        r = results[key][rep]
                        r["heldout"] = heldout_loss(model_path, r["adapter"], eval_samples)
                        print(f"  held-out loss rep {rep + 1} {names[key]:26s} {r['heldout']:.4f}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    rates_end = {"fp32": matmul_rate("float32"), "bf16": matmul_rate("bfloat16")}

    print_summary(results, names, base, rates_start, rates_end, flops_per_token, loads, started,
                  args.checkpoint_interval)


def print_summary(results: dict[str, list[dict]], names: dict[str, str], base: float,
                  rates_start: dict[str, float], rates_end: dict[str, float], flops_per_token: float,
                  loads: list[float], started: float, checkpoint_interval: int) -> None:
    med = {k: statistics.median(r["tok_s"] for r in v) for k, v in results.items()}
    cpu_rates = {k: [r["tok_cpu_s"] for r in v if r["tok_cpu_s"]] for k, v in results.items()}
    med_cpu = {k: statistics.median(v) if v else None for k, v in cpu_rates.items()}
    a_bound = any(r.get("timed_out") for r in results["A"])
    peak = {k: max(rates_start[k], rates_end[k]) for k in rates_start}
    print()
    print(f"matmul at end: fp32 {rates_end['fp32']:.1f} GFLOP/s, bf16 {rates_end['bf16']:.1f} GFLOP/s; "
          f"the better of start and end is the yardstick below")
    print(f"{'variant':28s} {'prec':>4s} {'tok/s (median)':>14s} {'all reps':>16s} {'tok/CPU-s':>9s} {'train s':>8s} "
          f"{'pad waste':>9s} {'GFLOP/s':>8s} {'of bf16':>7s} {'of fp32':>7s} {'held-out loss':>13s}")
    for key, label in names.items():
        rs = results[key]
        waste = 1 - sum(r["tokens"] for r in rs) / max(sum(r["computed_tokens"] for r in rs), 1)
        held = [r["heldout"] for r in rs if "heldout" in r]
        gflops = med[key] * flops_per_token / 1e9
        bound = "<" if key == "A" and a_bound else ""
        print(f"{label:28s} {'bf16' if rs[0]['bf16'] else 'fp32':>4s} {bound + format(med[key], '.1f'):>14s} "
              f"{' '.join(format(r['tok_s'], '.1f') for r in rs):>16s} "
              f"{'-' if med_cpu[key] is None else format(med_cpu[key], '.1f'):>9s} "
              f"{statistics.median(r['train_runtime'] for r in rs):8.1f} {waste:8.1%} {bound + format(gflops, '.1f'):>8s} "
              f"{gflops / peak['bf16']:7.1%} {gflops / peak['fp32']:7.1%} "
              f"{' '.join(format(h, '.4f') for h in held) or '- (stopped)':>13s}")
    print(f"{'base model (no adapter)':28s} {'':>4s} {'':>14s} {'':>16s} {'':>9s} {'':>8s} {'':>9s} {'':>8s} "
          f"{'':>7s} {'':>7s} {base:13.4f}")
    print(f"load average: median over runs {statistics.median(loads):.2f} (min {min(loads):.2f}, "
          f"max {max(loads):.2f}); at end {loadavg()}; wall {(time.time() - started) / 60:.1f} min")
    held_t, held_b = results["Ap"][0].get("heldout"), results["B"][0].get("heldout")
    if held_t is not None and held_b is not None:
        print(f"held-out loss A' {held_t:.4f} vs B {held_b:.4f}: difference {held_b - held_t:+.4f} "
              f"({(held_b - held_t) / held_t:+.2%}); training moved it from {base:.4f} "
              f"(A' {held_t - base:+.4f}, B {held_b - base:+.4f})")
    overhead = (med["C"] - med["B"]) / med["C"]
    overhead_cpu = (med_cpu["C"] - med_cpu["B"]) / med_cpu["C"] if med_cpu["B"] and med_cpu["C"] else float("nan")
    print(f"reporting + checkpointing overhead (B vs C): {overhead:+.2%} wall tok/s, {overhead_cpu:+.2%} "
          f"CPU-time tok/s (checkpoint every {checkpoint_interval} step(s), webhook events on)")
    if med_cpu["Ap"] and med_cpu["B"]:
        print(f"ratio B/A', tokens per CPU-second (less load-sensitive): {med_cpu['B'] / med_cpu['Ap']:.2f}x")
    print(f"ratio B/A  (gpu_worker / TRL defaults) effective tokens/s: {fmt_ratio(med['B'], med['A'], a_bound)}")
    print(f"ratio B/A' (gpu_worker / TRL tuned flags) effective tokens/s: {fmt_ratio(med['B'], med['Ap'], False)}")


if __name__ == "__main__":
    main()
