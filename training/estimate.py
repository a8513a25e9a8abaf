"""Cost and duration estimate of one fine-tuning job: a pure function, no Django, no I/O.

The model, stage by stage (minutes):

- startup: provisioning the machine and starting the worker (a constant from settings).
- preprocessing: downloading and tokenising the dataset, proportional to its tokens.
- model_loading: download + 4-bit quantisation, scaled by the model's size relative to a
  70B reference (a floor keeps small models from reading as instant).
- training: tokens processed / throughput. Tokens processed = training-split tokens x epochs,
  plus the periodic held-out evaluations (forward only, a third of a training step's work per
  token).
- validation: a constant for saving/uploading the adapter and reports, plus the evaluators'
  two forward passes over the held-out split (base model and trained model perplexity).

Throughput is in tokens processed per second (prompt and response tokens, no padding: what the
worker reports as `tokens_per_second`). It is either the prior for the GPU (settings'
tokens_per_second_per_billion_params / model size in billions) or measured from completed jobs.
The band around the expected duration is wide for the prior and +-15% once measured; cost is
duration x hourly price, so it carries the same band.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
REFERENCE_BILLIONS = 70.0
# A model's loading time never drops below this share of the 70B reference (process start,
# imports, tokenizer, adapter set-up).
MODEL_LOADING_FLOOR = 0.05
# Forward-only passes (evaluation) cost about a third of a training step per token.
EVAL_COST_FACTOR = 1.0 / 3.0
PREPROCESSING_BASE_MINUTES = 0.5
PREPROCESSING_MINUTES_PER_MILLION_TOKENS = 2.0

PRIOR_BAND = (0.8, 1.35)
MEASURED_BAND = (0.85, 1.15)

STAGES = ("startup", "preprocessing", "model_loading", "training", "validation")


@dataclass(frozen=True)
class EstimateInputs:
    """Everything the estimate depends on.

    `dataset_tokens` are the whole dataset's tokens (prompt + response) as the tokenizer counted
    them; `samples` its conversations. The worker holds `eval_split` of them out, as
    gpu_worker.data.split_conversations does.
    """

    dataset_tokens: int
    samples: int
    num_epochs: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    parameter_count: int
    tokens_per_second: float
    price_per_hour: Decimal
    throughput_source: str = "prior"  # "prior" or "measured"
    throughput_note: str = ""
    trainable_tokens: int = 0  # informational: tokens that carry loss
    eval_split: float = 0.2
    eval_interval: int = 50
    max_steps: int = -1
    startup_minutes: float = 4.0
    model_loading_minutes: float = 10.0  # for a 70B model
    validation_minutes: float = 8.0
    band: tuple[float, float] | None = None  # (low, high) factors; None: by throughput source


@dataclass(frozen=True)
class Range:
    low: float
    expected: float
    high: float


@dataclass(frozen=True)
class MoneyRange:
    low: Decimal
    expected: Decimal
    high: Decimal


@dataclass(frozen=True)
class Estimate:
    stages: dict[str, float]  # expected minutes per stage
    duration_minutes: Range
    cost: MoneyRange
    price_per_hour: Decimal
    total_steps: int
    steps_per_epoch: int
    train_samples: int
    eval_samples: int
    evaluations: int
    tokens_processed: int
    tokens_per_second: float
    throughput_source: str
    throughput_note: str
    band: tuple[float, float]
    extras: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """'Estimated Duration: 12-15 hours, Estimated Cost: $50-60' (seed 002's wording)."""
        return (f"Estimated Duration: {format_duration(self.duration_minutes)}, "
                f"Estimated Cost: {format_money_range(self.cost)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; money as strings ("52.40") so DecimalFields take them exactly."""
        return {
            "stages": {k: round(v, 2) for k, v in self.stages.items()},
            "duration_minutes": {k: round(v, 1) for k, v in asdict(self.duration_minutes).items()},
            "cost": {k: str(v) for k, v in asdict(self.cost).items()},
            "currency": "USD",
            "price_per_hour": str(self.price_per_hour),
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "train_samples": self.train_samples,
            "eval_samples": self.eval_samples,
            "evaluations": self.evaluations,
            "tokens_processed": self.tokens_processed,
            "throughput": {
                "tokens_per_second": round(self.tokens_per_second, 3),
                "source": self.throughput_source,
                "note": self.throughput_note,
            },
            "band": {"low": self.band[0], "high": self.band[1]},
            "summary": self.describe(),
            **self.extras,
        }


def split_sizes(samples: int, eval_split: float) -> tuple[int, int]:
    """(train, eval) counts exactly as gpu_worker.data.split_conversations makes them."""
    if samples < 2:
        return samples, 0
    n_eval = min(max(round(samples * eval_split), 1), samples - 1)
    return samples - n_eval, n_eval


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def estimate_job(inputs: EstimateInputs) -> Estimate:
    """The per-stage duration, its band, the cost band and the step count of one job."""
    if inputs.tokens_per_second <= 0:
        raise ValueError("tokens_per_second must be positive")
    if inputs.price_per_hour < 0:
        raise ValueError("price_per_hour must not be negative")
    samples = max(inputs.samples, 0)
    train_samples, eval_samples = split_sizes(samples, inputs.eval_split)
    tokens_per_sample = min(inputs.dataset_tokens / samples, inputs.max_seq_length) if samples else 0.0

    effective_batch = max(inputs.per_device_batch_size, 1) * max(inputs.gradient_accumulation_steps, 1)
    steps_per_epoch = math.ceil(train_samples / effective_batch) if train_samples else 0
    if inputs.max_steps > 0:
        total_steps = inputs.max_steps
        epochs = total_steps / steps_per_epoch if steps_per_epoch else 0.0
    else:
        total_steps = math.ceil(steps_per_epoch * inputs.num_epochs - 1e-9)
        epochs = inputs.num_epochs

    train_tokens = train_samples * tokens_per_sample * epochs
    eval_tokens = eval_samples * tokens_per_sample
    evaluations = 0
    if eval_samples:
        periodic = total_steps // inputs.eval_interval if inputs.eval_interval > 0 else 0
        evaluations = max(periodic, 1)  # the worker evaluates once at the end if never before
    eval_work = evaluations * eval_tokens * EVAL_COST_FACTOR
    validation_work = 2 * eval_tokens * EVAL_COST_FACTOR

    tps = inputs.tokens_per_second
    size = inputs.parameter_count / 1e9 / REFERENCE_BILLIONS
    stages = {
        "startup": inputs.startup_minutes,
        "preprocessing": PREPROCESSING_BASE_MINUTES
        + PREPROCESSING_MINUTES_PER_MILLION_TOKENS * inputs.dataset_tokens / 1e6,
        "model_loading": inputs.model_loading_minutes * max(size, MODEL_LOADING_FLOOR),
        "training": (train_tokens + eval_work) / tps / 60.0,
        "validation": inputs.validation_minutes + validation_work / tps / 60.0,
    }
    expected = sum(stages.values())
    band = inputs.band or (MEASURED_BAND if inputs.throughput_source == "measured" else PRIOR_BAND)
    low_factor, high_factor = min(band[0], 1.0), max(band[1], 1.0)
    duration = Range(low=expected * low_factor, expected=expected, high=expected * high_factor)

    price = Decimal(inputs.price_per_hour)
    cost = MoneyRange(*(money(price * Decimal(repr(m)) / 60) for m in (duration.low, duration.expected, duration.high)))
    return Estimate(
        stages=stages,
        duration_minutes=duration,
        cost=cost,
        price_per_hour=price,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        train_samples=train_samples,
        eval_samples=eval_samples,
        evaluations=evaluations,
        tokens_processed=round(train_tokens),
        tokens_per_second=tps,
        throughput_source=inputs.throughput_source,
        throughput_note=inputs.throughput_note,
        band=(low_factor, high_factor),
    )


def format_duration(minutes: Range) -> str:
    if minutes.high < 120:
        return f"{math.floor(minutes.low)}-{math.ceil(minutes.high)} minutes"
    low, high = math.floor(minutes.low / 60), math.ceil(minutes.high / 60)
    return f"{low}-{max(high, low + 1)} hours"


def format_money_range(cost: MoneyRange) -> str:
    if cost.high == 0:
        return "$0 (no GPU charge)"
    if cost.high < 10:
        return f"${cost.low}-{cost.high}"
    return f"${cost.low.to_integral_value(rounding='ROUND_FLOOR')}-{cost.high.to_integral_value(rounding='ROUND_CEILING')}"
