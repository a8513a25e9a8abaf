"""Job operations users perform: create, start, cancel, retry, delete.

Each validates, changes state through lifecycle.transition, and enqueues follow-up work with
transaction.on_commit so a task never runs against a row its transaction has not committed.
"""

from __future__ import annotations

import math
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gpu_worker.config import ConfigError, WorkerConfig

from .. import defaults
from ..events import record_event
from ..executors import EXECUTORS
from ..lifecycle import TERMINAL, IllegalTransition, Status, refusal, transition
from ..models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    JobEvent,
    Tag,
    TrainingFile,
    TrainingJob,
)
from .estimate import estimate_for_configuration
from .launching import launch_job
from .stopping import stop_job_execution

# Job-level options a configuration may carry besides the worker's hyperparameters.
JOB_OPTIONS = ("executor", "gpu_type", "gpu_pricing_tier")
# Worker fields a user may set; everything else (ids, URLs, secrets, stores) is the system's.
USER_HYPERPARAMETERS = frozenset(
    {
        "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "learning_rate_scaling", "num_epochs",
        "per_device_batch_size", "gradient_accumulation_steps", "max_seq_length", "warmup_ratio",
        "lr_scheduler", "weight_decay", "max_grad_norm", "seed", "max_steps", "eval_split",
        "eval_interval", "early_stopping_patience", "checkpoint_interval", "keep_checkpoints",
        "quantization", "gradient_checkpointing", "evaluators", "validation_max_samples",
        "memory_limit_mb", "logging_steps", "precision", "validation_max_new_tokens",
        "validation_batch_size",
    }
)
assert {f.name for f in dataclass_fields(WorkerConfig)} >= USER_HYPERPARAMETERS


def resolve_configuration(
    *,
    base_model: BaseModel,
    preset: HyperparameterPreset | None = None,
    template: ConfigurationTemplate | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Preset, then template, then the caller's overrides; validated as the worker would.

    Raises ValidationError naming the field and what to do.
    """
    hyper: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if preset is not None:
        hyper.update(preset.hyperparameters())
    for source in (template.configuration if template else {}, overrides or {}):
        for key, value in source.items():
            if key == "hyperparameters" and isinstance(value, dict):
                source_items = value.items()
            else:
                source_items = [(key, value)]
            for k, v in source_items:
                if k in JOB_OPTIONS:
                    options[k] = v
                elif k in USER_HYPERPARAMETERS:
                    hyper[k] = v
                else:
                    raise ValidationError(
                        {k: f"'{k}' is not a setting you can change. Settable: {', '.join(sorted(USER_HYPERPARAMETERS | set(JOB_OPTIONS)))}."}
                    )
    try:
        WorkerConfig.from_dict({"job_id": "validation", "dataset": "validation", **hyper})
    except (ConfigError, TypeError) as exc:
        field = str(exc).split(":", 1)[0] if ":" in str(exc) else "configuration"
        raise ValidationError({field: str(exc)}) from exc
    executor = options.get("executor", defaults.default_executor())
    if executor not in EXECUTORS:
        raise ValidationError({"executor": f"'{executor}' is not an executor; use {' or '.join(EXECUTORS.kinds())}."})
    gpu_type = options.get("gpu_type") or defaults.default_gpu_type(executor, base_model)
    if gpu_type not in settings.GPU_TABLE:
        raise ValidationError({"gpu_type": f"'{gpu_type}' is not a known GPU; use one of {', '.join(settings.GPU_TABLE)}."})
    tier = options.get("gpu_pricing_tier", defaults.DEFAULT_PRICING_TIER)
    if tier not in TrainingJob.PricingTier.values:
        raise ValidationError({"gpu_pricing_tier": "use spot or on_demand."})
    return {
        "base_model": base_model.model_id,
        "hyperparameters": hyper,
        "executor": executor,
        "gpu_type": gpu_type,
        "gpu_pricing_tier": tier,
    }


def default_checkpoint_interval(total_steps: int, every: int | None = None) -> int:
    """Every `every` steps (CHECKPOINT_INTERVAL_STEPS, 100), but at least ~10 checkpoints per job:
    a short job checkpointing every 100 steps would never checkpoint and lose everything when
    interrupted."""
    every = settings.CHECKPOINT_INTERVAL_STEPS if every is None else every
    return max(1, min(every, math.ceil(total_steps / 10)))


# The largest estimate a job row stores (cost_estimate*: DecimalField(max_digits=10, decimal_places=2);
# estimated_duration_minutes: PositiveIntegerField).
MAX_STORABLE_COST = Decimal("99999999.99")
MAX_STORABLE_MINUTES = 2_147_483_647


def refuse_unstorable_estimate(estimate: dict[str, Any], hyper: dict[str, Any]) -> None:
    """A job too big for its own estimate's columns (max_steps=10**12, num_epochs=1e9) is a typo,
    not a job: refuse it on the setting that made it so, before anything is written, instead of
    failing on the database column (a 500)."""
    cost = max(Decimal(str(estimate["cost"][k] or 0)) for k in ("expected", "low", "high"))
    minutes = float(estimate["duration_minutes"]["expected"] or 0)
    if cost <= MAX_STORABLE_COST and minutes <= MAX_STORABLE_MINUTES:
        return
    field = "max_steps" if hyper.get("max_steps") else "num_epochs"
    raise ValidationError({field: (
        f"this makes the job {int(estimate['total_steps']):,} steps, estimated at ${cost:,.0f} over "
        f"{minutes / 60 / 24:,.0f} days, more than any job can be; lower {field}.")})


def create_job(
    *,
    user,
    training_file: TrainingFile,
    base_model: BaseModel | None = None,
    preset: HyperparameterPreset | None = None,
    template: ConfigurationTemplate | None = None,
    overrides: dict[str, Any] | None = None,
    name: str = "",
    description: str = "",
    notes: str = "",
    client: str = "",
    project: str = "",
    tags: list[str] | None = None,
    parent: TrainingJob | None = None,
) -> TrainingJob:
    defaults.require_trainable(training_file)
    if template is not None:
        base_model = base_model or template.base_model
        preset = preset or template.preset
    if base_model is None:
        base_model = defaults.default_base_model()
    preset = defaults.preset_for(preset, template=template, overrides=overrides)
    configuration = resolve_configuration(base_model=base_model, preset=preset, template=template, overrides=overrides)
    estimate = estimate_for_configuration(training_file=training_file, base_model=base_model,
                                          configuration=configuration)
    hyper = configuration["hyperparameters"]
    refuse_unstorable_estimate(estimate, hyper)
    if "checkpoint_interval" not in hyper and parent is None:  # a retry keeps its parent's settings
        hyper["checkpoint_interval"] = default_checkpoint_interval(estimate["total_steps"])
    with transaction.atomic():
        job = TrainingJob.objects.create(
            training_file=training_file,
            base_model=base_model,
            preset=preset,
            template=template,
            parent=parent,
            name=name or f"{training_file.name} · {preset.name if preset else 'custom'} · {timezone.now():%Y-%m-%d %H:%M}",
            description=description,
            notes=notes,
            client=client,
            project=project,
            configuration=configuration,
            executor=configuration["executor"],
            gpu_type=configuration["gpu_type"],
            gpu_pricing_tier=configuration["gpu_pricing_tier"],
            estimate=estimate,
            cost_estimate=estimate["cost"]["expected"],
            cost_estimate_low=estimate["cost"]["low"],
            cost_estimate_high=estimate["cost"]["high"],
            estimated_duration_minutes=round(estimate["duration_minutes"]["expected"]),
            created_by=user,
        )
        if tags:
            job.tags.set([Tag.objects.get_or_create(name=t.strip().lower())[0] for t in tags if t.strip()])
        if template is not None:
            template.record_use()
        record_event(job.pk, JobEvent.Type.ACTION, source="user",
                     payload={"action": "created", "by": getattr(user, "username", None)})
    return job


def start_job(job: TrainingJob, *, user=None) -> TrainingJob:
    with transaction.atomic():
        moved = transition(
            job.pk, Status.QUEUED, sources={Status.PENDING}, actor="user",
            message=f"started by {getattr(user, 'username', 'system')}",
            updates={"secret": job.new_secret(), "started_at": timezone.now()},
        )
        if not moved:
            job.refresh_from_db()
            raise refusal("start", job.name, job.status)
        transaction.on_commit(lambda: launch_job.delay(str(job.pk)))
    job.refresh_from_db()
    return job


def cancel_job(job: TrainingJob, *, user=None) -> TrainingJob:
    with transaction.atomic():
        non_terminal = {s for s in Status if s not in TERMINAL}
        moved = transition(job.pk, Status.CANCELLED, sources=non_terminal, actor="user",
                           message=f"cancelled by {getattr(user, 'username', 'system')}")
        if not moved:
            job.refresh_from_db()
            raise refusal("cancel", job.name, job.status)
        transaction.on_commit(lambda: stop_job_execution.delay(str(job.pk)))
    job.refresh_from_db()
    return job


def delete_job(job: TrainingJob) -> None:
    # Delete only while pending, decided by the DELETE's own WHERE clause so a concurrent start
    # cannot slip in between a check and the delete.
    deleted, _ = TrainingJob.objects.filter(pk=job.pk, status=Status.PENDING).delete()
    if not deleted:
        job.refresh_from_db()
        raise refusal("delete", job.name, job.status)


def retry_job(job: TrainingJob, *, user, overrides: dict[str, Any] | None = None) -> TrainingJob:
    """A new job linked to `job`, with the caller's overrides or else the suggested change."""
    if job.status not in (Status.FAILED, Status.CANCELLED):
        raise refusal("retry", job.name, job.status)
    suggested = (job.error_details or {}).get("suggested_config") or {}
    changes = dict(overrides if overrides is not None else suggested)
    merged = {**job.hyperparameters, **changes}
    for key in JOB_OPTIONS:
        merged[key] = changes.get(key, getattr(job, key))
    with transaction.atomic():
        new_job = create_job(
            user=user, training_file=job.training_file, base_model=job.base_model, preset=None,
            overrides=merged, name=f"{job.name} (retry {job.retry_count + 1})", description=job.description,
            notes=job.notes, client=job.client, project=job.project,
            tags=list(job.tags.values_list("name", flat=True)), parent=job,
        )
        new_job.preset = job.preset
        new_job.save(update_fields=["preset"])
        TrainingJob.objects.filter(pk=job.pk).update(retry_count=job.retry_count + 1)
        record_event(job.pk, JobEvent.Type.ACTION, source="user",
                     payload={"action": "retried", "new_job": str(new_job.pk), "changes": config_diff(job, new_job)})
    return new_job


def config_diff(old: TrainingJob, new: TrainingJob) -> dict[str, dict[str, Any]]:
    """Settings that differ between two jobs: {name: {"from": old, "to": new}}."""
    a = {**old.hyperparameters, **{k: getattr(old, k) for k in JOB_OPTIONS}}
    b = {**new.hyperparameters, **{k: getattr(new, k) for k in JOB_OPTIONS}}
    return {k: {"from": a.get(k), "to": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


__all__ = [
    "IllegalTransition", "cancel_job", "config_diff", "create_job", "delete_job",
    "resolve_configuration", "retry_job", "start_job",
]
