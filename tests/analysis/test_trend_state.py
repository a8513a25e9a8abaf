"""update_trend_state(): the webhook's incremental analysis. Batches may be resent, split or
reordered; within the settle window the outcome is exactly the sorted stream's, and beyond it
the order-free parts (best step, milestones, NaN divergence) still are."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.points import Point, canonical
from monitoring.recommendation import recommend, recommend_from_state, trend_summary
from monitoring.trend_state import TrendConfig, TrendState, update_trend_state
from monitoring.trends import best_step, detect_overfitting, detect_plateau, detect_spikes

from .curves import (
    T0,
    batches,
    bounded_reorder,
    clean_curve,
    curves,
    overfitting_curve,
    shuffled_with_duplicates,
    with_value,
)

FAST = settings(max_examples=60, deadline=None)
TOTAL = 400


def run(deliveries, *, state=None, final=False, total_steps=TOTAL):
    """Feed batches one by one (through JSON, as the webhook stores the state)."""
    state = state or TrendState()
    reported = []
    for batch in deliveries:
        state, new = update_trend_state(state, batch, total_steps=total_steps)
        reported += new
        state = TrendState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))
    if final:
        state, new = update_trend_state(state, [], total_steps=total_steps, final=True)
        reported += new
    return state, reported


def where(anomalies, kind):
    return [a.step for a in anomalies if a.kind == kind]


# --- order, duplicates, batching ---

@FAST
@given(st.data())
def test_reordering_within_the_settle_window_gives_the_sorted_streams_analysis(data):
    points = data.draw(curves())
    k = TrendConfig().settle_points
    delivered = data.draw(bounded_reorder(points, k))
    final = data.draw(st.booleans())
    expected_state, expected = run([canonical(points)], final=final)
    state, reported = run(data.draw(batches(delivered)), final=final)
    assert state.to_dict() == expected_state.to_dict()
    assert {a.kind for a in reported} == {a.kind for a in expected}
    # NaN divergence is reported the moment it is seen, so only its kind is order-free.
    assert sorted((a.kind, a.step) for a in reported if a.kind != "divergence") == \
        sorted((a.kind, a.step) for a in expected if a.kind != "divergence")


@FAST
@given(st.data())
def test_conflicting_reports_of_a_step_merge_the_same_way_in_any_order_within_the_window(data):
    points = data.draw(curves())
    delivered = data.draw(bounded_reorder(points, TrendConfig().settle_points, rereports=True))
    expected_state, expected = run([sorted(delivered, key=lambda p: p.step)], final=True)
    state, reported = run(data.draw(batches(delivered)), final=True)
    assert state.to_dict() == expected_state.to_dict()
    assert sorted((a.kind, a.step) for a in reported if a.kind != "divergence") == \
        sorted((a.kind, a.step) for a in expected if a.kind != "divergence")
    assert where(reported, "spike") == detect_spikes(delivered)


@FAST
@given(st.data())
def test_any_order_keeps_the_order_free_parts(data):
    points = data.draw(curves())
    state, reported = run(data.draw(batches(data.draw(shuffled_with_duplicates(points)))))
    expected_state, expected = run([points])
    assert (state.best_step, state.max_step, state.milestones) == \
        (expected_state.best_step, expected_state.max_step, expected_state.milestones)
    assert (state.best_step, state.best_eval_loss) == (best_step(points) or (None, None))
    assert ("divergence" in {a.kind for a in reported}) >= \
        any(v is not None and not math.isfinite(v) for p in points for v in (p.train_loss, p.eval_loss))
    assert where(reported, "milestone") == where(expected, "milestone")
    keys = [(a.kind, a.step) for a in reported if a.kind in ("spike", "new_best", "milestone")]
    assert len(keys) == len(set(keys))
    assert sum(a.kind in ("divergence", "overfitting", "plateau") for a in reported) == \
        len({a.kind for a in reported} & {"divergence", "overfitting", "plateau"})


@FAST
@given(curves())
def test_the_final_analysis_agrees_with_the_batch_functions(points):
    config = TrendConfig()
    state, reported = run([points], final=True)
    assert where(reported, "spike") == detect_spikes(points, config.spike_window, config.spike_z)
    assert where(reported, "overfitting") == [o for o in [detect_overfitting(points, config.overfit_window)] if o is not None]
    assert where(reported, "plateau") == [o for o in [detect_plateau(points, config.plateau_window)] if o is not None]
    running = []
    for p in canonical(points):
        if p.eval_loss is not None and math.isfinite(p.eval_loss) and (not running or p.eval_loss < running[-1][1]):
            running.append((p.step, p.eval_loss))
    assert where(reported, "new_best") == [s for s, _ in running]
    assert state.pending == []


@FAST
@given(st.data())
def test_the_incremental_recommendation_is_the_whole_history_recommendation(data):
    """recommend_from_state (what the API and dashboard show, no history read) equals
    recommend() over the whole history once the run has ended, however the points were batched
    and reordered within the settle window."""
    points = data.draw(curves())
    delivered = data.draw(bounded_reorder(points, TrendConfig().settle_points))
    state, _ = run(data.draw(batches(delivered)), final=True)
    assert recommend_from_state(state) == recommend(points, patience=TrendConfig().patience)


@FAST
@given(curves(), st.integers(0, 60))
def test_the_recommendation_mid_run_is_that_of_the_analysed_points(points, cut):
    """Mid-run the incremental recommendation is recommend() over the points analysed so far
    (all but the last settle_points steps), plus any NaN/inf loss: divergence is known at once."""
    sent = points[:cut]
    state, _ = run([sent])

    def nonfinite(x):
        return x is not None and not math.isfinite(x)

    analysed = [p for p in sent if (state.settled_step is not None and p.step <= state.settled_step)
                or nonfinite(p.train_loss) or nonfinite(p.eval_loss)]
    assert recommend_from_state(state) == recommend(analysed, patience=TrendConfig().patience)


def test_the_summary_names_the_best_step_and_the_advice():
    state, _ = run([overfitting_curve()], final=True)
    summary = trend_summary(state)
    assert summary["best_step"] == 60 and summary["overfitting_since_step"] is not None
    assert summary["recommendation"]["action"] == "use_checkpoint"
    assert summary["recommendation"]["checkpoint_step"] == 60
    assert summary["steps_since_improvement"] == 150 - 60
    json.dumps(summary, allow_nan=False)
    empty = trend_summary(TrendState())
    assert empty["recommendation"]["action"] == "continue" and empty["best_step"] is None


@FAST
@given(curves())
def test_resending_everything_reports_nothing_new(points):
    state, _ = run([points], final=False)
    _, again = update_trend_state(state, points, total_steps=TOTAL)
    assert again == []


@FAST
@given(curves())
def test_the_state_survives_json(points):
    state, _ = run([points])
    text = json.dumps(state.to_dict(), allow_nan=False)  # PostgreSQL's JSONB refuses NaN
    assert TrendState.from_dict(json.loads(text)).to_dict() == state.to_dict()


def test_update_does_not_modify_the_state_it_is_given():
    state = TrendState()
    before = state.to_dict()
    update_trend_state(state, clean_curve(), total_steps=120)
    assert state.to_dict() == before


# --- hand-built curves ---

def test_a_clean_curve_reports_only_new_bests_and_milestones():
    state, reported = run([clean_curve()[:60], clean_curve()[60:]], final=True, total_steps=120)
    assert {a.kind for a in reported} == {"new_best", "milestone"}
    assert all(a.severity == "info" for a in reported)
    assert where(reported, "milestone") == [30, 60, 90, 120]
    assert state.best_step == 120 and state.evaluations_since_improvement == 0


def test_an_overfitting_curve_reports_the_onset_once():
    points = overfitting_curve(best=60)
    _, reported = run([points[i:i + 7] for i in range(0, len(points), 7)], final=True)
    overfitting = [a for a in reported if a.kind == "overfitting"]
    assert len(overfitting) == 1
    assert overfitting[0].step == 60 and overfitting[0].severity == "warning"
    assert "checkpoint at step 60" in overfitting[0].suggested_action


def test_a_nan_is_a_critical_divergence_reported_at_once():
    points = with_value(clean_curve(), 50, train_loss=math.nan)
    state, first = update_trend_state(TrendState(), points[:50])
    divergence = [a for a in first if a.kind == "divergence"]
    assert len(divergence) == 1 and divergence[0].severity == "critical" and divergence[0].step == 50
    _, later = update_trend_state(state, [Point(51, math.inf, at=T0 + 51)])
    assert not [a for a in later if a.kind == "divergence"]  # once per job


def test_a_single_spike_is_one_spike_anomaly():
    points = with_value(clean_curve(), 50, train_loss=10.0)
    _, reported = run([points[:40], points[40:52], points[52:]], final=True)
    spikes = [a for a in reported if a.kind == "spike"]
    assert [(a.step, a.severity) for a in spikes] == [(50, "warning")]
    assert "divergence" not in {a.kind for a in reported}


def test_a_stall_is_reported_once_until_progress_resumes():
    state, _ = update_trend_state(TrendState(), [Point(10, 1.0, at=T0)])
    state, quiet = update_trend_state(state, [], now=T0 + 10 * 60)
    assert quiet == []
    state, stalled = update_trend_state(state, [], now=T0 + 20 * 60)
    assert [(a.kind, a.severity, a.step) for a in stalled] == [("stall", "error", 10)]
    state, again = update_trend_state(state, [], now=T0 + 40 * 60)
    assert again == []
    state, _ = update_trend_state(state, [Point(11, 1.0, at=T0 + 41 * 60)], now=T0 + 41 * 60)
    _, stalled_again = update_trend_state(state, [], now=T0 + 60 * 60)
    assert [a.step for a in stalled_again] == [11]


def test_a_point_later_than_the_settle_window_still_counts_for_best_step():
    points = clean_curve(steps=60)
    late = Point(5, 2.0, 0.1, at=T0 + 5)  # an old evaluation arriving after its slot was analysed
    state, _ = run([points, [late]])
    assert (state.best_step, state.best_eval_loss) == (5, 0.1)


def test_the_state_stays_small_however_long_the_run():
    """The webhook stores it in a JSON column on every batch: it must not grow with the run."""
    points = []
    for s in range(1, 5001):
        train = 2.0 * math.exp(-s / 2000) + 0.5 + (3.0 if s % 97 == 0 else 0.0)  # plenty of spikes
        points.append(Point(s, train, train + 0.05 if s % 10 == 0 else None, 1e-4, 1000.0, T0 + s))
    state, reported = run([points[i:i + 50] for i in range(0, len(points), 50)], total_steps=5000)
    assert len(where(reported, "spike")) > 40 and len(where(reported, "new_best")) > 400
    assert len(json.dumps(state.to_dict())) < 4000
