"""Hand-built training curves and Hypothesis strategies shared by the analysis tests."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from monitoring.points import Point

T0 = 1_700_000_000.0


def clean_curve(steps: int = 120, eval_every: int = 10) -> list[Point]:
    """Training and held-out loss both falling smoothly; an evaluation every `eval_every` steps."""
    points = []
    for s in range(1, steps + 1):
        train = 2.5 * math.exp(-s / 150) + 0.5
        ev = train + 0.05 if s % eval_every == 0 else None
        points.append(Point(s, train, ev, 2e-4, 1000.0, T0 + s))
    return points


def overfitting_curve(steps: int = 150, eval_every: int = 10, best: int = 60) -> list[Point]:
    """Training loss keeps falling; held-out loss bottoms out at step `best` and then rises."""
    points = []
    for s in range(1, steps + 1):
        train = 2.0 * math.exp(-s / 60) + 0.3
        ev = 1.0 + 0.0001 * (s - best) ** 2 if s % eval_every == 0 else None
        points.append(Point(s, train, ev, 2e-4, 1000.0, T0 + s))
    return points


def with_value(points: list[Point], step: int, **values) -> list[Point]:
    return [Point(p.step, **{**_fields(p), **values}) if p.step == step else p for p in points]


def _fields(p: Point) -> dict:
    return {"train_loss": p.train_loss, "eval_loss": p.eval_loss, "learning_rate": p.learning_rate,
            "tokens_per_second": p.tokens_per_second, "at": p.at}


finite_losses = st.floats(min_value=0.01, max_value=10.0, allow_nan=False)
odd_losses = st.one_of(finite_losses, st.none(), st.sampled_from([math.nan, math.inf, -math.inf]))


@st.composite
def curves(draw, *, max_points: int = 60, allow_nonfinite: bool = True, noisy_decay: bool | None = None):
    """A run's points in step order, one per step. Half the time a noisy decaying curve (so the
    window detectors have something realistic to chew on), otherwise arbitrary values."""
    steps = sorted(draw(st.sets(st.integers(0, 400), min_size=0, max_size=max_points)))
    decay = draw(st.booleans()) if noisy_decay is None else noisy_decay
    eval_every = draw(st.integers(1, 5))
    points = []
    for i, s in enumerate(steps):
        if decay:
            base = 2.0 * math.exp(-s / 120) + 0.5
            train = base * (1 + draw(st.floats(-0.05, 0.05)))
            if draw(st.integers(0, 30)) == 0:
                train *= draw(st.floats(1.5, 6.0))  # an occasional spike
            ev = base * (1 + draw(st.floats(-0.03, 0.08))) if i % eval_every == 0 else None
        else:
            train = draw(odd_losses if allow_nonfinite else st.one_of(finite_losses, st.none()))
            ev = draw(odd_losses if allow_nonfinite else st.one_of(finite_losses, st.none()))
        tps = draw(st.one_of(st.none(), st.floats(100.0, 5000.0)))
        points.append(Point(s, train, ev, 1e-4, tps, T0 + s))
    if allow_nonfinite and decay and points and draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, len(points) - 1))
        p = points[i]
        points[i] = Point(p.step, math.nan, p.eval_loss, p.learning_rate, p.tokens_per_second, p.at)
    return points


@st.composite
def shuffled_with_duplicates(draw, points: list[Point]):
    """The same points in any order, some sent more than once."""
    dups = draw(st.lists(st.sampled_from(points), max_size=len(points))) if points else []
    return draw(st.permutations([*points, *dups]))


@st.composite
def batches(draw, items: list):
    """`items` cut into consecutive batches of random sizes."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=6))) if len(items) > 1 else []
    bounds = [0, *cuts, len(items)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@st.composite
def bounded_reorder(draw, points: list[Point], lateness: int, rereports: bool = False):
    """Deliveries in which no point arrives after `lateness` or more later-step points: each
    point is displaced by less than `lateness` places. Some points are also split into a
    train-only and an eval-only report, and some are resent (a resend may arrive any time).
    With `rereports`, some steps are also reported again, later, with other values (as a
    resumed attempt re-training them would), inside the same window."""
    items: list[tuple[float, Point]] = []
    for i, p in enumerate(points):
        if p.train_loss is not None and p.eval_loss is not None and draw(st.booleans()):
            pieces = [Point(p.step, p.train_loss, None, p.learning_rate, p.tokens_per_second, p.at),
                      Point(p.step, None, p.eval_loss, None, None, p.at)]
        else:
            pieces = [p]
        if rereports and draw(st.integers(0, 3)) == 0:
            pieces.append(Point(p.step, draw(st.one_of(st.none(), finite_losses)),
                                draw(st.one_of(st.none(), finite_losses)), None, None,
                                p.at + draw(st.sampled_from([-1.0, 0.0, 60.0]))))
        for piece in pieces:
            items.append((i + draw(st.integers(0, lateness - 1)) + draw(st.floats(0, 0.5)), piece))
    items.sort(key=lambda t: t[0])
    order = [p for _, p in items]
    for p in draw(st.lists(st.sampled_from(points), max_size=5)) if points else []:
        # A resend of a point already delivered: it may come at any later time.
        first = next(k for k, q in enumerate(order) if q.step == p.step)
        order.insert(draw(st.integers(first + 1, len(order))), p)
    return order
