"""Trend functions over a whole history: best step, improvement, overfitting, plateau,
divergence, spikes, stall. Every one is a function of the set of reported points, not of their
order or repetition, and the detectors are causal (later points never erase an earlier find)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.points import Point, canonical, merge_reports, point_from_mapping
from monitoring.trends import (
    best_step,
    detect_divergence,
    detect_overfitting,
    detect_plateau,
    detect_spikes,
    detect_stall,
    find_divergence,
    last_improvement,
    steps_since_improvement,
)

from .curves import (
    T0,
    clean_curve,
    curves,
    odd_losses,
    overfitting_curve,
    shuffled_with_duplicates,
    with_value,
)

FAST = settings(max_examples=60, deadline=None)


def all_findings(points):
    return (best_step(points), steps_since_improvement(points), steps_since_improvement(points, 0.05),
            detect_overfitting(points), detect_plateau(points), detect_divergence(points),
            detect_spikes(points))


@FAST
@given(st.data())
def test_findings_do_not_depend_on_order_or_duplicates(data):
    points = data.draw(curves())
    delivered = data.draw(shuffled_with_duplicates(points))
    assert repr(all_findings(delivered)) == repr(all_findings(points))


@FAST
@given(curves(), st.integers(0, 60))
def test_detectors_are_causal(points, cut):
    """What a prefix of the run shows stays shown when the run goes on (first finds only)."""
    prefix = points[:cut]
    for detector in (detect_overfitting, detect_plateau, detect_divergence):
        found = detector(prefix)
        if found is not None:
            assert detector(points) == found
    assert set(detect_spikes(prefix)) <= set(detect_spikes(points))


reports = st.builds(Point, st.just(7), odd_losses, odd_losses, st.one_of(st.none(), st.floats(0, 1)),
                    st.one_of(st.none(), st.floats(1, 1e4)), st.sampled_from([T0, T0 + 1, T0 + 2]))


@FAST
@given(reports, reports, reports)
def test_merging_reports_does_not_depend_on_their_order_or_resends(a, b, c):
    merged = repr(merge_reports([a, b, c]))
    assert repr(merge_reports([c, a, b, a])) == repr(merge_reports([b, c, a, c])) == merged
    assert repr(canonical([c, a, b])) == repr(canonical([b, b, a, c])) == f"[{merged}]"


def test_a_point_can_be_built_from_a_metric_rows_values():
    from datetime import UTC, datetime

    row = {"step": 40, "train_loss": 1.25, "eval_loss": None, "learning_rate": 2e-4, "grad_norm": 0.7,
           "tokens_per_second": 812.5, "reported_at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert point_from_mapping(row) == Point(40, 1.25, None, 2e-4, 812.5, 1767225600.0)


def test_partial_reports_of_one_step_are_merged():
    train_only = Point(10, 1.5, None, 1e-4, 900.0, T0)
    eval_only = Point(10, None, 1.7, None, None, T0 + 1)
    assert canonical([eval_only, train_only]) == [Point(10, 1.5, 1.7, 1e-4, 900.0, T0 + 1)]


def test_a_later_report_of_a_step_wins_whatever_the_arrival_order():
    first, second = Point(5, 2.0, at=T0), Point(5, 1.8, at=T0 + 60)  # a resumed attempt re-trained step 5
    assert canonical([second, first]) == canonical([first, second]) == [second]


# --- best step and improvement ---

@FAST
@given(curves())
def test_best_step_is_the_lowest_finite_held_out_loss(points):
    finite = [(p.eval_loss, p.step) for p in points if p.eval_loss is not None and math.isfinite(p.eval_loss)]
    found = best_step(points)
    if not finite:
        assert found is None
    else:
        assert found == (min(finite)[1], min(finite)[0])


@FAST
@given(curves())
def test_steps_since_improvement_counts_from_the_best_step(points):
    best = best_step(points)
    since = steps_since_improvement(points)
    if best is None:
        assert since is None
    else:
        assert since == max(p.step for p in points) - best[0] >= 0


@FAST
@given(curves(), st.floats(0.0, 1.0))
def test_min_delta_never_counts_more_improvements_than_there_are_evaluations(points, min_delta):
    found = last_improvement(points, min_delta)
    evaluations = [p for p in canonical(points) if p.eval_loss is not None and math.isfinite(p.eval_loss)]
    if found is None:
        assert not evaluations
    else:
        assert 0 <= found.evaluations_since < len(evaluations)


def test_best_step_prefers_the_earliest_of_equal_losses():
    points = [Point(10, 1.0, 0.9), Point(20, 0.9, 0.9), Point(30, 0.8, 1.0)]
    assert best_step(points) == (10, 0.9)


# --- overfitting, plateau ---

def test_overfitting_onset_is_where_held_out_loss_turns_up():
    assert detect_overfitting(overfitting_curve(best=60)) == 60


def test_a_clean_curve_neither_overfits_nor_plateaus():
    assert detect_overfitting(clean_curve()) is None
    assert detect_plateau(clean_curve()) is None


def test_rising_held_out_loss_with_flat_training_loss_is_not_overfitting():
    points = [Point(s, 1.0, 1.0 + s / 100) for s in range(10, 110, 10)]
    assert detect_overfitting(points) is None


def test_flat_held_out_loss_is_a_plateau_from_the_window_start():
    evals = [2.0, 1.5, 1.2, 1.1, 1.1, 1.101, 1.099, 1.1, 1.1, 1.1]
    points = [Point((i + 1) * 10, 1.0, e) for i, e in enumerate(evals)]
    assert detect_plateau(points, window=5, rel_tol=0.01) == 40


# --- divergence ---

@FAST
@given(curves())
def test_any_nonfinite_loss_is_divergence_at_or_before_it(points):
    bad = [p.step for p in points
           if any(v is not None and not math.isfinite(v) for v in (p.train_loss, p.eval_loss))]
    found = detect_divergence(points)
    if bad:
        assert found is not None and found <= min(bad)


def test_nan_training_loss_is_divergence_at_its_step():
    found = find_divergence(with_value(clean_curve(), 50, train_loss=math.nan))
    assert found is not None and found.step == 50 and "nan" in found.reason


def test_loss_that_triples_and_stays_up_is_divergence():
    points = [Point(s, 1.0 - s / 100) for s in range(1, 21)] + [Point(s, 4.0) for s in range(21, 26)]
    assert detect_divergence(points, factor=3.0, window=10) == 22  # the second high point


def test_a_single_spike_is_not_divergence():
    points = with_value(clean_curve(), 50, train_loss=10.0)
    assert detect_divergence(points) is None


# --- spikes ---

def test_a_single_spike_is_found_once():
    points = with_value(clean_curve(), 50, train_loss=10.0)
    assert detect_spikes(points) == [50]


def test_a_clean_curve_has_no_spikes():
    assert detect_spikes(clean_curve()) == []


@FAST
@given(curves())
def test_spikes_are_steps_with_a_finite_training_loss(points):
    steps = {p.step for p in points if p.train_loss is not None and math.isfinite(p.train_loss)}
    assert set(detect_spikes(points)) <= steps


@FAST
@given(st.lists(st.floats(0.9, 1.1), min_size=25, max_size=40), st.floats(20.0, 100.0))
def test_a_far_outlier_after_a_noisy_but_steady_history_is_a_spike(history, outlier):
    points = [Point(i, v) for i, v in enumerate(history)] + [Point(len(history), outlier)]
    assert detect_spikes(points, window=20, z=4.0)[-1] == len(history)


# --- stall ---

@FAST
@given(st.floats(0, 1e9), st.floats(0, 1e5), st.floats(0, 1e5), st.floats(0.1, 120))
def test_a_stall_stays_a_stall_as_time_passes(last, wait, more, minutes):
    if detect_stall(last, last + wait, minutes):
        assert detect_stall(last, last + wait + more, minutes)
        assert detect_stall(last, last + wait, minutes / 2)


def test_stall_needs_progress_to_have_started_and_minutes_to_pass():
    assert not detect_stall(None, T0, 15)
    assert not detect_stall(T0, T0 + 15 * 60, 15)
    assert detect_stall(T0, T0 + 15 * 60 + 1, 15)
