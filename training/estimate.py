"""Cost and duration estimate of one fine-tuning job: a pure function, no Django, no I/O.

The model, stage by stage (minutes):

- startup: provisioning the machine and starting the worker (a constant from settings).
- preprocessing: downloading and tokenising the dataset, proportional to its tokens.
- model_loading: download + 4-bit quantisation, scaled by the model's size relative to a
  70B reference (a floor keeps small models from reading as instant).
- training: tokens processed / throughput. Tokens processed = training-split tokens x epochs,
  plus the periodic held-out evaluations (forward only, a third of a training step's work per
  token).
- validation: a constant for saving/uploading the adapter and reports, scaled by the model's
  size as model loading is (the adapter and what is uploaded grow with it: 8 minutes for the
  70B reference, 24 s at the floor; a 135M model on CPU took 20 s), plus the evaluators' two
  forward passes over the held-out split (base model and trained model perplexity).

Throughput is in tokens processed per second (prompt and response tokens, no padding: what the
worker reports as `tokens_per_second`). It is either the prior for the GPU (settings'
tokens_per_second_per_billion_params / model size in billions) or measured from completed jobs.
The band around the expected duration is wide for the prior and +-15% once measured; cost is
duration x hourly price, so it carries the same band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
MEASURABLE_STAGES = ("startup", "preprocessing", "model_loading", "validation")


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
    # Minutes this machine measured per stage on earlier jobs of the same model and GPU (median),
    # replacing the constants above for the stages that do not scale with throughput
    # ("startup", "preprocessing", "model_loading", "validation"); training always comes from
    # the throughput, itself measured once such jobs exist.
    measured_stage_minutes: Mapping[str, float] = field(default_factory=dict)


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
    # Of each stage's minutes, those spent at the throughput (they scale with a measured step time).
    throughput_minutes: dict[str, float] = field(default_factory=dict)
    stage_sources: dict[str, str] = field(default_factory=dict)  # stage -> "measured" (else the model)
    extras: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """'Estimated Duration: 12-15 hours, Estimated Cost: $50-60' (seed 002's wording)."""
        return (f"Estimated Duration: {format_duration(self.duration_minutes)}, "
                f"Estimated Cost: {format_money_range(self.cost)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; money as strings ("52.40") so DecimalFields take them exactly."""
        return {
            "stages": {k: round(v, 2) for k, v in self.stages.items()},
            "throughput_minutes": {k: round(v, 3) for k, v in self.throughput_minutes.items()},
            "stage_sources": dict(self.stage_sources),
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
    throughput_minutes = {"training": (train_tokens + eval_work) / tps / 60.0,
                          "validation": validation_work / tps / 60.0}
    stages = {
        "startup": inputs.startup_minutes,
        "preprocessing": PREPROCESSING_BASE_MINUTES
        + PREPROCESSING_MINUTES_PER_MILLION_TOKENS * inputs.dataset_tokens / 1e6,
        "model_loading": inputs.model_loading_minutes * max(size, MODEL_LOADING_FLOOR),
        "training": throughput_minutes["training"],
        "validation": inputs.validation_minutes * max(size, MODEL_LOADING_FLOOR) + throughput_minutes["validation"],
    }
    stage_sources: dict[str, str] = {}
    for stage, minutes in inputs.measured_stage_minutes.items():
        if stage in MEASURABLE_STAGES and math.isfinite(minutes) and minutes >= 0:
            stages[stage] = float(minutes)
            stage_sources[stage] = "measured"
            if stage == "validation":  # measured whole: nothing left to scale
                throughput_minutes["validation"] = 0.0
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
        throughput_minutes=throughput_minutes,
        stage_sources=stage_sources,
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


# --- What is left of a running job ------------------------------------------------------------

# The estimate's stage for each job status before the end (the estimate folds finalizing into
# validation, and counts everything before the worker's first stage as startup).
STATUS_STAGES: dict[str, str] = {
    "pending": "startup", "queued": "startup", "provisioning": "startup", "recovering": "startup",
    "preprocessing": "preprocessing", "model_loading": "model_loading", "training": "training",
    "finalizing": "validation", "validating": "validation",
}


@dataclass(frozen=True)
class Progress:
    """Where a running job is, as its last heartbeat and its estimate say.

    `stage_minutes` / `throughput_minutes` / `estimated_total_steps` are the job's estimate
    (Estimate.to_dict's "stages", "throughput_minutes", "total_steps"); the rest is what the
    worker measured: the mean seconds of a training step so far, the validation's samples done
    of its total and the seconds one took. Any measurement may be missing (not yet known).
    """

    status: str
    stage_elapsed_seconds: float
    stage_minutes: Mapping[str, float]
    throughput_minutes: Mapping[str, float] = field(default_factory=dict)
    estimated_total_steps: int = 0
    step: int | None = None
    total_steps: int | None = None
    seconds_per_step: float | None = None
    validation_done: int | None = None
    validation_total: int | None = None
    seconds_per_validation_sample: float | None = None


@dataclass(frozen=True)
class Remaining:
    stage_seconds: float  # what is left of the current stage
    total_seconds: float  # of the whole job: the current stage and every later one
    basis: str  # "measured" (the worker's step or sample times) or "estimate" (nothing measured yet)
    overdue: bool  # the stage has run past its estimate and nothing measured says by how much


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


def speed_factor(p: Progress) -> float | None:
    """Measured seconds per step over the estimate's (>1: this machine is slower than
    estimated); None until a step has been measured or when the estimate has no training."""
    measured = _positive(p.seconds_per_step)
    train_seconds = _positive(p.stage_minutes.get("training"))
    if measured is None or train_seconds is None or p.estimated_total_steps <= 0:
        return None
    # An estimate of under a microsecond a step (a subnormal or rounding-to-nothing estimate)
    # says nothing about speed; dividing by it would give an infinite factor.
    estimated = train_seconds * 60.0 / p.estimated_total_steps
    if not estimated >= 1e-6:
        return None
    return measured / estimated


def stage_seconds_expected(p: Progress, stage: str, factor: float) -> float:
    """A stage's whole expected duration: the estimate, its throughput-bound share scaled by
    `factor` (and training by the steps the worker reported over those the estimate counted)."""
    minutes = max(float(p.stage_minutes.get(stage) or 0.0), 0.0)
    bound = min(max(float(p.throughput_minutes.get(stage, minutes if stage == "training" else 0.0) or 0.0), 0.0),
                minutes)
    if stage == "training" and p.total_steps and p.estimated_total_steps > 0:
        bound *= p.total_steps / p.estimated_total_steps
        minutes = bound
    return ((minutes - bound) + bound * factor) * 60.0


def remaining_time(p: Progress) -> Remaining | None:
    """What is left of the current stage and of the whole job; None for a finished job.

    Measured beats estimated: a training stage with a measured step time has (total - step) x
    that time left; a validation with a measured sample time, (total - done) x that. Before
    any measurement a stage has its estimate less the time already spent in it (never below
    zero: `overdue` then says the estimate ran out). Later stages keep their estimates, their
    throughput-bound share scaled by how much slower or faster the measured steps run.
    """
    stage = STATUS_STAGES.get(p.status)
    if stage is None:
        return None
    factor = speed_factor(p)
    scale = factor if factor is not None else 1.0
    elapsed = max(p.stage_elapsed_seconds, 0.0) if math.isfinite(p.stage_elapsed_seconds) else 0.0
    basis, overdue = "estimate", False
    per_step, per_sample = _positive(p.seconds_per_step), _positive(p.seconds_per_validation_sample)
    if stage == "training" and per_step is not None:
        total = p.total_steps or p.estimated_total_steps
        current = per_step * max(total - (p.step or 0), 0)
        basis = "measured"
    elif (stage == "validation" and p.status == "validating" and per_sample is not None
          and p.validation_total is not None):
        current = per_sample * max(p.validation_total - (p.validation_done or 0), 0)
        basis = "measured"
    else:
        expected = stage_seconds_expected(p, stage, scale)
        if stage == "training" and p.step and p.total_steps:  # resumed: only the steps still to run
            expected *= max(p.total_steps - p.step, 0) / p.total_steps
        current = max(expected - elapsed, 0.0)
        overdue = elapsed > expected
    later = STAGES[STAGES.index(stage) + 1:]
    total_seconds = current + sum(stage_seconds_expected(p, s, scale) for s in later)
    return Remaining(stage_seconds=current, total_seconds=total_seconds, basis=basis, overdue=overdue)
