"""recommend(): continue, stop early, or use an earlier checkpoint, with the reason in words."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.points import Point
from monitoring.recommendation import recommend
from monitoring.trends import best_step

from .curves import clean_curve, curves, overfitting_curve, shuffled_with_duplicates, with_value

FAST = settings(max_examples=60, deadline=None)


def test_a_clean_curve_continues():
    advice = recommend(clean_curve())
    assert advice.action == "continue" and advice.checkpoint_step is None
    assert "still improving" in advice.reason


def test_an_overfitting_curve_goes_back_to_the_best_step():
    advice = recommend(overfitting_curve(best=60))
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 60
    assert "overfitting" in advice.reason and "step 60" in advice.reason


def test_no_improvement_for_patience_evaluations_names_the_checkpoint():
    evals = {100: 1.5, 200: 1.3, 300: 1.234, 400: 1.30, 500: 1.31, 600: 1.30, 700: 1.31, 800: 1.30, 900: 1.31}
    points = [Point(s, 1.0, evals.get(s)) for s in range(50, 901, 50)]
    advice = recommend(points, patience=5)
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 300
    assert advice.reason == ("Held-out loss has not improved for 6 evaluations since step 300 "
                             "(best 1.234); use the checkpoint at step 300.")


def test_fewer_stale_evaluations_than_patience_waits():
    evals = {100: 1.5, 200: 1.3, 300: 1.234, 400: 1.30, 500: 1.31}
    points = [Point(s, 1.0, evals.get(s)) for s in range(50, 501, 50)]
    advice = recommend(points, patience=5)
    assert advice.action == "continue" and "2 evaluations ago" in advice.reason


def test_marginal_improvements_below_min_delta_stop_at_the_latest_best():
    points = [Point(s * 100, 1.0, 1.0 - s * 0.001) for s in range(1, 9)]
    advice = recommend(points, patience=5, min_delta=0.01)
    assert advice.action == "stop_early" and advice.checkpoint_step is None
    assert "by more than 0.01" in advice.reason


def test_divergence_after_evaluations_uses_the_best_checkpoint_before_it():
    points = with_value(clean_curve(), 95, train_loss=math.nan)
    advice = recommend(points)
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 90
    assert advice.reason.startswith("Training diverged: training loss became nan at step 95")


def test_divergence_without_any_evaluation_stops_early():
    points = [Point(s, 2.0 - s / 100) for s in range(1, 20)] + [Point(20, math.inf)]
    advice = recommend(points)
    assert advice.action == "stop_early" and advice.checkpoint_step is None


def test_no_evaluation_yet_continues():
    assert recommend([Point(s, 2.0 - s / 100) for s in range(1, 20)]).action == "continue"
    assert recommend([]).action == "continue"


@FAST
@given(st.data())
def test_the_advice_is_consistent_and_order_free(data):
    points = data.draw(curves())
    advice = recommend(points)
    assert recommend(data.draw(shuffled_with_duplicates(points))) == advice
    assert advice.action in ("continue", "stop_early", "use_checkpoint")
    assert (advice.checkpoint_step is not None) == (advice.action == "use_checkpoint")
    assert advice.reason
    if advice.checkpoint_step is not None:
        evaluated = {p.step for p in points if p.eval_loss is not None and math.isfinite(p.eval_loss)}
        assert advice.checkpoint_step in evaluated


@FAST
@given(curves(allow_nonfinite=False))
def test_without_divergence_the_checkpoint_is_the_best_step(points):
    advice = recommend(points)
    if advice.checkpoint_step is not None and "diverged" not in advice.reason:
        assert advice.checkpoint_step == best_step(points)[0]
