"""The cost/duration estimate of a job configuration: gathers the inputs from the database and
settings, and hands them to the pure `training.estimate.estimate_job`.

Throughput: the GPU table's prior until completed jobs of the same base model on the same GPU
exist; then the median of their measured throughput ("measured from N jobs").
"""

from __future__ import annotations

import statistics
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg

from ..estimate import STATUS_STAGES, EstimateInputs, estimate_job
from ..lifecycle import Status
from ..models import BaseModel, JobEvent, MetricPoint, TrainingFile, TrainingJob

# Only the most recent completed jobs speak for the current hardware and software.
MEASURED_JOBS_LIMIT = 20
# Used when the dataset's tokens could not be counted at all.
FALLBACK_TOKENS_PER_SAMPLE = 512


def estimate_for(
    *,
    training_file: TrainingFile,
    base_model: BaseModel,
    hyperparameters: dict[str, Any],
    gpu_type: str,
    pricing_tier: str,
    samples: int | None = None,
) -> dict[str, Any]:
    """The estimate as a JSON-serialisable dict (see Estimate.to_dict): money as strings such
    as "52.40", everything else ints and floats. Raises KeyError for a GPU not in the table."""
    gpu = settings.GPU_TABLE[gpu_type]
    price = Decimal(str(gpu["on_demand_per_hour"] if pricing_tier == "on_demand" else gpu["spot_per_hour"]))
    tps, source, note = throughput_for(base_model, gpu_type)
    measured_stages, stage_jobs = measured_stage_minutes(base_model, gpu_type)
    samples = samples if samples is not None else (training_file.record_count or _stat(training_file, "conversations"))
    overhead = settings.ESTIMATE_OVERHEAD_MINUTES
    inputs = EstimateInputs(
        dataset_tokens=dataset_tokens(training_file, samples),
        trainable_tokens=_stat(training_file, "trainable_tokens"),
        samples=samples,
        num_epochs=float(hyperparameters.get("num_epochs", 3)),
        per_device_batch_size=int(hyperparameters.get("per_device_batch_size", 4)),
        gradient_accumulation_steps=int(hyperparameters.get("gradient_accumulation_steps", 1)),
        max_seq_length=int(hyperparameters.get("max_seq_length", 2048)),
        max_steps=int(hyperparameters.get("max_steps", -1) or -1),
        eval_split=float(hyperparameters.get("eval_split", 0.2)),
        eval_interval=int(hyperparameters.get("eval_interval", 50)),
        parameter_count=base_model.parameter_count,
        tokens_per_second=tps,
        throughput_source=source,
        throughput_note=note,
        price_per_hour=price,
        startup_minutes=float(gpu.get("startup_minutes", overhead["startup"])),
        model_loading_minutes=overhead["model_loading"],
        validation_minutes=overhead["validation"],
        measured_stage_minutes=measured_stages,
    )
    result = estimate_job(inputs).to_dict()
    if stage_jobs:
        result["stage_note"] = (f"startup, preprocessing, model loading and validation measured on this machine "
                                f"(median of {stage_jobs} completed job{'s' if stage_jobs != 1 else ''})")
    result.update({"gpu_type": gpu_type, "gpu_label": gpu.get("label", gpu_type), "pricing_tier": pricing_tier,
                   "dataset_tokens": inputs.dataset_tokens, "samples": samples})
    result["summary"] += f" ({'on-demand' if pricing_tier == 'on_demand' else 'spot'})"
    return result


def estimate_for_configuration(*, training_file: TrainingFile, base_model: BaseModel,
                               configuration: dict[str, Any]) -> dict[str, Any]:
    """estimate_for() with what resolve_configuration returned (hyperparameters, GPU, tier)."""
    return estimate_for(training_file=training_file, base_model=base_model,
                        hyperparameters=configuration["hyperparameters"], gpu_type=configuration["gpu_type"],
                        pricing_tier=configuration["gpu_pricing_tier"])


def dataset_tokens(training_file: TrainingFile, samples: int) -> int:
    """Total tokens of the dataset; a rough count when the tokenizer could not be used."""
    counted = _stat(training_file, "total_tokens")
    if counted:
        return counted
    return _stat(training_file, "estimated_total_tokens") or samples * FALLBACK_TOKENS_PER_SAMPLE


def _stat(training_file: TrainingFile, key: str) -> int:
    value = (training_file.token_stats or {}).get(key)
    return int(value) if isinstance(value, int | float) else 0


def throughput_for(base_model: BaseModel, gpu_type: str) -> tuple[float, str, str]:
    """(tokens/s, "prior" | "measured", a note saying where the number comes from)."""
    measured = measured_throughputs(base_model, gpu_type)
    if measured:
        n = len(measured)
        return statistics.median(measured), "measured", f"measured from {n} job{'s' if n != 1 else ''}"
    per_billion = float(settings.GPU_TABLE[gpu_type]["tokens_per_second_per_billion_params"])
    billions = max(base_model.parameters_billions, 1e-3)
    tps = per_billion / billions
    if tps <= 0:
        raise ValueError(f"GPU_TABLE[{gpu_type!r}] has no usable throughput prior")
    return tps, "prior", f"prior: {per_billion:g} tokens/s per billion parameters"


def measured_throughputs(base_model: BaseModel, gpu_type: str) -> list[float]:
    """Tokens/s of recent completed jobs of this model on this GPU: from the completed report's
    summary (tokens trained / training runtime) or else the mean of the job's metric points."""
    jobs = list(
        TrainingJob.objects.filter(status=Status.COMPLETED, base_model=base_model, gpu_type=gpu_type)
        .order_by("-completed_at")
        .values_list("pk", "results")[:MEASURED_JOBS_LIMIT]
    )
    rates: list[float] = []
    missing = []
    for pk, results in jobs:
        rate = _summary_rate(results)
        if rate:
            rates.append(rate)
        else:
            missing.append(pk)
    if missing:
        averages = (
            MetricPoint.objects.filter(job_id__in=missing, tokens_per_second__gt=0)
            .values("job_id").annotate(rate=Avg("tokens_per_second")).values_list("rate", flat=True)
        )
        rates.extend(float(r) for r in averages if r)
    return rates


def measured_stage_minutes(base_model: BaseModel, gpu_type: str) -> tuple[dict[str, float], int]:
    """({estimate stage: median minutes}, jobs measured) over recent completed jobs of this model
    on this GPU, from their status_changed events: what those stages really took here."""
    job_ids = list(TrainingJob.objects.filter(status=Status.COMPLETED, base_model=base_model, gpu_type=gpu_type)
                   .order_by("-completed_at").values_list("pk", flat=True)[:MEASURED_JOBS_LIMIT])
    if not job_ids:
        return {}, 0
    changes = (JobEvent.objects.filter(job_id__in=job_ids, event_type=JobEvent.Type.STATUS_CHANGED)
               .order_by("job_id", "received_at", "id").values_list("job_id", "new_status", "received_at"))
    per_job: dict[Any, list[tuple[str, Any]]] = {}
    for job_id, status, at in changes:
        per_job.setdefault(job_id, []).append((status, at))
    samples: dict[str, list[float]] = {}
    for rows in per_job.values():
        spent: dict[str, float] = {}
        for (status, at), (_, until) in zip(rows, rows[1:], strict=False):
            stage = STATUS_STAGES.get(status)
            if stage is not None and stage != "training":
                spent[stage] = spent.get(stage, 0.0) + max((until - at).total_seconds(), 0.0) / 60
        for stage, minutes in spent.items():
            samples.setdefault(stage, []).append(minutes)
    return {stage: statistics.median(values) for stage, values in samples.items()}, len(per_job)


def _summary_rate(results: Any) -> float | None:
    if not isinstance(results, dict):
        return None
    for key in ("final", "completed"):
        summary = (results.get(key) or {}).get("summary") if isinstance(results.get(key), dict) else None
        if isinstance(summary, dict):
            tokens, runtime = summary.get("tokens_trained"), summary.get("train_runtime_s")
            if isinstance(tokens, int | float) and isinstance(runtime, int | float) and tokens > 0 and runtime > 0:
                return float(tokens) / float(runtime)
    return None
