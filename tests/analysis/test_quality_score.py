"""quality_score(): seed 003's five factors out of 100, with prioritised suggestions."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.points import Point
from monitoring.quality import COMPONENT_MAX, quality_score

from .curves import clean_curve, curves, overfitting_curve, with_value

FAST = settings(max_examples=80, deadline=None)

maybe_numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(0.01, 10.0))


def score(points, **overrides):
    inputs = dict(total_steps=120, duration_seconds=120.0, tokens=120 * 1000.0, initial_loss=3.0,
                  final_train_loss=0.55, final_eval_loss=0.6, perplexity_base=12.0, perplexity_trained=1.8)
    return quality_score(points, **{**inputs, **overrides})


@FAST
@given(curves(), maybe_numbers, maybe_numbers, maybe_numbers, maybe_numbers, maybe_numbers,
       maybe_numbers, maybe_numbers, st.one_of(st.none(), st.integers(-5, 1000)))
def test_the_score_is_the_bounded_sum_of_bounded_components(points, duration, tokens, initial,
                                                             final_train, final_eval, ppl_base,
                                                             ppl_trained, total):
    result = quality_score(points, total_steps=total, duration_seconds=duration, tokens=tokens,
                           initial_loss=initial, final_train_loss=final_train, final_eval_loss=final_eval,
                           perplexity_base=ppl_base, perplexity_trained=ppl_trained)
    assert set(result.components) == set(COMPONENT_MAX)
    for name, value in result.components.items():
        assert 0 <= value <= COMPONENT_MAX[name]
    assert 0 <= result.score <= 100 and result.score == sum(result.components.values())
    assert result.grade in "ABCDF"
    priorities = [s.priority for s in result.suggestions]
    assert priorities == sorted(priorities, key=["high", "medium", "low"].index)
    assert {s.category for s in result.suggestions} <= {
        "convergence", "overfitting", "underfitting", "efficiency", "stability"}


@FAST
@given(curves(allow_nonfinite=False), st.floats(0.01, 10.0), st.floats(0.0, 10.0), st.floats(0.0, 10.0))
def test_a_lower_final_loss_never_scores_lower_on_loss_reduction(points, initial, final, better_by):
    worse = score(points, initial_loss=initial, final_train_loss=final)
    better = score(points, initial_loss=initial, final_train_loss=max(0.0, final - better_by))
    assert better.components["loss_reduction"] >= worse.components["loss_reduction"]


@FAST
@given(curves(allow_nonfinite=False), st.sampled_from(["initial_loss", "final_train_loss", "final_eval_loss",
                                                       "tokens", "duration_seconds"]),
       st.sampled_from([math.nan, math.inf, -math.inf, None]))
def test_a_missing_or_nonfinite_input_scores_zero_on_its_component_and_says_so(points, name, bad):
    component = {"initial_loss": "loss_reduction", "final_train_loss": "loss_reduction",
                 "final_eval_loss": "overfitting_gap", "tokens": "efficiency",
                 "duration_seconds": "efficiency"}[name]
    result = score(points, **{name: bad})
    assert result.components[component] == 0
    assert result.suggestions


def test_a_clean_run_scores_well():
    result = score(clean_curve())
    assert result.components == {"loss_reduction": 30, "convergence": 10, "stability": 20,
                                 "overfitting_gap": 15, "efficiency": 10}
    # Still falling at the end: the only suggestion is to train longer.
    assert [(s.category, s.priority) for s in result.suggestions] == [("convergence", "medium")]
    assert result.score == 85 and result.grade == "B"


def test_a_converged_run_gets_full_convergence_points():
    points = [Point(s, 0.5 + 2.0 * math.exp(-s / 10), None, 1e-4, 1000.0, float(s)) for s in range(1, 121)]
    assert score(points).components["convergence"] == 25


def test_an_overfitting_run_is_told_to_use_its_best_checkpoint():
    result = score(overfitting_curve(best=60), total_steps=150, final_train_loss=0.4, final_eval_loss=1.81)
    assert result.components["overfitting_gap"] == 0
    assert result.suggestions[0].priority == "high"
    texts = " ".join(s.text for s in result.suggestions if s.category == "overfitting")
    assert "checkpoint at step 60" in texts and "fewer epochs" in texts


def test_a_diverged_run_scores_zero_on_stability_and_convergence():
    result = score(with_value(clean_curve(), 50, train_loss=math.nan))
    assert result.components["stability"] == 0 and result.components["convergence"] == 0
    assert any(s.category == "stability" and s.priority == "high" for s in result.suggestions)


def test_loss_spikes_cost_stability_points():
    points = with_value(with_value(clean_curve(), 50, train_loss=10.0), 90, train_loss=10.0)
    assert score(points).components["stability"] == 10


def test_loss_reduction_tiers_follow_seed_003():
    tiers = {0.1: 30, 0.9: 25, 1.5: 20, 2.0: 10, 2.9: 5, 3.0: 0, 3.5: 0}
    for final, points in tiers.items():
        assert score(clean_curve(), initial_loss=3.0, final_train_loss=final).components["loss_reduction"] == points


def test_time_not_spent_training_lowers_efficiency():
    assert score(clean_curve(), duration_seconds=120 / 0.6).components["efficiency"] == 5
    assert score(clean_curve(), duration_seconds=120 / 0.4).components["efficiency"] == 3


def test_an_adapter_no_better_than_the_base_model_is_the_first_thing_said():
    result = score(clean_curve(), perplexity_base=5.0, perplexity_trained=5.2)
    assert result.suggestions[0].category == "underfitting" and result.suggestions[0].priority == "high"
