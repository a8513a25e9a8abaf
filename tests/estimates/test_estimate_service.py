"""estimate_for: settings + database in, the stored estimate out; the prior against seed 002."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from training.lifecycle import Status
from training.models import BaseModel, HyperparameterPreset, MetricPoint, TrainingFile, TrainingJob
from training.services.estimate import estimate_for

pytestmark = pytest.mark.django_db


def make_dataset(records: int = 1000, tokens_per_record: int = 600, name: str = "seed-sized") -> TrainingFile:
    return TrainingFile.objects.create(
        name=name, file=f"datasets/{name}.jsonl", sha256=name.ljust(64, "0")[:64],
        validation_status=TrainingFile.ValidationStatus.VALID, format="messages", record_count=records,
        token_stats={"conversations": records, "total_tokens": records * tokens_per_record,
                     "trainable_tokens": records * tokens_per_record // 2, "max_seq_length": 2048},
    )


@pytest.fixture
def llama() -> BaseModel:
    return BaseModel.objects.get(slug="llama-3-70b-instruct")


def estimate(dataset, model, preset_slug: str, tier: str = "spot") -> dict:
    preset = HyperparameterPreset.objects.get(slug=preset_slug)
    return estimate_for(training_file=dataset, base_model=model, hyperparameters=preset.hyperparameters(),
                        gpu_type="H100_PCIE_80GB", pricing_tier=tier)


def test_balanced_on_a_seed_sized_dataset_costs_tens_of_dollars_on_spot(llama):
    result = estimate(make_dataset(), llama, "balanced")
    assert Decimal("10") <= Decimal(result["cost"]["expected"]) < Decimal("100")
    # Seed 002: "Balanced ... 12-15 hours" for Llama 3 70B on H100.
    assert 11 * 60 <= result["duration_minutes"]["expected"] <= 15 * 60
    assert result["throughput"]["source"] == "prior"
    assert result["price_per_hour"] == "2.49"
    assert "(spot)" in result["summary"]


def test_the_presets_are_ordered_by_cost_and_match_the_briefs_durations(llama):
    dataset = make_dataset()
    hours = {slug: estimate(dataset, llama, slug)["duration_minutes"]["expected"] / 60
             for slug in ("conservative", "balanced", "aggressive")}
    assert 8 <= hours["conservative"] <= 10
    assert 12 <= hours["balanced"] <= 15
    assert 16 <= hours["aggressive"] <= 20
    assert hours["conservative"] < hours["balanced"] < hours["aggressive"]


def test_on_demand_costs_more_for_the_same_duration(llama):
    dataset = make_dataset()
    spot, on_demand = estimate(dataset, llama, "balanced"), estimate(dataset, llama, "balanced", "on_demand")
    assert spot["duration_minutes"] == on_demand["duration_minutes"]
    assert Decimal(on_demand["cost"]["expected"]) > Decimal(spot["cost"]["expected"]) * 3


def test_the_result_is_json_and_create_job_can_store_it(llama, staff):
    from training.services.jobs import create_job

    dataset = make_dataset()
    result = estimate(dataset, llama, "balanced")
    json.dumps(result)
    job = create_job(user=staff, training_file=dataset, base_model=llama,
                     preset=HyperparameterPreset.objects.get(slug="balanced"),
                     overrides={"executor": "runpod"})
    job.refresh_from_db()
    assert job.cost_estimate == Decimal(job.estimate["cost"]["expected"])
    assert job.cost_estimate_low <= job.cost_estimate <= job.cost_estimate_high
    assert job.estimated_duration_minutes == round(job.estimate["duration_minutes"]["expected"])


def test_measured_throughput_replaces_the_prior_once_jobs_have_completed(llama, staff):
    dataset = make_dataset()
    prior = estimate(dataset, llama, "balanced")

    def completed(name, **fields):
        return TrainingJob.objects.create(training_file=dataset, base_model=llama, name=name, status=Status.COMPLETED,
                                          gpu_type="H100_PCIE_80GB", created_by=staff, **fields)

    # Twice the prior's speed, reported by the worker's summary (tokens / runtime) ...
    fast = prior["throughput"]["tokens_per_second"] * 2
    completed("a", results={"final": {"summary": {"tokens_trained": fast * 1000, "train_runtime_s": 1000}}})
    completed("b", results={"final": {"summary": {"tokens_trained": fast * 3000, "train_runtime_s": 3000}}})
    # ... and by metric points only, for a job whose summary is missing.
    job = completed("c")
    MetricPoint.objects.bulk_create([MetricPoint(job=job, step=i, tokens_per_second=fast) for i in range(1, 4)])
    # Another GPU and an unfinished job do not count.
    slow = {"final": {"summary": {"tokens_trained": 1, "train_runtime_s": 1000}}}
    other = completed("other gpu", results=slow)
    TrainingJob.objects.filter(pk=other.pk).update(gpu_type="CPU_LOCAL")
    running = completed("running", results=slow)
    TrainingJob.objects.filter(pk=running.pk).update(status=Status.TRAINING)

    measured = estimate(dataset, llama, "balanced")
    assert measured["throughput"]["source"] == "measured"
    assert measured["throughput"]["note"] == "measured from 3 jobs"
    assert measured["throughput"]["tokens_per_second"] == pytest.approx(fast, rel=1e-3)
    assert measured["stages"]["training"] == pytest.approx(prior["stages"]["training"] / 2, rel=1e-3)
    assert (measured["band"]["low"], measured["band"]["high"]) == (0.85, 1.15)


def test_a_dataset_without_token_counts_is_estimated_from_its_rough_count(llama):
    dataset = make_dataset()
    dataset.token_stats = {"error": "no tokenizer", "estimated_total_tokens": 600_000, "conversations": 1000}
    dataset.save()
    rough = estimate(dataset, llama, "balanced")
    assert rough["dataset_tokens"] == 600_000
    assert Decimal(rough["cost"]["expected"]) > 0


def test_the_embedded_model_on_the_cpu_is_free(staff):
    smol = BaseModel.objects.get(slug="smollm2-135m-instruct")
    result = estimate_for(training_file=make_dataset(50, 200), base_model=smol,
                          hyperparameters=HyperparameterPreset.objects.get(slug="conservative").hyperparameters(),
                          gpu_type="CPU_LOCAL", pricing_tier="spot")
    assert result["cost"] == {"low": "0.00", "expected": "0.00", "high": "0.00"}
    assert result["duration_minutes"]["expected"] < 60


def test_the_embedded_default_on_cpu_starts_in_seconds_and_validates_in_under_a_minute():
    """The demo: a local process, not a pod, and a 135M model's adapter, not a 70B one's (the
    fresh-clone demo measured 3 s from launch to the worker's first stage and 20 s validating)."""
    smollm2 = BaseModel.objects.get(slug="smollm2-135m-instruct")
    preset = HyperparameterPreset.objects.get(slug="balanced")
    result = estimate_for(training_file=make_dataset(64, 745, "demo-sized"), base_model=smollm2,
                          hyperparameters=preset.hyperparameters(), gpu_type="CPU_LOCAL", pricing_tier="spot")
    assert result["stages"]["startup"] == pytest.approx(0.1)
    assert result["stages"]["validation"] < 1.0
    llama = estimate(make_dataset(), BaseModel.objects.get(slug="llama-3-70b-instruct"), "balanced")
    assert llama["stages"]["startup"] == 4.0  # a pod: ESTIMATE_OVERHEAD_MINUTES
    assert llama["stages"]["validation"] > 8.0  # the 70B reference's constant, plus its forward passes
