"""The validation figures (validation.stats): improvements, paired bootstrap intervals, retention."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from validation import stats

scores = st.floats(min_value=1.0, max_value=5.0, allow_nan=False)


def test_improvement_is_signed_so_positive_means_better():
    assert stats.improvement_pct(10.0, 7.0, lower_is_better=True) == 30.0
    assert stats.improvement_pct(2.0, 3.0) == 50.0
    assert stats.improvement_pct(0.0, 3.0) is None


@given(st.lists(st.floats(min_value=-100, max_value=100), min_size=1, max_size=50),
       st.floats(min_value=0, max_value=1))
def test_percentile_lies_between_the_extremes(values, q):
    values.sort()
    assert values[0] <= stats.percentile(values, q) <= values[-1]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(scores, scores), min_size=2, max_size=40))
def test_paired_interval_contains_the_point_estimate_bounds(pairs):
    base, trained = [p[0] for p in pairs], [p[1] for p in pairs]
    value, interval = stats.paired_mean_improvement(base, trained)
    assert interval is not None and interval.low <= interval.high
    # Every resample's mean ratio lies within the most extreme per-item ratios' range.
    worst = min(stats.improvement_pct(b, t) for b, t in pairs)
    best = max(stats.improvement_pct(b, t) for b, t in pairs)
    assert worst - 1e-9 <= value <= best + 1e-9
    assert worst - 1e-9 <= interval.low and interval.high <= best + 1e-9


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(scores, scores), min_size=2, max_size=30), st.integers(0, 5))
def test_the_interval_is_reproducible_for_a_seed(pairs, seed):
    base, trained = [p[0] for p in pairs], [p[1] for p in pairs]

    def statistic(indices):
        return stats.improvement_pct(stats.mean([base[i] for i in indices]), stats.mean([trained[i] for i in indices]))

    assert stats.bootstrap_interval(len(pairs), statistic, seed=seed, resamples=200) == \
        stats.bootstrap_interval(len(pairs), statistic, seed=seed, resamples=200)


def test_identical_models_have_a_zero_width_interval_at_zero():
    value, interval = stats.paired_mean_improvement([3.0, 4.0, 2.0], [3.0, 4.0, 2.0])
    assert value == 0.0 and interval.as_list() == [0.0, 0.0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=60))
def test_retention_is_trained_accuracy_over_base(answers):
    base, trained = [a[0] for a in answers], [a[1] for a in answers]
    value, interval = stats.retention(base, trained)
    if sum(base) == 0:
        assert value is None
    else:
        assert math.isclose(value, sum(trained) / sum(base) * 100)
        if interval is not None:
            assert interval.low <= interval.high


def test_retention_without_forgetting_is_100_percent():
    answers = [True, False, True, True]
    assert stats.retention(answers, answers)[0] == 100.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 50), st.floats(0.1, 50), st.integers(1, 40)), min_size=1, max_size=30))
def test_perplexity_improvement_matches_the_token_weighted_formula(rows):
    value, _ = stats.perplexity_improvement([list(r) for r in rows])
    tokens = sum(r[2] for r in rows)
    base = math.exp(sum(r[0] for r in rows) / tokens)
    trained = math.exp(sum(r[1] for r in rows) / tokens)
    assert math.isclose(value, (base - trained) / base * 100, rel_tol=1e-9, abs_tol=1e-9)


def test_choice_index_is_the_harness_acc_and_acc_norm():
    logliks, chars = [-4.0, -3.0, -9.0, -5.0], [4, 10, 45, 5]
    assert stats.choice_index(logliks) == 1
    assert stats.choice_index(logliks, chars) == 2  # -0.2 per character beats -0.3, -1.0 and -1.0
    assert stats.choice_index([-1.0, -1.0, -2.0, -3.0]) == 0  # a tie goes to the first


@given(st.lists(st.lists(st.integers(1, 5), min_size=5, max_size=5), min_size=2, max_size=4))
def test_agreement_is_a_share(ratings):
    value = stats.agreement([[float(x) for x in r] for r in ratings])
    assert 0.0 <= value <= 1.0
    assert stats.agreement([[float(x) for x in ratings[0]]] * 2) == 1.0


def test_agreement_needs_two_evaluators_on_one_item():
    assert stats.agreement([[3.0, 4.0]]) is None
    assert stats.agreement([[3.0, math.nan], [math.nan, 2.0]]) is None
    assert stats.agreement([[1.0, 5.0], [2.0, 2.0]]) == 0.5
