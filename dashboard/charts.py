"""Dashboard charts as SVG: matplotlib's object API on the Agg/SVG backends, no pyplot.

pyplot keeps global figure state and is not thread-safe; a `Figure` with its own canvas is,
so charts can be drawn by concurrent requests. Functions here take plain series (lists of
numbers, already downsampled by the caller) and return SVG bytes; no ORM access.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter  # noqa: E402

from core import humanize  # noqa: E402

WIDTH_IN, HEIGHT_IN = 6.4, 2.8
COLORS = {"train": "#2563eb", "eval": "#ea580c", "best": "#16a34a", "anomaly": "#dc2626", "other": "#7c3aed"}


@dataclass
class Series:
    """One line: x (steps) and y; `low`/`high` draw a min-max band around it when given."""

    label: str
    x: list[float]
    y: list[float | None]
    color: str = COLORS["other"]
    low: list[float | None] | None = None
    high: list[float | None] | None = None
    marker: str | None = None


@dataclass
class Chart:
    title: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    # (step, label) vertical markers: the best checkpoint, anomalies.
    best: tuple[float, float] | None = None
    anomalies: list[tuple[float, str]] = field(default_factory=list)
    log_y: bool = False
    empty_text: str = "No data yet"


def _finite_pairs(xs: Sequence[float], ys: Sequence[float | None]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def render_svg(chart: Chart) -> bytes:
    """The chart as a standalone SVG document."""
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=100)
    FigureCanvasSVG(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.set_title(chart.title, fontsize=10, loc="left")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(chart.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    drawn = False
    for s in chart.series:
        xs, ys = _finite_pairs(s.x, s.y)
        if not xs:
            continue
        drawn = True
        if s.low is not None and s.high is not None:
            band = [(x, lo, hi) for x, lo, hi in zip(s.x, s.low, s.high, strict=False)
                    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                color=s.color, alpha=0.15, linewidth=0)
        ax.plot(xs, ys, color=s.color, linewidth=1.2, label=s.label, marker=s.marker, markersize=3)
    if chart.best is not None:
        step, value = chart.best
        ax.axvline(step, color=COLORS["best"], linestyle="--", linewidth=0.9)
        ax.plot([step], [value], marker="*", color=COLORS["best"], markersize=10, linestyle="none",
                label=f"best checkpoint (step {step:g})")
    for i, (step, _label) in enumerate(chart.anomalies[:50]):
        ax.axvline(step, color=COLORS["anomaly"], alpha=0.5, linewidth=0.8,
                   label="anomaly" if i == 0 else None)
    if not drawn:
        ax.text(0.5, 0.5, chart.empty_text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        if chart.log_y and all(v > 0 for s in chart.series for v in _finite_pairs(s.x, s.y)[1]):
            ax.set_yscale("log")
        ax.legend(fontsize=7, loc="upper right", frameon=False)
        _format_ticks(ax, log_y=ax.get_yscale() == "log")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def _format_ticks(ax: Axes, *, log_y: bool) -> None:
    """Tick labels people read: thousands separated (80,000 MB, step 12,000), small values with
    one shared power of ten (1.90 ... 2.10 and "1e-4" for a learning rate) instead of 0.0001900.
    The x axis is steps, which are whole: a run of a few steps gets 1, 2, 3, never 1.25."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one step: the tick "1"
    axes = [(ax.xaxis, ax.get_xlim())] + ([] if log_y else [(ax.yaxis, ax.get_ylim())])
    for axis, (low, high) in axes:
        if max(abs(low), abs(high)) >= 10_000:
            axis.set_major_formatter(FuncFormatter(lambda value, _pos: humanize.integer(value)))
        else:
            # Plain text, not mathtext: matplotlib's mathtext parser is not thread-safe, and the
            # page asks for its four charts at once.
            formatter = ScalarFormatter(useMathText=False)
            formatter.set_powerlimits((-3, 4))
            axis.set_major_formatter(formatter)
