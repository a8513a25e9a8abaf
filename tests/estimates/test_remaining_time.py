"""Properties of the remaining-time arithmetic (training.estimate.remaining_time) and of the
measured stage minutes in the estimate: pure, Hypothesis throughout."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from training.estimate import (
    STAGES,
    STATUS_STAGES,
    EstimateInputs,
    Progress,
    estimate_job,
    remaining_time,
    speed_factor,
)

minutes = st.floats(0, 600, allow_nan=False)


@st.composite
def progress_strategy(draw, status=None):
    stages = {stage: draw(minutes) for stage in STAGES}
    throughput = {"training": stages["training"], "validation": draw(st.floats(0, 1)) * stages["validation"]}
    total = draw(st.one_of(st.none(), st.integers(1, 5000)))
    return Progress(
        status=status or draw(st.sampled_from(sorted(STATUS_STAGES))),
        stage_elapsed_seconds=draw(st.floats(0, 100_000, allow_nan=False)),
        stage_minutes=stages,
        throughput_minutes=throughput,
        estimated_total_steps=draw(st.integers(0, 5000)),
        step=draw(st.one_of(st.none(), st.integers(0, total or 5000))),
        total_steps=total,
        seconds_per_step=draw(st.one_of(st.none(), st.floats(0.01, 10_000))),
        validation_done=draw(st.one_of(st.none(), st.integers(0, 100))),
        validation_total=draw(st.one_of(st.none(), st.integers(100, 200))),
        seconds_per_validation_sample=draw(st.one_of(st.none(), st.floats(0.01, 1000))),
    )


@given(progress_strategy())
def test_remaining_time_is_never_negative_and_the_job_outlasts_its_stage(p):
    r = remaining_time(p)
    assert r is not None
    assert math.isfinite(r.total_seconds) and r.stage_seconds >= 0
    assert r.total_seconds >= r.stage_seconds - 1e-6


@given(st.sampled_from(["completed", "failed", "cancelled"]), progress_strategy())
def test_a_finished_job_has_no_remaining_time(status, p):
    assert remaining_time(replace(p, status=status)) is None


@given(progress_strategy(status="training"), st.floats(0.01, 1000), st.integers(1, 5000))
def test_measured_steps_give_steps_left_times_the_step_time(p, per_step, total):
    p = replace(p, seconds_per_step=per_step, total_steps=total)
    for step in (0, total // 2, total):
        r = remaining_time(replace(p, step=step))
        assert r.basis == "measured" and not r.overdue
        assert math.isclose(r.stage_seconds, (total - step) * per_step, rel_tol=1e-9)


@given(progress_strategy(status="training"), st.floats(0.01, 1000), st.integers(2, 5000), st.data())
def test_training_time_left_falls_as_steps_are_done(p, per_step, total, data):
    p = replace(p, seconds_per_step=per_step, total_steps=total)
    earlier = data.draw(st.integers(0, total - 1))
    later = data.draw(st.integers(earlier + 1, total))
    assert remaining_time(replace(p, step=later)).total_seconds <= remaining_time(replace(p, step=earlier)).total_seconds


@given(progress_strategy(status="training"), st.floats(1.01, 100))
def test_slower_measured_steps_never_shorten_the_later_stages(p, slower):
    p = replace(p, seconds_per_step=p.seconds_per_step or 1.0)
    fast = remaining_time(p)
    slow = remaining_time(replace(p, seconds_per_step=p.seconds_per_step * slower))
    assert slow.total_seconds - slow.stage_seconds >= fast.total_seconds - fast.stage_seconds - 1e-6


@given(progress_strategy(status="training"))
def test_steps_as_fast_as_estimated_leave_the_later_stages_as_estimated(p):
    """Calibration is a no-op when the machine runs exactly at the estimate's speed."""
    stages = {**p.stage_minutes, "training": 30.0}
    p = replace(p, stage_minutes=stages, throughput_minutes={**p.throughput_minutes, "training": 30.0},
                estimated_total_steps=120, total_steps=120, step=0, seconds_per_step=15.0)
    assert math.isclose(speed_factor(p), 1.0)
    r = remaining_time(p)
    assert math.isclose(r.total_seconds, (30.0 + stages["validation"]) * 60, rel_tol=1e-9)


@given(progress_strategy(status="validating"), st.floats(0.01, 100), st.integers(1, 500), st.data())
def test_validation_counts_down_its_samples(p, per_sample, total, data):
    done = data.draw(st.integers(0, total))
    r = remaining_time(replace(p, validation_done=done, validation_total=total,
                               seconds_per_validation_sample=per_sample))
    assert r.basis == "measured"
    assert math.isclose(r.stage_seconds, (total - done) * per_sample, rel_tol=1e-9)
    assert r.total_seconds == r.stage_seconds  # validation is the last stage


@given(progress_strategy(status="model_loading"))
def test_an_unmeasured_stage_has_its_estimate_less_the_time_spent(p):
    r = remaining_time(p)
    expected = p.stage_minutes["model_loading"] * 60
    assert r.basis == "estimate"
    assert math.isclose(r.stage_seconds, max(expected - p.stage_elapsed_seconds, 0.0), abs_tol=1e-6)
    assert r.overdue == (p.stage_elapsed_seconds > expected)


def base_inputs() -> EstimateInputs:
    return EstimateInputs(dataset_tokens=40_000, samples=120, num_epochs=1, per_device_batch_size=4,
                          gradient_accumulation_steps=1, max_seq_length=1024, parameter_count=134_515_008,
                          tokens_per_second=300.0, price_per_hour=Decimal("0"))


@given(st.dictionaries(st.sampled_from(["startup", "preprocessing", "model_loading", "validation"]),
                       st.floats(0, 120, allow_nan=False)))
def test_measured_stage_minutes_replace_the_constants_and_say_so(measured):
    plain = estimate_job(base_inputs())
    calibrated = estimate_job(replace(base_inputs(), measured_stage_minutes=measured))
    for stage in STAGES:
        want = measured.get(stage, plain.stages[stage])
        assert math.isclose(calibrated.stages[stage], want, rel_tol=1e-12)
    assert set(calibrated.stage_sources) == set(measured)
    assert calibrated.stages["training"] == plain.stages["training"]  # throughput's, never a constant
