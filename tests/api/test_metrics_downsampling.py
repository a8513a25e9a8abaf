"""downsample_by_step_ranges keeps the shape of the loss curve in at most N points."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.metric_summaries import downsample_by_step_ranges, summary_level

losses = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))


@st.composite
def histories(draw):
    steps = draw(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=300, unique=True))
    steps.sort()
    return [{"step": step, "train_loss": draw(losses), "eval_loss": None} for step in steps]


def loss_values(points):
    return [p["train_loss"] for p in points if p["train_loss"] is not None]


@given(histories(), st.integers(min_value=4, max_value=400))
def test_it_keeps_at_most_n_points_in_step_order_from_the_input(points, max_points):
    out = downsample_by_step_ranges(points, max_points)

    assert len(out) <= max_points
    assert [p["step"] for p in out] == sorted({p["step"] for p in out})
    ids = {id(p) for p in points}
    assert all(id(p) in ids for p in out)


@given(histories(), st.integers(min_value=4, max_value=400))
def test_it_keeps_the_first_last_lowest_and_highest_points(points, max_points):
    out = downsample_by_step_ranges(points, max_points)

    assert out[0] is points[0] and out[-1] is points[-1]
    if loss_values(points):
        assert min(loss_values(out)) == min(loss_values(points))
        assert max(loss_values(out)) == max(loss_values(points))


@given(histories())
def test_a_short_history_comes_back_whole(points):
    assert downsample_by_step_ranges(points, len(points) + 4) == points


@given(st.permutations(list(range(50))))
def test_it_orders_by_step_whatever_the_input_order(steps):
    points = [{"step": s, "train_loss": float(s % 7)} for s in steps]

    out = downsample_by_step_ranges(points, 10)

    assert [p["step"] for p in out] == sorted(p["step"] for p in out)
    assert out[0]["step"] == 0 and out[-1]["step"] == 49


def test_it_ignores_nan_losses_when_choosing_extremes():
    points = [{"step": i, "train_loss": float("nan") if i == 5 else float(i)} for i in range(20)]

    out = downsample_by_step_ranges(points, 4)  # one range of 32 steps: first, last, lowest, highest

    assert [p["step"] for p in out] == [0, 19]
    points[0]["train_loss"] = 50.0
    assert [p["step"] for p in downsample_by_step_ranges(points, 4)] == [0, 1, 19]


@pytest.mark.parametrize("max_points", [0, 1, 3])
def test_it_refuses_fewer_than_four_points(max_points):
    with pytest.raises(ValueError, match="at least 4"):
        downsample_by_step_ranges([{"step": 1, "train_loss": 1.0}], max_points)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 600))
def test_the_level_is_the_finest_that_fits(a, b, buckets):
    first, last = min(a, b), max(a, b)
    level = summary_level(first, last, buckets)
    assert (last >> level) - (first >> level) + 1 <= buckets
    if level > 1:
        assert (last >> (level - 1)) - (first >> (level - 1)) + 1 > buckets
