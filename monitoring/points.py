"""Metric points and the one canonical history every analyser reads: `Point`, merging several
reports of one step, and `canonical` (one point per step, in step order). Pure: no Django, no I/O.

Conventions shared by every monitoring module:

- Points are canonicalised first (`canonical`): one point per step, in step order. Several
  reports of one step are merged field by field, as the ingestion merges them into one
  MetricPoint row (a train log and an eval log of the same step arrive as two partial points).
  Where two reports disagree on a field, the later report (`at`) wins, ties broken by value, so
  the result never depends on arrival order.
- NaN or infinite losses never raise: they mean divergence, and are left out of every window.
- "Held-out loss" is `eval_loss`; a point without one is not an evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Point:
    """One step's metrics; `at` is when it was reported (unix seconds)."""

    step: int
    train_loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    at: float = 0.0


VALUE_FIELDS = ("train_loss", "eval_loss", "learning_rate", "tokens_per_second")


def point_from_mapping(data: Mapping[str, Any]) -> Point:
    """A Point from a webhook point or a MetricPoint's values (`reported_at` may be a datetime)."""
    at = data.get("at", data.get("reported_at", 0.0))
    if isinstance(at, datetime):
        at = at.timestamp()
    return Point(step=int(data["step"]), at=float(at or 0.0),
                 **{name: _as_float(data.get(name)) for name in VALUE_FIELDS})


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def rank(value: float | None) -> tuple[int, float]:
    """A total order over None < NaN < numbers (NaN compares false with everything)."""
    if value is None:
        return (0, 0.0)
    if math.isnan(value):
        return (1, 0.0)
    return (2, value)


def report_key(p: Point) -> tuple:
    """Identity of a report (NaN-safe): exact resends have the same key."""
    return (p.step, rank(p.at), *(rank(getattr(p, name)) for name in VALUE_FIELDS))


def merge_reports(reports: Iterable[Point]) -> Point:
    """Several reports of one step as one point: each field from the latest report that has it
    (ties broken by the larger value).

    A function of the set of reports, so no arrival order or resend changes it. (Folding pairs
    would not do: a merged point's single `at` forgets which report each field came from.)
    """
    reports = list(reports)
    if not reports:
        raise ValueError("merge_reports needs at least one report")
    values: dict[str, float | None] = {}
    for name in VALUE_FIELDS:
        candidates = [(rank(r.at), rank(getattr(r, name))) for r in reports if getattr(r, name) is not None]
        values[name] = None if not candidates else _unrank(max(candidates)[1])
    return Point(step=reports[0].step, at=_unrank(max(rank(r.at) for r in reports)) or 0.0, **values)


def compact_reports(reports: Sequence[Point]) -> list[Point]:
    """The fewest reports that merge, now and with any later reports, as `reports` do: per
    field only the winning (at, value) matters. Canonical, so equal sets give equal lists."""
    winners: dict[tuple[int, float], dict[str, float | None]] = {max(rank(r.at) for r in reports): {}}
    for name in VALUE_FIELDS:
        candidates = [(rank(r.at), rank(getattr(r, name))) for r in reports if getattr(r, name) is not None]
        if candidates:
            at, value = max(candidates)
            winners.setdefault(at, {})[name] = _unrank(value)
    return [Point(step=reports[0].step, at=_unrank(at) or 0.0, **winners[at]) for at in sorted(winners)]


def _unrank(ranked: tuple[int, float]) -> float | None:
    return (None, math.nan, ranked[1])[ranked[0]]


def by_step(points: Iterable[Point]) -> dict[int, list[Point]]:
    grouped: dict[int, list[Point]] = {}
    for p in points:
        grouped.setdefault(p.step, []).append(p)
    return grouped


def canonical(points: Iterable[Point]) -> list[Point]:
    """One point per step, in step order: duplicates and partial reports merged."""
    grouped = by_step(points)
    # A lone report is its own merge; skipping merge_reports for it makes a stored history
    # (one MetricPoint per step) about ten times cheaper to canonicalise.
    return [g[0] if len(g := grouped[s]) == 1 else merge_reports(g) for s in sorted(grouped)]


def has_nonfinite_loss(p: Point) -> bool:
    """A NaN or infinite training or held-out loss: the mark of divergence."""
    return any(v is not None and not math.isfinite(v) for v in (p.train_loss, p.eval_loss))
