"""The presets' learning rates carried over model sizes (gpu_worker.config.scaled_learning_rate)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_worker.config import ConfigError, WorkerConfig, scaled_learning_rate

rates = st.floats(min_value=1e-7, max_value=1e-1)
widths = st.integers(min_value=1, max_value=65536)


def test_the_reference_width_trains_at_the_configured_rate():
    assert scaled_learning_rate(2e-4, "width", 4096) == 2e-4


def test_it_reproduces_the_qlora_papers_choices_and_scales_the_embedded_model():
    # QLoRA (Dettmers et al. 2023) used 2e-4 for 7B (hidden 4,096) and 1e-4 for 65B (8,192).
    assert scaled_learning_rate(2e-4, "width", 8192) == pytest.approx(1e-4)
    # SmolLM2-135M (hidden 576): the Balanced preset's 2e-4 becomes about 1.42e-3.
    assert scaled_learning_rate(2e-4, "width", 576) == pytest.approx(2e-4 * 4096 / 576)


@given(rates, widths)
def test_the_factor_stays_within_an_eighth_and_eight(rate, width):
    factor = scaled_learning_rate(rate, "width", width) / rate
    assert 1 / 8 - 1e-12 <= factor <= 8 + 1e-12


@given(rates, widths, widths)
def test_a_wider_model_never_trains_faster(rate, a, b):
    narrow, wide = sorted((a, b))
    assert scaled_learning_rate(rate, "width", wide) <= scaled_learning_rate(rate, "width", narrow) * (1 + 1e-12)


@given(rates, widths)
def test_none_and_unknown_widths_leave_the_rate_alone(rate, width):
    assert scaled_learning_rate(rate, "none", width) == rate
    assert scaled_learning_rate(rate, "width", None) == rate
    assert math.isfinite(scaled_learning_rate(rate, "width", width))


def test_an_unknown_rule_is_refused_by_name():
    with pytest.raises(ConfigError, match="learning_rate_scaling"):
        WorkerConfig.from_dict({"job_id": "j", "dataset": "d.jsonl", "learning_rate_scaling": "sqrt"})
