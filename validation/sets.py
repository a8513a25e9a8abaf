"""Benchmark sets: parsed and checked on load, every problem named by line and field.

Three kinds, one format each (docs/validation.md has the full reference):

- emotional_intelligence (JSONL): {"id", "category", "messages": [{"role", "content"}, ...]
  ending with the user's turn, "good_reply": [what a good reply does, ...], "reference": a
  reference reply, "needs_referral": bool, "referral": who (when needed)}
- knowledge_retention (JSONL): {"id", "topic", "question", "options": [4 strings], "answer":
  "A".."D", "explanation"}
- brand_voice: a rubric (JSON: {"characteristics": [{"key", "name", "description", "anchors":
  {"1".."5"}}]}) and prompts (JSONL: {"id", "topic", "messages", "needs_referral"})

Pure (no Django): the upload form, the API and the built-in sets all parse through here, and
the worker receives only what passed. A set's identity is its content: `sha256` of the bytes
that were parsed (the rubric's too, for brand voice), so a report can name exactly what it used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

EMOTIONAL_INTELLIGENCE = "emotional_intelligence"
KNOWLEDGE_RETENTION = "knowledge_retention"
BRAND_VOICE = "brand_voice"
KINDS = (EMOTIONAL_INTELLIGENCE, KNOWLEDGE_RETENTION, BRAND_VOICE)

MAX_ITEMS = 2000
MAX_TEXT = 20_000  # characters in any one message, reply or option
MAX_PROBLEMS = 20  # a file with hundreds of bad lines lists the first ones, then a count
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based line of the JSONL file (None: the file as a whole, or the rubric)
    field: str
    message: str
    file: str = ""

    def __str__(self) -> str:
        where = self.file or "file"
        if self.line is not None:
            where += f", line {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class SetError(ValueError):
    """The set is not usable; `problems` says where and what to change."""

    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems = problems
        self.more = more
        text = "; ".join(map(str, problems))
        if more:
            text += f"; and {more} more problem{'s' if more != 1 else ''}"
        super().__init__(text)


@dataclass(frozen=True)
class ParsedSet:
    kind: str
    items: list[dict[str, Any]]
    sha256: str
    characteristics: list[dict[str, Any]] = field(default_factory=list)

    def content(self) -> dict[str, Any]:
        """What is stored and sent to the worker."""
        if self.kind == BRAND_VOICE:
            return {"characteristics": self.characteristics, "items": self.items}
        return {"items": self.items}


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.more = 0

    def add(self, line: int | None, field_name: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, field_name, message, self.file))
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.problems:
            raise SetError(self.problems, self.more)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_TEXT


def _check_messages(record: dict[str, Any], line: int, out: _Collector) -> None:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.add(line, "messages", "must be a non-empty list of {\"role\", \"content\"} turns ending with the user's")
        return
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            out.add(line, where, "must be an object with 'role' and 'content'")
            continue
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            out.add(line, f"{where}.role", f"must be '{expected}' (turns alternate, starting with the user; "
                                            "the system prompt is the job's, not the set's)")
        if not _text(message.get("content")):
            out.add(line, f"{where}.content", f"must be non-empty text of at most {MAX_TEXT:,} characters")
    if len(messages) % 2 == 0:
        out.add(line, "messages", "must end with the user's turn (the reply is what the model writes)")


def _check_id(record: dict[str, Any], line: int, seen: dict[str, int], out: _Collector) -> None:
    item_id = record.get("id")
    if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > 64:
        out.add(line, "id", "must be a non-empty string of at most 64 characters")
    elif item_id in seen:
        out.add(line, "id", f"'{item_id}' is already used on line {seen[item_id]}; ids must be unique")
    else:
        seen[item_id] = line


def _check_ei(record: dict[str, Any], line: int, out: _Collector) -> None:
    _check_messages(record, line, out)
    if not _text(record.get("category")):
        out.add(line, "category", "must name the situation (for example 'debt_shame')")
    good = record.get("good_reply")
    if not isinstance(good, list) or not good or not all(_text(x) for x in good):
        out.add(line, "good_reply", "must be a non-empty list of what a good reply does, as text")
    if not _text(record.get("reference")):
        out.add(line, "reference", "must be a reference reply (non-empty text)")
    needs = record.get("needs_referral", False)
    if not isinstance(needs, bool):
        out.add(line, "needs_referral", "must be true or false")
    elif needs and not _text(record.get("referral")):
        out.add(line, "referral", "must say who to refer to when needs_referral is true")


def _check_kr(record: dict[str, Any], line: int, out: _Collector) -> None:
    if not _text(record.get("topic")):
        out.add(line, "topic", "must name the topic (for example 'taxes')")
    if not _text(record.get("question")):
        out.add(line, "question", "must be non-empty text")
    options = record.get("options")
    if not isinstance(options, list) or len(options) != 4 or not all(_text(o) for o in options):
        out.add(line, "options", "must be a list of exactly 4 non-empty answers")
    elif len({o.strip().casefold() for o in options}) != 4:
        out.add(line, "options", "must be 4 different answers")
    if record.get("answer") not in LETTERS:
        out.add(line, "answer", "must be one of \"A\", \"B\", \"C\", \"D\" (the correct option)")
    if not _text(record.get("explanation")):
        out.add(line, "explanation", "must say in one line why the answer is right")


def _check_bv(record: dict[str, Any], line: int, out: _Collector) -> None:
    _check_messages(record, line, out)
    if not isinstance(record.get("needs_referral", False), bool):
        out.add(line, "needs_referral", "must be true or false")


CHECKS = {EMOTIONAL_INTELLIGENCE: _check_ei, KNOWLEDGE_RETENTION: _check_kr, BRAND_VOICE: _check_bv}
ALLOWED = {
    EMOTIONAL_INTELLIGENCE: {"id", "category", "messages", "good_reply", "reference", "needs_referral", "referral"},
    KNOWLEDGE_RETENTION: {"id", "topic", "question", "options", "answer", "explanation"},
    BRAND_VOICE: {"id", "topic", "messages", "needs_referral"},
}


def _decode(data: bytes, out: _Collector) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        out.add(None, "", f"is not UTF-8 (byte {exc.start}); save it as UTF-8")
        return None


def parse_items(kind: str, data: bytes, *, file: str = "") -> list[dict[str, Any]]:
    """The records of one JSONL set, checked; SetError lists every problem (line, field)."""
    if kind not in CHECKS:
        raise SetError([Problem(None, "kind", f"'{kind}' is not a benchmark kind; use one of {', '.join(KINDS)}", file)])
    out = _Collector(file)
    text = _decode(data, out)
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate((text or "").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            out.add(number, "", f"is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            out.add(number, "", "must be a JSON object")
            continue
        unknown = sorted(set(record) - ALLOWED[kind])
        if unknown:
            out.add(number, unknown[0], f"is not a field of a {kind} item; fields: {', '.join(sorted(ALLOWED[kind]))}")
        _check_id(record, number, seen, out)
        CHECKS[kind](record, number, out)
        items.append({k: record[k] for k in sorted(ALLOWED[kind]) if k in record})
    if text is not None and not items and not out.problems:
        out.add(None, "", "has no records; one JSON object per line")
    if len(items) > MAX_ITEMS:
        out.add(None, "", f"has {len(items):,} records; at most {MAX_ITEMS:,}")
    out.raise_if_any()
    return items


def parse_rubric(data: bytes, *, file: str = "") -> list[dict[str, Any]]:
    """The brand-voice rubric's characteristics, checked (each with anchors 1 to 5)."""
    out = _Collector(file)
    text = _decode(data, out)
    out.raise_if_any()
    try:
        raw = json.loads(text or "")
    except json.JSONDecodeError as exc:
        out.add(exc.lineno, "", f"is not valid JSON ({exc.msg} at column {exc.colno})")
        out.raise_if_any()
    characteristics = raw.get("characteristics") if isinstance(raw, dict) else None
    if not isinstance(characteristics, list) or not characteristics:
        out.add(None, "characteristics", "must be a non-empty list of {\"key\", \"name\", \"description\", \"anchors\"}")
        out.raise_if_any()
    keys: set[str] = set()
    cleaned = []
    for index, item in enumerate(characteristics):
        where = f"characteristics[{index}]"
        if not isinstance(item, dict):
            out.add(None, where, "must be an object")
            continue
        key = item.get("key")
        if not isinstance(key, str) or not key.isidentifier():
            out.add(None, f"{where}.key", "must be a short identifier such as 'warmth'")
        elif key in keys:
            out.add(None, f"{where}.key", f"'{key}' appears twice")
        else:
            keys.add(key)
        for name in ("name", "description"):
            if not _text(item.get(name)):
                out.add(None, f"{where}.{name}", "must be non-empty text")
        anchors = item.get("anchors")
        if not isinstance(anchors, dict) or sorted(anchors) != ["1", "2", "3", "4", "5"] \
                or not all(_text(v) for v in anchors.values()):
            out.add(None, f"{where}.anchors", "must describe each score \"1\" to \"5\" in words")
        cleaned.append({k: item.get(k) for k in ("key", "name", "description", "anchors")})
    out.raise_if_any()
    return cleaned


def parse_set(kind: str, data: bytes, *, rubric: bytes | None = None, file: str = "",
              rubric_file: str = "") -> ParsedSet:
    """One benchmark set from its file (and, for brand voice, its rubric)."""
    characteristics: list[dict[str, Any]] = []
    digest = hashlib.sha256(data)
    if kind == BRAND_VOICE:
        if rubric is None:
            raise SetError([Problem(None, "rubric", "a brand-voice set needs its rubric (JSON) as well as its prompts",
                                    rubric_file)])
        characteristics = parse_rubric(rubric, file=rubric_file)
        digest.update(b"\0rubric\0" + rubric)
    items = parse_items(kind, data, file=file)
    return ParsedSet(kind, items, digest.hexdigest(), characteristics)
