"""The validation figures: improvements, paired bootstrap intervals, the seed's thresholds.

Pure functions (no Django), tested with Hypothesis. Every benchmark compares the base model
(adapter disabled) with the trained one on the same items, so intervals come from a *paired*
bootstrap: resample the items with replacement, recompute the statistic on base and trained
together, take the 2.5th and 97.5th percentiles. Seeded, so a report is the same each time
it is made from the same scores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RESAMPLES = 2000
LEVEL = 0.95

# Seed 002's acceptance thresholds ("Automated Validation & Quality Reporting").
PERPLEXITY_MIN_IMPROVEMENT_PCT = 30.0
EI_MIN_IMPROVEMENT_PCT = 40.0
RETENTION_MIN_PCT = 95.0
BRAND_VOICE_MIN_PCT = 85.0  # a mean of 4.25 on a 1-5 scale
FLAG_BELOW = 3  # a reply scoring under 3 on any characteristic is flagged for review


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def improvement_pct(base: float, trained: float, *, lower_is_better: bool = False) -> float | None:
    """(trained - base) / base in %, signed so that positive means better; None when base is 0."""
    if base == 0 or not math.isfinite(base) or not math.isfinite(trained):
        return None
    change = (base - trained) if lower_is_better else (trained - base)
    return change / abs(base) * 100.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 1]."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def bootstrap_interval(n: int, statistic: Callable[[Sequence[int]], float | None], *,
                       resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> Interval | None:
    """Percentile interval of `statistic(indices)` over `resamples` resamplings of range(n).

    `statistic` sees the resampled item indices (so paired figures stay paired); resamples it
    cannot compute (None, e.g. a zero base) are dropped. None when n < 2 or nothing computed."""
    if n < 2:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        indices = [rng.randrange(n) for _ in range(n)]
        value = statistic(indices)
        if value is not None and math.isfinite(value):
            values.append(value)
    if not values:
        return None
    values.sort()
    tail = (1.0 - level) / 2.0
    return Interval(percentile(values, tail), percentile(values, 1.0 - tail))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def perplexity_of(nll_sums: Sequence[float], tokens: Sequence[int]) -> float | None:
    """Token-weighted perplexity of samples given each one's summed NLL and token count."""
    total = sum(tokens)
    if total == 0:
        return None
    return math.exp(sum(nll_sums) / total)


def perplexity_improvement(per_sample: Sequence[Sequence[float]]) -> tuple[float | None, Interval | None]:
    """Improvement % of trained over base perplexity, and its interval, from per-sample
    [base_nll_sum, trained_nll_sum, tokens] rows."""
    rows = [r for r in per_sample if r[2] > 0]

    def statistic(indices: Sequence[int]) -> float | None:
        chosen = [rows[i] for i in indices]
        base = perplexity_of([r[0] for r in chosen], [int(r[2]) for r in chosen])
        trained = perplexity_of([r[1] for r in chosen], [int(r[2]) for r in chosen])
        if base is None or trained is None:
            return None
        return improvement_pct(base, trained, lower_is_better=True)

    if not rows:
        return None, None
    return statistic(range(len(rows))), bootstrap_interval(len(rows), statistic)


def paired_mean_improvement(base: Sequence[float], trained: Sequence[float], *,
                            lower_is_better: bool = False) -> tuple[float | None, Interval | None]:
    """Improvement % of the trained mean over the base mean, and its paired interval."""
    if len(base) != len(trained):
        raise ValueError("base and trained must score the same items")

    def statistic(indices: Sequence[int]) -> float | None:
        b = mean([base[i] for i in indices])
        t = mean([trained[i] for i in indices])
        if b is None or t is None:
            return None
        return improvement_pct(b, t, lower_is_better=lower_is_better)

    if not base:
        return None, None
    return statistic(range(len(base))), bootstrap_interval(len(base), statistic)


def retention(base_correct: Sequence[bool], trained_correct: Sequence[bool]) -> tuple[float | None, Interval | None]:
    """Trained accuracy as % of base accuracy (100 = nothing forgotten), and its paired interval."""
    if len(base_correct) != len(trained_correct):
        raise ValueError("base and trained must answer the same questions")

    def statistic(indices: Sequence[int]) -> float | None:
        b = sum(1 for i in indices if base_correct[i])
        t = sum(1 for i in indices if trained_correct[i])
        return None if b == 0 else t / b * 100.0

    if not base_correct:
        return None, None
    return statistic(range(len(base_correct))), bootstrap_interval(len(base_correct), statistic)


def mean_interval(values: Sequence[float]) -> tuple[float | None, Interval | None]:
    """A mean and its bootstrap interval (for one model's scores, such as brand voice)."""
    if not values:
        return None, None

    def statistic(indices: Sequence[int]) -> float | None:
        return mean([values[i] for i in indices])

    return mean(values), bootstrap_interval(len(values), statistic)


def choice_index(logliks: Sequence[float], chars: Sequence[int] | None = None) -> int:
    """The option a model picks: the highest log-likelihood (lm-evaluation-harness's acc), or
    per character when `chars` is given (its acc_norm); ties go to the first."""
    scores = list(logliks) if chars is None else [ll / max(1, c) for ll, c in zip(logliks, chars, strict=True)]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def scale_pct(score: float, top: float = 5.0) -> float:
    """A 1-to-`top` score as % of the top (4.25 / 5 = 85 %)."""
    return score / top * 100.0


def agreement(ratings: Sequence[Sequence[float]]) -> float | None:
    """Agreement between evaluators who scored the same items: the share of item pairs on
    which two evaluators are within one point, over every pair of evaluators (1.0 = all
    agree within a point). `ratings[e][i]` is evaluator e's score for item i (NaN: not scored).
    None with fewer than two evaluators or no item scored by two."""
    agree = total = 0
    for a in range(len(ratings)):
        for b in range(a + 1, len(ratings)):
            for x, y in zip(ratings[a], ratings[b], strict=True):
                if math.isnan(x) or math.isnan(y):
                    continue
                total += 1
                agree += abs(x - y) <= 1
    return agree / total if total else None
