"""The validation report's PDF (validation/report_pdf.py): what a reader finds in it, read back
with pypdf; partial documents; the fonts; pages that render. No database."""

from __future__ import annotations

import ast
import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2
import pytest
from pypdf import PdfReader

from tests.validation import report_document as sample
from validation import report_pdf
from validation.report_pdf import FONT_NAMES, missing_glyphs, render_report

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ["Executive summary", "Training", "Benchmarks", "Before and after", "Technical appendix"]
TABLE_HEADER = "Benchmark Item Model Criterion Score Scorer"


def _render(document: dict[str, Any], tmp_path: Path) -> PdfReader:
    path = tmp_path / "report.pdf"
    render_report(document, path)
    return PdfReader(path)


def _pages(reader: PdfReader) -> list[str]:
    return [page.extract_text() for page in reader.pages]


def _flat(text: str) -> str:
    """Words joined by single spaces: line breaks fall wherever the layout put them."""
    return " ".join(text.split())


def _body(pages: list[str], document: dict[str, Any]) -> str:
    """The whole text, footers taken out, so a reply that crosses a page break reads on."""
    total = len(pages)
    out = []
    for number, text in enumerate(pages, start=1):
        footer = f"version {document['version']} · page {number} of {total}"
        out.append(text.replace(footer, " ").replace(document["title"], " "))
    return _flat("\n".join(out))


def _wide_document() -> dict[str, Any]:
    """The realistic document plus strings no line can hold: unbroken, and longer than a page."""
    document = sample.realistic_document()
    document["benchmarks"][3]["flagged"].append({
        "item_id": "bv-029", "prompt": "Where do I find the details?", "reason": "Pastes a raw link",
        "reply": "x" * 400 + " " + sample.LONG_URL * 3})
    document["appendix"]["hashes"].append(["A very long unbroken key " + "k" * 120, "f" * 200])
    return document


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    # One rendering for the tests that only read it: each takes a second or two.
    document = _wide_document()
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    render_report(document, path)
    return document, path


@pytest.fixture(scope="module")
def realistic(rendered) -> tuple[dict[str, Any], PdfReader, list[str]]:
    """The document, the PDF read back and each page's text (extracting it takes a while)."""
    document, path = rendered
    reader = PdfReader(path)
    return document, reader, _pages(reader)


def test_it_has_every_section_in_order(realistic):
    _, _, pages = realistic
    text = _flat("\n".join(pages))
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    assert "Validation report — Elena Morales voice (demo)" in text
    assert "Not ready" in text


def test_each_section_starts_on_its_own_page_and_is_bookmarked(realistic):
    _, reader, pages = realistic
    sections = [entry for entry in reader.outline if not isinstance(entry, list)]
    assert [entry.title for entry in sections] == SECTIONS
    for entry in sections[1:]:
        assert _flat(pages[reader.get_destination_page_number(entry)]).startswith(entry.title)
    benchmarks = reader.outline[reader.outline.index(sections[2]) + 1]
    assert [entry.title for entry in benchmarks] == [
        "Perplexity", "Emotional intelligence", "Knowledge retention", "Brand voice"]
    brand_voice = reader.get_destination_page_number(benchmarks[-1])
    assert "rubric points met, % of 5" in pages[brand_voice]
    assert reader.metadata.title == sample.TITLE


def test_it_shows_the_headline_figures_and_their_results(realistic):
    _, _, pages = realistic
    first_page = _flat(pages[0])
    for figure in ("18.42", "11.07", "-39.9%", "2.61 / 5", "3.84 / 5", "93.9% of base",
                   "≥ 95% of base", "58.2%", "86.4%", "+28.2 points"):
        assert figure in first_page, figure
    # The result is a word, not only a colour; the rules-only figure is marked provisional.
    assert first_page.count("Pass") == 3 and first_page.count("Fail") == 1
    assert "PROVISIONAL" in first_page
    assert "maria@example.com" in first_page


def test_it_shows_training_cost_duration_interruptions_and_configuration(realistic):
    document, _, pages = realistic
    text = _body(pages, document)
    for expected in ("$0.00 (local CPU)", "41 min 22 s", "resumed from the checkpoint at step 400",
                     "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", "2.00e-04"):
        assert expected in text, expected


def test_it_prints_flagged_replies_and_brand_voice_characteristics(realistic):
    document, _, pages = realistic
    text = _body(pages, document)
    assert sample.FLAGGED_REPLY in text
    assert "Promises returns (rubric: never promise returns)" in text
    assert "Names the feeling first" in text and "2.0 → 4.0 (+2.0)" in text
    assert "judge:gpt-4.1-mini" in text


def test_it_prints_example_replies_in_full(realistic):
    document, _, pages = realistic
    text = _body(pages, document)
    assert _flat(sample.BEST_TRAINED_REPLY) in text
    assert _flat(sample.BEST_BASE_REPLY) in text
    assert _flat(sample.WORST_TRAINED_REPLY) in text
    # The last sentence proves nothing was cut at a box or page edge.
    assert text.count(sample.BEST_LAST_SENTENCE) == 1


def test_it_lists_hashes_and_versions_in_the_appendix(realistic):
    document, _, pages = realistic
    text = _body(pages, document)
    unbroken = "".join(text.split())
    assert sample.SET_SHA in unbroken
    assert sample.ADAPTER_SHA in unbroken
    assert "transformers 5.23.0" in text


def test_every_page_has_the_footer(realistic):
    _, _, pages = realistic
    assert len(pages) > 5
    for number, text in enumerate(pages, start=1):
        flat = _flat(text)
        assert f"version 2 · page {number} of {len(pages)}" in flat
        assert sample.TITLE in flat


def test_it_uses_only_the_embedded_dejavu_fonts(realistic):
    _, reader, pages = realistic
    fonts = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    assert fonts and all("DejaVu" in name for name in fonts), fonts


def test_nothing_prints_past_the_right_margin(rendered):
    _, path = rendered
    pdf = pypdfium2.PdfDocument(path)
    scale = 2
    edge = round((report_pdf.PAGE_WIDTH - report_pdf.MARGIN_X) * scale) + 2 * scale
    for page in pdf:
        pixels = np.asarray(page.render(scale=scale).to_pil().convert("L"))
        assert pixels[:, edge:].min() > 240, "ink past the right margin"


def test_a_document_with_only_a_title_and_version_renders(tmp_path):
    document = {"title": "Validation report — bare", "version": 1}
    text = _flat("\n".join(_pages(_render(document, tmp_path))))
    for heading in SECTIONS:
        assert heading in text
    assert "Incomplete" in text
    assert "version 1 · page 1 of" in text
    assert "No benchmarks were measured." in text


def test_empty_lists_and_missing_charts_render(tmp_path):
    document = {
        "title": "Empty", "version": 3, "generated_at": None, "job": None,
        "executive": {"verdict": "ready", "sentence": None, "headlines": []},
        "training": {"loss": {"train": [], "eval": []}, "config": [], "cost": None, "duration": None,
                     "interruptions": []},
        "benchmarks": [
            {"label": "Perplexity", "chart": None, "characteristics": None, "flagged": None,
             "notes": None, "passed": None},
            {"label": "Brand voice", "chart": {"base": None, "trained": None, "unit": "%"},
             "characteristics": [{"name": "Warmth", "base": None, "trained": None, "text": None}],
             "flagged": [], "notes": [], "provisional": True},
            {"kind": "knowledge_retention", "chart": {"base": 41.0, "trained": None,
                                                      "base_interval": [45.0, 38.0], "trained_interval": "n/a"}},
            {},
        ],
        "examples": {"best": [], "worst": None},
        "appendix": {"scores": [], "sets": [], "dataset": [], "versions": [], "hashes": []},
    }
    text = _flat("\n".join(_pages(_render(document, tmp_path))))
    assert "Ready to deliver" in text
    assert "None: training ran without interruption." in text
    assert "The loss was not measured." in text
    assert "Not measured" in text and "not measured" in text
    assert "knowledge_retention" in text and "Benchmark 4" in text


def test_malformed_values_do_not_crash_it(tmp_path):
    document = {
        "title": "Odd", "version": 1, "job": "not a dict", "executive": {"headlines": [None, "x", {}]},
        "training": {"loss": {"train": [[1, "a"], [2], "x", [3.0, float("nan")], [4.0, 2.0]]},
                     "config": [["only a name"], "x", [1, 2]], "interruptions": ["x", None]},
        "benchmarks": ["x", None, {"chart": {"base": True, "trained": float("inf")}}],
        "examples": {"best": [{"messages": "x"}, None]},
        "appendix": {"scores": [None, {"score": 5}], "hashes": [["sha", None]]},
    }
    assert "Odd" in _flat("\n".join(_pages(_render(document, tmp_path))))


def test_five_hundred_score_rows_span_pages_with_the_header_repeated(tmp_path):
    document = {"title": "Many scores", "version": 2, "appendix": {"scores": [
        {"benchmark": "Emotional intelligence", "item_id": f"it-{i:04d}", "model": "trained",
         "criterion": "empathy", "score": str(1 + i % 5), "scorer": "people"} for i in range(1, 501)]}}
    pages = [_flat(text) for text in _pages(_render(document, tmp_path))]
    with_rows = [text for text in pages if "it-0" in text]
    assert len(with_rows) >= 5
    assert all(TABLE_HEADER in text for text in with_rows)
    everything = " ".join(pages)
    assert all(f"it-{i:04d}" in everything for i in range(1, 501))


def test_markup_in_the_text_prints_literally(tmp_path):
    reply = "<b>&amp; 5 < 6"
    document = {"title": "R&D <report> & co", "version": 1,
                "examples": {"best": [{"trained_reply": reply, "base_reply": "<br/>"}]},
                "benchmarks": [{"label": "Brand voice", "flagged": [
                    {"item_id": "bv-001", "prompt": "Is a > b & <i>c</i>?", "reply": "&lt;"}]}]}
    text = _flat("\n".join(_pages(_render(document, tmp_path))))
    assert reply in text
    assert "Is a > b & <i>c</i>?" in text
    assert "R&D <report> & co" in text
    assert "<br/>" in text and "&lt;" in text


def test_it_writes_to_a_binary_stream():
    buffer = io.BytesIO()
    render_report({"title": "Stream", "version": 1}, buffer)
    assert buffer.getvalue().startswith(b"%PDF-")
    assert "Stream" in PdfReader(io.BytesIO(buffer.getvalue())).pages[0].extract_text()


def test_its_pages_render_to_images(rendered):
    _, path = rendered
    pdf = pypdfium2.PdfDocument(path)
    assert len(pdf) > 5
    for page in pdf:
        pixels = np.asarray(page.render(scale=1).to_pil().convert("L"))
        assert pixels.shape[0] == 842 and pixels.min() < 200  # A4 (842 pt high), something drawn


def _sample_files() -> list[Path]:
    files = [ROOT / "data/sample/elena_morales_chat.jsonl"]
    files += [p for p in sorted((ROOT / "validation/benchmarks").rglob("*")) if p.is_file()]
    return files


def test_the_fonts_draw_every_character_of_the_sample_data_and_benchmarks():
    files = _sample_files()
    assert len(files) >= 5
    for path in files:
        assert missing_glyphs(path.read_text(encoding="utf-8")) == set(), path


def test_missing_glyphs_names_what_the_fonts_cannot_draw():
    assert missing_glyphs("café ½ — “quoted” ≥ ✓ ✗\n\tok") == set()
    assert missing_glyphs("a漢🙂b") == {"漢", "🙂"}


def test_the_fonts_are_registered_once_and_reused(tmp_path):
    from reportlab.pdfbase import pdfmetrics

    render_report({"title": "One", "version": 1}, tmp_path / "one.pdf")
    render_report(copy.deepcopy({"title": "Two", "version": 1}), tmp_path / "two.pdf")
    registered = pdfmetrics.getRegisteredFontNames()
    assert all(registered.count(name) == 1 for name in FONT_NAMES.values())


def test_it_imports_neither_django_nor_other_apps():
    tree = ast.parse((ROOT / "validation/report_pdf.py").read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    ours = {"config", "api", "dashboard", "notifications", "validation", "monitoring", "artifacts",
            "training", "core", "gpu_worker", "django", "rest_framework"}
    assert {m for m in modules if m and m.split(".")[0] in ours} <= {"core"}
    assert any(isinstance(node, ast.ImportFrom) and node.module == "core"
               and [a.name for a in node.names] == ["humanize"] for node in ast.walk(tree))
    assert "matplotlib.pyplot" not in modules


def test_the_charts_font_is_the_dejavu_sans_inside_matplotlib():
    import matplotlib
    from matplotlib.font_manager import FontProperties, findfont

    path = Path(findfont(FontProperties(family=report_pdf.CHART_FONT), fallback_to_default=False))
    assert path.name == "DejaVuSans.ttf"
    assert path.resolve().parent == (Path(matplotlib.get_data_path()) / "fonts" / "ttf").resolve()
