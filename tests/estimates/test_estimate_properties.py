"""Properties of the pure estimate (training/estimate.py): no database, Hypothesis throughout."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.estimate import EstimateInputs, estimate_job, split_sizes

LLAMA_70B = 70_553_706_496


def inputs_strategy():
    return st.builds(
        EstimateInputs,
        dataset_tokens=st.integers(0, 50_000_000),
        samples=st.integers(0, 100_000),
        num_epochs=st.floats(0.25, 10, allow_nan=False),
        per_device_batch_size=st.integers(1, 32),
        gradient_accumulation_steps=st.integers(1, 32),
        max_seq_length=st.integers(64, 8192),
        parameter_count=st.integers(10_000_000, 400_000_000_000),
        tokens_per_second=st.floats(0.5, 50_000, allow_nan=False),
        price_per_hour=st.decimals(Decimal("0"), Decimal("20"), places=2),
        throughput_source=st.sampled_from(["prior", "measured"]),
        eval_split=st.floats(0.05, 0.5),
        eval_interval=st.integers(0, 500),
    )


@given(inputs_strategy())
def test_low_is_at_most_expected_is_at_most_high(inputs):
    e = estimate_job(inputs)
    assert e.duration_minutes.low <= e.duration_minutes.expected <= e.duration_minutes.high
    assert e.cost.low <= e.cost.expected <= e.cost.high


@given(inputs_strategy())
def test_total_is_the_sum_of_the_stages(inputs):
    e = estimate_job(inputs)
    assert set(e.stages) == {"startup", "preprocessing", "model_loading", "training", "validation"}
    assert math.isclose(e.duration_minutes.expected, sum(e.stages.values()), rel_tol=1e-12)


@given(inputs_strategy(), st.integers(0, 10_000_000))
def test_cost_never_falls_when_the_dataset_grows(inputs, more):
    bigger = replace(inputs, dataset_tokens=inputs.dataset_tokens + more)
    assert estimate_job(bigger).cost.expected >= estimate_job(inputs).cost.expected
    assert estimate_job(bigger).cost.high >= estimate_job(inputs).cost.high


@given(inputs_strategy(), st.floats(0, 5))
def test_cost_never_falls_with_more_epochs(inputs, more):
    longer = replace(inputs, num_epochs=inputs.num_epochs + more)
    assert estimate_job(longer).cost.expected >= estimate_job(inputs).cost.expected


@given(inputs_strategy(), st.decimals(Decimal("0"), Decimal("10"), places=2))
def test_cost_never_falls_with_a_higher_price(inputs, more):
    dearer = replace(inputs, price_per_hour=inputs.price_per_hour + more)
    assert estimate_job(dearer).cost.expected >= estimate_job(inputs).cost.expected


@given(inputs_strategy())
def test_a_free_machine_costs_nothing(inputs):
    e = estimate_job(replace(inputs, price_per_hour=Decimal("0")))
    assert e.cost.low == e.cost.expected == e.cost.high == Decimal("0.00")


@given(inputs_strategy())
def test_cost_is_duration_times_price_in_cents(inputs):
    e = estimate_job(inputs)
    assert e.cost.expected.as_tuple().exponent == -2
    exact = inputs.price_per_hour * Decimal(repr(e.duration_minutes.expected)) / 60
    assert abs(e.cost.expected - exact) <= Decimal("0.005")


@given(
    inputs_strategy().filter(lambda i: i.samples >= 200 and i.dataset_tokens >= 100 * i.samples),
    st.floats(1, 5), st.floats(0.05, 0.3), st.sampled_from([0, 50]),
)
def test_doubling_epochs_roughly_doubles_training_minutes(inputs, epochs, eval_split, eval_interval):
    inputs = replace(inputs, num_epochs=epochs, eval_split=eval_split, eval_interval=eval_interval)
    one = estimate_job(inputs).stages["training"]
    two = estimate_job(replace(inputs, num_epochs=epochs * 2)).stages["training"]
    # Not exactly 2x: held-out evaluations come in whole passes (every eval_interval steps,
    # and once at the end either way).
    assert 1.8 * one <= two <= 2.2 * one


@given(inputs_strategy())
def test_steps_are_optimiser_steps_per_epoch_times_epochs(inputs):
    e = estimate_job(inputs)
    train, _ = split_sizes(inputs.samples, inputs.eval_split)
    per_epoch = math.ceil(train / (inputs.per_device_batch_size * inputs.gradient_accumulation_steps))
    assert e.steps_per_epoch == per_epoch
    assert e.total_steps == math.ceil(per_epoch * inputs.num_epochs - 1e-9)


@given(inputs_strategy(), st.integers(1, 10_000))
def test_max_steps_overrides_epochs(inputs, max_steps):
    assert estimate_job(replace(inputs, max_steps=max_steps)).total_steps == max_steps


@given(inputs_strategy())
def test_measured_throughput_narrows_the_band(inputs):
    prior = estimate_job(replace(inputs, throughput_source="prior"))
    measured = estimate_job(replace(inputs, throughput_source="measured"))
    assert measured.band == (0.85, 1.15) and prior.band == (0.8, 1.35)
    assert math.isclose(measured.duration_minutes.expected, prior.duration_minutes.expected)


@given(inputs_strategy())
def test_the_dict_form_is_json_with_money_as_strings(inputs):
    import json

    d = estimate_job(inputs).to_dict()
    json.dumps(d)
    assert all(isinstance(v, str) for v in d["cost"].values())
    assert Decimal(d["cost"]["expected"]) == estimate_job(inputs).cost.expected


def test_split_sizes_match_the_workers_split():
    from gpu_worker.data import Conversation, split_conversations

    for n in (0, 1, 2, 3, 10, 999, 1000):
        convs = [Conversation([{"role": "user", "content": "x"}], i) for i in range(n)]
        train, held_out = split_conversations(convs, 0.2, 42)
        assert split_sizes(n, 0.2) == (len(train), len(held_out))


def test_zero_throughput_is_refused():
    inputs = EstimateInputs(dataset_tokens=1000, samples=10, num_epochs=1, per_device_batch_size=1,
                            gradient_accumulation_steps=1, max_seq_length=512, parameter_count=LLAMA_70B,
                            tokens_per_second=0, price_per_hour=Decimal("2.49"))
    with pytest.raises(ValueError):
        estimate_job(inputs)
