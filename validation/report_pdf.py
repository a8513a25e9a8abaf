"""The validation report as a client-ready PDF: reportlab's platypus lays out the pages,
matplotlib's object API (a `Figure` with its own Agg canvas, never pyplot, whose global state is
not thread-safe) draws the charts.

Django-free and pure apart from writing `out`: a caller in the app builds the document, a dict
of strings already formatted for people plus the floats that are plotted, and this module only
lays it out. Every key but `title` and `version` may be missing or None; what is missing reads
"not measured" or is left out, and nothing here raises on a partial document.

Text uses the DejaVu fonts shipped inside the matplotlib wheel, so no system font is needed, and
the charts' default font is the same DejaVu Sans: text and charts match. `missing_glyphs` says
which characters of a text those fonts cannot draw.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import HRFlowable

from core import humanize

FONT_NAMES = MappingProxyType({
    "regular": "DejaVuSans",
    "bold": "DejaVuSans-Bold",
    "italic": "DejaVuSans-Oblique",
    "bold_italic": "DejaVuSans-BoldOblique",
    "mono": "DejaVuSansMono",
})
REGULAR, BOLD, ITALIC, MONO = (FONT_NAMES[k] for k in ("regular", "bold", "italic", "mono"))
# Every face free text may be set in; mono is used only for printable ASCII (hashes).
_TEXT_FACES = ("regular", "bold", "italic", "bold_italic")
# Turned into line breaks and spaces by the layout, never drawn as glyphs.
_LAYOUT_CHARACTERS = frozenset("\n\r\t")

# A4, the ISO size nearly every client outside North America prints on; with 20 mm side margins
# the text block (170 mm) is narrower than Letter's too, so "fit to page" on Letter shrinks the
# page by only 6 % and reflows nothing.
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 20 * mm, 18 * mm, 22 * mm
WIDTH = PAGE_WIDTH - 2 * MARGIN_X

NOT_MEASURED = "not measured"
INK, MUTED, RULE, SHADE = "#1f2937", "#6b7280", "#d1d5db", "#f3f4f6"
BASE_COLOR, TRAINED_COLOR, EVAL_COLOR = "#94a3b8", "#2563eb", "#ea580c"
# (text colour, background, mark, word) of a result: the word too, so colour is never the only cue.
RESULTS = {True: ("#166534", "#dcfce7", "✓", "Pass"), False: ("#991b1b", "#fee2e2", "✗", "Fail"),
           None: ("#374151", SHADE, "–", "Not measured")}
PROVISIONAL_COLORS = ("#92400e", "#fef3c7")
VERDICTS = {"ready": ("Ready to deliver", "#15803d"), "not_ready": ("Not ready", "#b91c1c"),
            "incomplete": ("Incomplete", "#b45309")}
CHART_DPI = 200
# The family name of DejaVuSans.ttf, which matplotlib finds in its own wheel (mpl-data): named on
# every chart text, so a matplotlibrc elsewhere cannot swap the charts' font.
CHART_FONT = "DejaVu Sans"
# A table sets its font before drawing its cells, Helvetica unless told: every table says
# DejaVu, so the PDF names no font it does not embed.
_TABLE_FONT = (("FONT", (0, 0), (-1, -1), REGULAR, 8.5),)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@functools.cache
def _fonts() -> dict[str, TTFont]:
    """Registers the DejaVu faces with reportlab once (a name already registered is reused, so
    another module registering them first is harmless) and returns them by role."""
    directory = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    registered = set(pdfmetrics.getRegisteredFontNames())
    fonts = {}
    for role, name in FONT_NAMES.items():
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, os.path.join(directory, f"{name}.ttf")))
        fonts[role] = pdfmetrics.getFont(name)
    # So <b> and <i> inside a paragraph pick the DejaVu faces, not Helvetica.
    pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=ITALIC,
                                  boldItalic=FONT_NAMES["bold_italic"])
    return fonts


def missing_glyphs(text: str) -> set[str]:
    """The characters of `text` that some face used for the report's text cannot draw (they
    would print as empty boxes); line breaks and tabs are layout, not glyphs."""
    fonts = _fonts()
    maps = [fonts[role].face.charToGlyph for role in _TEXT_FACES]
    return {ch for ch in set(text) - _LAYOUT_CHARACTERS if not all(ord(ch) in m for m in maps)}


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    """A list of records, with whatever is not a record left out."""
    return [item for item in _list(value) if isinstance(item, Mapping)]


def _text(value: Any, default: str = NOT_MEASURED) -> str:
    return default if value is None or value == "" else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _points(value: Any) -> list[tuple[float, float]]:
    """[[step, loss], ...] with malformed or non-finite pairs dropped."""
    pairs = []
    for pair in _list(value):
        if isinstance(pair, list | tuple) and len(pair) >= 2:
            x, y = _number(pair[0]), _number(pair[1])
            if x is not None and y is not None:
                pairs.append((x, y))
    return pairs


def _pairs(value: Any) -> list[tuple[str, str]]:
    """[[name, value], ...] as two strings each; rows that are not pairs are skipped."""
    return [(_text(row[0], ""), _text(row[1], "—")) for row in _list(value)
            if isinstance(row, list | tuple) and len(row) >= 2]


def _markup(value: Any, default: str = NOT_MEASURED) -> str:
    """Text as Paragraph markup that prints literally: `&`, `<`, `>` escaped, line breaks kept,
    control characters (which no font draws and reportlab may choke on) dropped."""
    text = _CONTROL.sub("", _text(value, default).replace("\r\n", "\n").replace("\r", "\n"))
    return escape(text.replace("\t", "    ")).replace("\n", "<br/>")


def _chart_text(value: Any) -> str:
    """A document string safe inside a chart: an unescaped pair of `$` would turn on mathtext."""
    return str(value).replace("$", r"\$")


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    _fonts()
    # bulletFontName too: its default is Helvetica, which is not embedded.
    base = ParagraphStyle("body", fontName=REGULAR, bulletFontName=REGULAR, fontSize=10, leading=14,
                          textColor=INK)

    def style(name: str, **kwargs: Any) -> ParagraphStyle:
        return ParagraphStyle(name, parent=base, **kwargs)

    return {
        "body": base,
        "title": style("title", fontName=BOLD, fontSize=20, leading=25, spaceAfter=4),
        "subtitle": style("subtitle", textColor=MUTED, spaceAfter=8),
        "h1": style("h1", fontName=BOLD, fontSize=16, leading=20, spaceBefore=4, spaceAfter=10,
                    keepWithNext=1),
        "h2": style("h2", fontName=BOLD, fontSize=12.5, leading=16, spaceBefore=12, spaceAfter=6,
                    keepWithNext=1),
        "h3": style("h3", fontName=BOLD, fontSize=10.5, leading=14, spaceBefore=8, spaceAfter=4,
                    keepWithNext=1),
        "lead": style("lead", fontSize=11, leading=16, spaceBefore=10, spaceAfter=6),
        "small": style("small", fontSize=8.5, leading=11.5),
        "muted": style("muted", fontSize=8.5, leading=11.5, textColor=MUTED),
        "label": style("label", fontName=BOLD, fontSize=8, leading=11, textColor=MUTED,
                       spaceBefore=6, spaceAfter=5, keepWithNext=1),
        "cell": style("cell", fontSize=8.5, leading=11),
        "cell_bold": style("cell_bold", fontName=BOLD, fontSize=8.5, leading=11),
        "head": style("head", fontName=BOLD, fontSize=8, leading=10, textColor=MUTED),
        "tiny": style("tiny", fontSize=7.5, leading=9.5),
        "tiny_head": style("tiny_head", fontName=BOLD, fontSize=7.5, leading=9.5, textColor=MUTED),
        "mono": style("mono", fontName=MONO, fontSize=7.5, leading=9.5),
        "verdict": style("verdict", fontName=BOLD, fontSize=24, leading=30, textColor="#ffffff"),
        "bullet": style("bullet", fontSize=9, leading=12.5, leftIndent=12, bulletIndent=2),
        "quote": _boxed(base, "quote", "#f9fafb", RULE, font=ITALIC),
        "base_reply": _boxed(base, "base_reply", "#f8fafc", BASE_COLOR),
        "trained_reply": _boxed(base, "trained_reply", "#eff6ff", TRAINED_COLOR),
    }


def _boxed(parent: ParagraphStyle, name: str, fill: str, border: str, *, font: str = REGULAR,
           pad: float = 6) -> ParagraphStyle:
    """A style for one long text in a tinted box. It is one Paragraph, not a table cell, because
    a cell cannot split across pages and replies are printed in full, however long."""
    return ParagraphStyle(name, parent=parent, fontName=font, fontSize=9.5, leading=13.5,
                          backColor=fill, borderColor=border, borderWidth=0.6, borderPadding=pad,
                          leftIndent=pad, rightIndent=pad, spaceBefore=pad, spaceAfter=pad + 6)


def _p(value: Any, style: str = "body", default: str = NOT_MEASURED) -> Paragraph:
    return Paragraph(_markup(value, default), _styles()[style])


def _result(passed: Any, verdict: Any = None) -> tuple[str, str, str]:
    """(markup, text colour, background) of a pass / fail / unmeasured result."""
    fg, bg, mark, word = RESULTS.get(passed if isinstance(passed, bool) else None, RESULTS[None])
    return f"{mark} {_markup(verdict, word)}", fg, bg


def _provisional_tag() -> str:
    fg, bg = PROVISIONAL_COLORS
    return f' <font name="{BOLD}" color="{fg}" backColor="{bg}">&nbsp;PROVISIONAL&nbsp;</font>'


def _scorer(row: Mapping[str, Any], prefix: str = "") -> str:
    text = prefix + _markup(row.get("scorer"), "not scored yet")
    return text + (_provisional_tag() if row.get("provisional") else "")


def _grid(rows: list[list[Any]], widths: Sequence[float], *, header: bool = True,
          cell: str = "cell", extra: Sequence[tuple[Any, ...]] = (), pad: float = 4) -> Table:
    """A table of Paragraphs (so every cell wraps), header row shaded and repeated on each page
    the table continues on, rows zebra-striped so a long one stays easy to follow."""
    head_style = "tiny_head" if cell == "tiny" else "head"
    body = [[c if isinstance(c, Flowable) else _p(c, head_style if header and i == 0 else cell, "—")
             for c in row] for i, row in enumerate(rows)]
    commands: list[tuple[Any, ...]] = [
        *_TABLE_FONT,
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), pad - 1), ("BOTTOMPADDING", (0, 0), (-1, -1), pad),
        ("LEFTPADDING", (0, 0), (-1, -1), pad + 1), ("RIGHTPADDING", (0, 0), (-1, -1), pad + 1),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor(RULE)),
    ]
    if header:
        commands += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(SHADE)),
                     ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor(MUTED))]
    commands += [("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fafafa"))
                 for i in range(2 if header else 1, len(body), 2)]
    table = Table(body, colWidths=list(widths), repeatRows=1 if header else 0, hAlign="LEFT")
    table.setStyle(TableStyle(commands + list(extra)))
    return table


def _key_values(pairs: Sequence[tuple[str, Any]], *, mono_values: bool = False,
                widths: Sequence[float] = (52 * mm, WIDTH - 52 * mm)) -> Table:
    """Name → value rows, the values in monospace for hashes."""
    rows = [[_p(name, "cell_bold", ""), _hash(value) if mono_values else _p(value, "cell", "—")]
            for name, value in pairs]
    return _grid(rows, widths, header=False)


def _hash(value: Any) -> Paragraph:
    """A hash in monospace, which has fewer glyphs than the text faces: anything but printable
    ASCII stays in the text face, so it prints."""
    text = _text(value, "—")
    return _p(text, "mono" if text.isascii() and text.isprintable() else "cell", "—")


def _image(figure: Figure, width: float, height: float) -> Image:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    buffer.seek(0)
    return Image(buffer, width=width, height=height)


def _figure(width: float, height: float) -> Figure:
    """A figure the size it is printed at (points in, inches out), so 8 pt in the chart is 8 pt
    on paper, like the text around it."""
    figure = Figure(figsize=(width / 72, height / 72), dpi=CHART_DPI)
    FigureCanvasAgg(figure)
    return figure


def _tidy(ax: Any) -> None:
    ax.tick_params(labelsize=7.5, labelfontfamily=CHART_FONT, colors=INK, length=3)
    ax.grid(True, axis="y", color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)


def _loss_chart(loss: Mapping[str, Any]) -> Image | None:
    figure = _loss_figure(loss)
    return _image(figure, WIDTH, LOSS_HEIGHT) if figure is not None else None


def loss_chart_png(loss: Mapping[str, Any]) -> bytes | None:
    """The report's loss chart as PNG bytes (the shared web view shows the PDF's chart)."""
    figure = _loss_figure(loss)
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


LOSS_HEIGHT = 68 * mm


def _loss_figure(loss: Mapping[str, Any]) -> Figure | None:
    train, evaluation = _points(loss.get("train")), _points(loss.get("eval"))
    if not train and not evaluation:
        return None
    figure = _figure(WIDTH, LOSS_HEIGHT)
    ax = figure.add_subplot(1, 1, 1)
    for points, color, label, marker in ((train, TRAINED_COLOR, "training loss", None),
                                         (evaluation, EVAL_COLOR, "evaluation loss", "o")):
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1.4,
                    label=label, marker=marker or ("o" if len(points) == 1 else None), markersize=3.5)
    ax.set_xlabel("training step", fontsize=8.5, fontfamily=CHART_FONT)
    ax.set_ylabel("loss", fontsize=8.5, fontfamily=CHART_FONT)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: humanize.integer(value)))
    ax.grid(True, axis="x", color="#f1f5f9", linewidth=0.6)
    _tidy(ax)
    ax.legend(prop={"family": CHART_FONT, "size": 8}, frameon=False, loc="upper right")
    figure.tight_layout(pad=0.4)
    return figure


def _interval(value: Any) -> tuple[float, float] | None:
    items = _list(value)
    low, high = (_number(items[0]), _number(items[1])) if len(items) >= 2 else (None, None)
    return (min(low, high), max(low, high)) if low is not None and high is not None else None


def _value_text(value: float) -> str:
    """A bar's label, to two decimals at most but never fewer than one (41.0, 18.42, 2.61), as the
    figures beside the chart are written."""
    if value != 0 and abs(value) < 0.01:
        return humanize.significant(value, 3)
    text = f"{value:,.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _bar_chart(chart: Mapping[str, Any], width: float, height: float) -> Image | None:
    """Base and trained side by side, the 95 % interval as a whisker where one is given."""
    bars = [("Base", _number(chart.get("base")), _interval(chart.get("base_interval")), BASE_COLOR),
            ("Trained", _number(chart.get("trained")), _interval(chart.get("trained_interval")),
             TRAINED_COLOR)]
    measured = [b for b in bars if b[1] is not None]
    if not measured:
        return None
    reach = [v for _, value, interval, _ in measured for v in (value, *(interval or ()))]
    top, bottom = max(0.0, *reach), min(0.0, *reach)
    span = (top - bottom) or 1.0
    figure = _figure(width, height)
    ax = figure.add_subplot(1, 1, 1)
    for i, (_, value, interval, color) in enumerate(bars):
        if value is None:
            ax.text(i, bottom + span * 0.04, NOT_MEASURED, ha="center", va="bottom", fontsize=7,
                    fontfamily=CHART_FONT,
                    color=MUTED, rotation=90)
            continue
        ax.bar(i, value, width=0.56, color=color, zorder=2)
        if interval is not None:
            ax.errorbar(i, value, yerr=[[max(value - interval[0], 0)], [max(interval[1] - value, 0)]],
                        fmt="none", ecolor=INK, elinewidth=0.9, capsize=4, zorder=3)
        edge = max(value, interval[1]) if interval else value
        ax.annotate(_value_text(value), (i, edge if value >= 0 else min(value, *(interval or (value,)))),
                    xytext=(0, 3 if value >= 0 else -3), textcoords="offset points", ha="center",
                    va="bottom" if value >= 0 else "top", fontsize=7.5, color=INK, fontweight="bold",
                    fontfamily=CHART_FONT)
    ax.set_xticks([0, 1], [b[0] for b in bars])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(bottom - (span * 0.18 if bottom < 0 else 0), top + span * 0.18)
    unit = chart.get("unit")
    if unit:
        ax.set_ylabel(_chart_text(unit), fontsize=8, fontfamily=CHART_FONT)
    _tidy(ax)
    figure.tight_layout(pad=0.4)
    return _image(figure, width, height)


def _characteristics_chart(rows: list[tuple[str, float | None, float | None]], unit: str) -> Image | None:
    plotted = [r for r in rows if r[1] is not None or r[2] is not None]
    if not plotted:
        return None
    largest = max(v for _, *values in plotted for v in values if v is not None)
    # The values say the scale (1-5 scores or percentages); `unit` is the benchmark's, which
    # may be a percentage of scores that are themselves out of 5.
    scale = 5.0 if largest <= 5 else 100.0
    label = "mean score (1–5)" if scale == 5 else (unit or "% of the maximum")
    width, height = WIDTH, (16 * len(plotted) + 44)
    figure = _figure(width, height)
    ax = figure.add_subplot(1, 1, 1)
    positions = list(range(len(plotted)))[::-1]  # the first characteristic on top, as in the table
    for offset, index, color, name in ((0.2, 1, BASE_COLOR, "Base"), (-0.2, 2, TRAINED_COLOR, "Trained")):
        bars = [(y + offset, row[index]) for y, row in zip(positions, plotted, strict=True)
                if row[index] is not None]
        if bars:  # an empty series would still put a swatch in the legend
            ax.barh([b[0] for b in bars], [b[1] for b in bars], height=0.38, color=color, label=name,
                    zorder=2)
    ax.set_yticks(positions, [_chart_text(row[0]) for row in plotted])
    ax.set_xlim(0, max(scale, largest))
    ax.set_ylim(-0.6, len(plotted) - 0.4)
    ax.set_xlabel(_chart_text(label), fontsize=8, fontfamily=CHART_FONT)
    _tidy(ax)
    ax.grid(False, axis="y")
    ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.6)
    ax.legend(prop={"family": CHART_FONT, "size": 7.5}, frameon=False, loc="lower left",
              bbox_to_anchor=(1.0, 0.0))
    figure.tight_layout(pad=0.4)
    return _image(figure, width, height)


def _executive(document: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    executive = _dict(document.get("executive"))
    word, color = VERDICTS.get(executive.get("verdict"), VERDICTS["incomplete"])
    banner = Table([[Paragraph(escape(word), s["verdict"])]], colWidths=[WIDTH], hAlign="LEFT")
    banner.setStyle(TableStyle([*_TABLE_FONT, ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(color)),
                                ("TOPPADDING", (0, 0), (-1, -1), 10), ("BOTTOMPADDING", (0, 0), (-1, -1), 12),
                                ("LEFTPADDING", (0, 0), (-1, -1), 14)]))
    story: list[Flowable] = [Paragraph("Executive summary", s["h1"]),
                             Paragraph("VERDICT", s["label"]), banner]
    story.append(_p(executive.get("sentence"), "lead", "No summary was written for this report."))
    story.append(Paragraph("Headline figures", s["h2"]))
    headlines = _dicts(executive.get("headlines"))
    if headlines:
        rows: list[list[Any]] = [["Measure", "Base", "Trained", "Change", "Threshold", "Result"]]
        extra = []
        for i, h in enumerate(headlines, start=1):
            markup, fg, bg = _result(h.get("passed"), h.get("verdict"))
            label = f"<b>{_markup(h.get('label'), 'Unnamed measure')}</b><br/>" \
                    f'<font size="7.5" color="{MUTED}">{_scorer(h, "scored by ")}</font>'
            rows.append([Paragraph(label, s["cell"]), h.get("base"), h.get("trained"),
                         h.get("change"), h.get("threshold"),
                         Paragraph(f'<font color="{fg}"><b>{markup}</b></font>', s["cell"])])
            extra.append(("BACKGROUND", (5, i), (5, i), colors.HexColor(bg)))
        story.append(_grid([[c if isinstance(c, Flowable) else _text(c) for c in r] for r in rows],
                           [46 * mm, 21 * mm, 21 * mm, 26 * mm, 27 * mm, 29 * mm], extra=extra))
    else:
        story.append(_p("No headline figures were measured.", "muted"))
    job = _dict(document.get("job"))
    fields = [("Job", "name"), ("Job ID", "id"), ("Owner", "owner"), ("Base model", "base_model"),
              ("Preset", "preset"), ("Dataset", "dataset"), ("Status", "status"),
              ("Started", "started"), ("Finished", "finished")]
    story.append(Paragraph("About this job", s["h2"]))
    story.append(_key_values([(name, _text(job.get(key), "not recorded")) for name, key in fields],
                             widths=(38 * mm, WIDTH - 38 * mm)))
    return story


def _training(document: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    training = _dict(document.get("training"))
    story: list[Flowable] = [Paragraph("Training", s["h1"]), Paragraph("Loss during training", s["h2"])]
    chart = _loss_chart(_dict(training.get("loss")))
    story.append(chart if chart is not None else _p("The loss was not measured.", "muted"))
    story.append(Paragraph("Cost and time", s["h2"]))
    story.append(_key_values([("Cost", _text(training.get("cost"))),
                              ("Duration", _text(training.get("duration")))]))
    story.append(Paragraph("Interruptions", s["h2"]))
    interruptions = _dicts(training.get("interruptions"))
    if interruptions:
        rows = [["When", "What happened", "Cost"]] + [
            [i.get("when"), i.get("what"), i.get("cost")] for i in interruptions]
        story.append(_grid([[_text(c, "—") for c in r] for r in rows],
                           [46 * mm, WIDTH - 76 * mm, 30 * mm]))
    else:
        story.append(_p("None: training ran without interruption.", "small"))
    story.append(Paragraph("Configuration", s["h2"]))
    config = _pairs(training.get("config"))
    story.append(_key_values(config) if config else _p("The configuration was not recorded.", "muted"))
    return story


def _benchmark(index: int, b: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    title = _text(b.get("label") or b.get("kind"), f"Benchmark {index}")
    markup, fg, bg = _result(b.get("passed"), b.get("verdict"))
    figures = [["Metric", b.get("metric")], ["Base", b.get("base")], ["Trained", b.get("trained")],
               ["Change", b.get("change")], ["Threshold", b.get("threshold")],
               ["Result", Paragraph(f'<font color="{fg}"><b>{markup}</b></font>', s["cell"])],
               ["Scorer", Paragraph(_scorer(b), s["cell"])], ["Items", b.get("n")]]
    chart = _dict(b.get("chart"))
    chart_width = 62 * mm
    image = _bar_chart(chart, chart_width, 56 * mm) if chart else None
    table_width = WIDTH - chart_width - 6 * mm if image is not None else WIDTH
    body: Flowable = _grid(
        [[_p(name, "cell_bold"), value if isinstance(value, Flowable) else _text(value)]
         for name, value in figures], [28 * mm, table_width - 28 * mm], header=False,
        extra=[("BACKGROUND", (1, 5), (1, 5), colors.HexColor(bg))])
    if image is not None:
        body = Table([[image, body]], colWidths=[chart_width + 6 * mm, table_width], hAlign="LEFT",
                     style=[*_TABLE_FONT, ("VALIGN", (0, 0), (-1, -1), "TOP"),
                            ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)])
    story: list[Flowable] = [KeepTogether([Paragraph(escape(title), s["h2"]), body])]
    if b.get("provisional"):
        story.append(Paragraph(_provisional_tag().strip() + " This figure comes from automatic checks "
                               "alone; it stands until people or the judge score these replies.",
                               s["muted"]))
    story += _characteristics(b, _text(chart.get("unit"), ""))
    story += _flagged(b)
    notes = [n for n in _list(b.get("notes")) if n]
    if notes:
        story.append(KeepTogether([Paragraph("Notes", s["h3"])] + [
            Paragraph(_markup(n), s["bullet"], bulletText="•") for n in notes]))
    return story


def _characteristics(b: Mapping[str, Any], unit: str) -> list[Flowable]:
    rows = _dicts(b.get("characteristics"))
    if not rows:
        return []
    s = _styles()
    values = [(_text(c.get("name"), "unnamed"), _number(c.get("base")), _number(c.get("trained")))
              for c in rows]
    story: list[Flowable] = [Paragraph("Brand voice by characteristic", s["h3"])]
    chart = _characteristics_chart(values, unit)
    if chart is not None:
        story += [chart, Spacer(1, 4)]

    def fmt(value: float | None) -> str:
        return NOT_MEASURED if value is None else humanize.significant(value, 3)

    table = [["Characteristic", "Base", "Trained", "Summary"]] + [
        [name, fmt(base), fmt(trained), _text(c.get("text"), "—")]
        for (name, base, trained), c in zip(values, rows, strict=True)]
    story.append(_grid(table, [44 * mm, 26 * mm, 26 * mm, WIDTH - 96 * mm]))
    return story


def _flagged(b: Mapping[str, Any]) -> list[Flowable]:
    flagged = _dicts(b.get("flagged"))
    if not flagged:
        return []
    s = _styles()
    # The heading goes inside the first entry's KeepTogether: keepWithNext does not hold a
    # heading to a KeepTogether that follows it.
    story: list[Flowable] = []
    for i, f in enumerate(flagged):
        heading = [Paragraph(f"Flagged replies ({len(flagged)})", s["h3"])] if i == 0 else []
        story.append(KeepTogether(heading + [
            Paragraph(f"<b>{_markup(f.get('item_id'), 'unknown item')}</b> — "
                      f"{_markup(f.get('reason'), 'no reason given')}", s["small"]),
            Paragraph("PROMPT", s["label"]), _p(f.get("prompt"), "quote", "(no prompt)"),
            Paragraph("TRAINED REPLY", s["label"]), _p(f.get("reply"), "trained_reply", "(no reply)"),
        ]))
    return story


def _benchmarks(document: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    story: list[Flowable] = [Paragraph("Benchmarks", s["h1"])]
    benchmarks = _dicts(document.get("benchmarks"))
    if not benchmarks:
        return story + [_p("No benchmarks were measured.", "muted")]
    for i, b in enumerate(benchmarks, start=1):
        story += _benchmark(i, b)
        story.append(Spacer(1, 6))
    return story


def _example(number: int, ex: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    heading = f"{number}. {_text(ex.get('benchmark'), 'Benchmark')} · {_text(ex.get('item_id'), 'item')}"
    scores = f"Difference, trained − base: {_markup(ex.get('gap'), 'not measured')}"
    story: list[Flowable] = [Paragraph(escape(heading), s["h3"]), Paragraph(scores, s["muted"])]
    for message in _dicts(ex.get("messages")):
        role = _text(message.get("role"), "message").upper()
        story += [Paragraph(escape(role), s["label"]), _p(message.get("content"), "quote", "(empty)")]
    story += [Paragraph(f"BASE MODEL · score {_markup(ex.get('base_score'), '—')}", s["label"]),
              _p(ex.get("base_reply"), "base_reply", "(no reply)"),
              Paragraph(f"TRAINED MODEL · score {_markup(ex.get('trained_score'), '—')}", s["label"]),
              _p(ex.get("trained_reply"), "trained_reply", "(no reply)"), Spacer(1, 6)]
    return story


def _examples(document: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    examples = _dict(document.get("examples"))
    story: list[Flowable] = [
        Paragraph("Before and after", s["h1"]),
        Paragraph("The same prompt answered by the base model and by the trained one. Replies are "
                  "printed in full, exactly as each model wrote them.", s["small"]),
    ]
    for key, heading in (("best", "Where training helped most"), ("worst", "Where training helped least")):
        story.append(Paragraph(heading, s["h2"]))
        chosen = _dicts(examples.get(key))
        if not chosen:
            story.append(_p("No examples were selected.", "muted"))
        for i, ex in enumerate(chosen, start=1):
            story += _example(i, ex)
    return story


def _appendix(document: Mapping[str, Any]) -> list[Flowable]:
    s = _styles()
    appendix = _dict(document.get("appendix"))
    story: list[Flowable] = [Paragraph("Technical appendix", s["h1"]), Paragraph("Scores", s["h2"])]
    scores = _dicts(appendix.get("scores"))
    columns = ("benchmark", "item_id", "model", "criterion", "score", "scorer")
    if scores:
        rows = [["Benchmark", "Item", "Model", "Criterion", "Score", "Scorer"]] + [
            [_text(r.get(c), "—") for c in columns] for r in scores]
        story.append(_grid(rows, [32 * mm, 22 * mm, 19 * mm, 44 * mm, 15 * mm, 38 * mm], cell="tiny", pad=2.5))
    else:
        story.append(_p("No individual scores were recorded.", "muted"))
    story.append(Paragraph("Benchmark sets", s["h2"]))
    sets = _dicts(appendix.get("sets"))
    if sets:
        rows = [["Kind", "Name", "Version", "SHA-256"]] + [
            [_text(r.get("kind"), "—"), _text(r.get("name"), "—"), _text(r.get("version"), "—"),
             _hash(r.get("sha256"))] for r in sets]
        story.append(_grid(rows, [40 * mm, 44 * mm, 16 * mm, WIDTH - 100 * mm]))
    else:
        story.append(_p("No benchmark sets were recorded.", "muted"))
    for key, heading, mono in (("dataset", "Dataset", False), ("versions", "Software versions", False),
                               ("hashes", "Hashes", True)):
        story.append(Paragraph(heading, s["h2"]))
        pairs = _pairs(appendix.get(key))
        widths = (62 * mm, WIDTH - 62 * mm) if mono else (52 * mm, WIDTH - 52 * mm)
        story.append(_key_values(pairs, mono_values=mono, widths=widths) if pairs
                     else _p("Not recorded.", "muted"))
    return story


def _fit(text: str, font: str, size: float, width: float) -> str:
    """`text` cut with an ellipsis to fit `width` points (a footer line never wraps)."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


class _NumberedCanvas(Canvas):
    """Holds every page back until the last one is known, then draws the footers: "page X of Y"
    needs Y, which only the end of the layout knows."""

    def __init__(self, *args: Any, title: str = "", version: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer_title, self._footer_version = title, version
        self._held: list[dict[str, Any]] = []
        self._page_bookmarks: list[tuple[str, dict[str, Any]]] = []

    def bookmarkPage(self, key: str, **kwargs: Any) -> None:  # noqa: N802 (reportlab's name)
        # Held with its page: a destination names the page being written, and until save()
        # writes the held pages that is always the first.
        self._page_bookmarks.append((key, kwargs))

    def showPage(self) -> None:  # noqa: N802
        self._held.append(dict(self.__dict__))
        self._page_bookmarks = []
        self._startPage()

    def save(self) -> None:
        total = len(self._held)
        for number, state in enumerate(self._held, start=1):
            self.__dict__.update(state)
            for key, kwargs in self._page_bookmarks:
                super().bookmarkPage(key, **kwargs)
            self._draw_footer(number, total)
            super().showPage()
        super().save()

    def _draw_footer(self, number: int, total: int) -> None:
        self.saveState()
        self.setStrokeColor(colors.HexColor(RULE))
        self.setLineWidth(0.5)
        self.line(MARGIN_X, MARGIN_BOTTOM - 8 * mm, PAGE_WIDTH - MARGIN_X, MARGIN_BOTTOM - 8 * mm)
        self.setFont(REGULAR, 7.5)
        self.setFillColor(colors.HexColor(MUTED))
        right = f"{self._footer_version} · page {number} of {total}"
        baseline = MARGIN_BOTTOM - 12 * mm
        self.drawRightString(PAGE_WIDTH - MARGIN_X, baseline, right)
        room = WIDTH - pdfmetrics.stringWidth(right, REGULAR, 7.5) - 10 * mm
        self.drawString(MARGIN_X, baseline, _fit(self._footer_title, REGULAR, 7.5, room))
        self.restoreState()


class _ReportTemplate(BaseDocTemplate):
    def afterFlowable(self, flowable: Flowable) -> None:  # noqa: N802 (reportlab's name)
        """Sections and benchmarks become PDF bookmarks, so a reader can jump between them."""
        if isinstance(flowable, Paragraph) and flowable.style.name in ("h1", "h2"):
            key = f"outline-{id(flowable)}"
            # Open the page at the heading (zoom 0 keeps the reader's zoom).
            top = self.frame._y + flowable.height + flowable.style.spaceBefore
            self.canv.bookmarkPage(key, fit="XYZ", left=0, top=top, zoom=0)
            # Every h2 follows an h1 (the first flowable with a bookmark is one), as the
            # outline's nesting requires.
            level = 0 if flowable.style.name == "h1" else 1
            self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level)


def render_report(document: dict, out: str | os.PathLike | BinaryIO) -> None:
    """Writes the validation report described by `document` (see the module docstring and the
    schema in the caller) as a PDF to `out`, a path or a binary file object."""
    s = _styles()
    title = _text(document.get("title"), "Validation report")
    version = f"version {_text(document.get('version'), '1')}"
    subtitle = f"Report {version}"
    if document.get("generated_at"):
        subtitle += f" · generated {document['generated_at']}"
    target = os.fspath(out) if isinstance(out, str | os.PathLike) else out
    template = _ReportTemplate(target, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X,
                               topMargin=MARGIN_TOP, bottomMargin=MARGIN_BOTTOM, title=title,
                               author=_text(_dict(document.get("job")).get("owner"), ""),
                               subject="Validation report", creator="validation.report_pdf",
                               # Else every page names Helvetica, a font the PDF does not embed.
                               initialFontName=REGULAR, initialFontSize=10, initialLeading=14)
    frame = Frame(MARGIN_X, MARGIN_BOTTOM, WIDTH, PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    template.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    story: list[Flowable] = [
        Paragraph(_markup(title), s["title"]), Paragraph(_markup(subtitle), s["subtitle"]),
        HRFlowable(width="100%", thickness=0.8, color=colors.HexColor(RULE), spaceAfter=12),
    ]
    for number, section in enumerate((_executive, _training, _benchmarks, _examples, _appendix)):
        if number:
            story.append(PageBreak())
        story += section(document)
    template.build(story, canvasmaker=functools.partial(_NumberedCanvas, title=title, version=version))
