"""Training data: load and validate a dataset file, normalise it to chat, split it, tokenise it.

Three record formats are accepted, one per file (detected from the records, reported back):

- ``messages``: OpenAI fine-tuning chat, ``{"messages": [{"role": ..., "content": ...}, ...]}``;
  roles are system, user, assistant; at least one assistant message. An assistant message may
  carry ``"weight": 0`` (OpenAI's convention) to be kept as context but not trained on.
- ``training_pairs``: ``system_prompt`` (optional), ``conversation_history`` (optional list of
  earlier user/assistant turns), ``current_user_input`` and ``target_response`` (required).
  Only ``target_response`` is trained on; the history is context. Other fields are ignored.
- ``prompt_completion``: ``prompt`` and ``completion`` (required), trained on the completion.

A file is either a JSON array of records or JSONL (one record per line, blank lines skipped).
Bad records never raise: every problem is collected with the line it starts on, so a user can
fix a whole file in one pass. Only a file that cannot be read as records at all raises.

Nothing here imports torch or transformers; the tokenizer is passed in.
"""

from __future__ import annotations

import bisect
import codecs
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

FORMATS = ("messages", "training_pairs", "prompt_completion")
CHAT_ROLES = ("system", "user", "assistant")
HISTORY_ROLES = ("user", "assistant")
MAX_STORED_PROBLEMS = 1000
# How many problems str(DatasetError) lists before summarising the rest.
MAX_REPORTED_PROBLEMS = 20
IGNORE_INDEX = -100


@dataclass(frozen=True)
class RecordProblem:
    """One thing wrong with one record. ``line`` is where the record starts (1-based).

    ``record`` is the 1-based index in a JSON array file (None for JSONL, where the line is the
    record). An empty ``field`` means the problem concerns the whole record.
    """

    line: int
    field: str
    reason: str
    record: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.record is None else f"line {self.line} (record {self.record})"
        what = f"{self.field} {self.reason}" if self.field else self.reason
        return f"{where}: {what}"


class DatasetError(Exception):
    """The dataset cannot be used. ``problems`` holds the stored problems (at most 1000);
    ``problem_count`` counts them all. ``str()`` is a readable multi-line report.

    Every DatasetError names at least one problem with its line, field and reason, so the
    control plane can store it structured; ``listed=False`` marks a problem that only restates
    the message (a whole-file error), which ``str()`` then does not repeat."""

    def __init__(self, message: str, problems: Sequence[RecordProblem] = (), problem_count: int | None = None,
                 *, listed: bool = True):
        self.message = message
        self.problems = list(problems)
        self.problem_count = len(self.problems) if problem_count is None else problem_count
        self.listed = listed
        super().__init__(message)

    def __str__(self) -> str:
        if not self.listed:
            return self.message
        lines = [self.message]
        lines += [f"  {p}" for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        hidden = self.problem_count - min(len(self.problems), MAX_REPORTED_PROBLEMS)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more problem{'s' if hidden != 1 else ''}")
        return "\n".join(lines)


@dataclass
class Conversation:
    """One record as chat messages, ready for ``tokenizer.apply_chat_template``.

    ``trainable_turns`` lists the indices of the assistant messages that get loss; None means
    every assistant message (the ``messages`` format without weights).
    """

    messages: list[dict[str, str]]
    line: int
    trainable_turns: list[int] | None = None


@dataclass
class DatasetReport:
    format: str
    records: int
    problems: list[RecordProblem]
    conversations: list[Conversation]
    problem_count: int = 0  # all problems found; ``problems`` stores at most MAX_STORED_PROBLEMS

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


# Loading
#
# Everything here streams: a file is read record by record (a JSONL line, or one element of a
# JSON array through json.JSONDecoder.raw_decode over a sliding buffer), so memory is bounded by
# the largest record, never by the file. load_dataset_file keeps the conversations (the worker
# trains on them); scan_dataset hands each one to a callback and keeps only counts and problems.

CHUNK_BYTES = 1 << 20
# The file's format is the one most of its first records have (see _detect_format); this many
# records in a known format, or this many characters, decide it.
FORMAT_SAMPLE_RECORDS = 100
FORMAT_SAMPLE_CHARS = 8 << 20
# A stored reason quotes at most this much of what the record held.
MAX_REASON_CHARS = 300
PROGRESS_EVERY_RECORDS = 1000
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = re.compile(r"[ \t\r\n]*")


@dataclass
class _Record:
    value: Any
    line: int
    index: int | None  # 1-based array index; None for JSONL
    size: int = 0  # characters, for the format sample's bound


@dataclass(frozen=True)
class _InvalidJSON:
    """A JSONL line that did not parse; kept as a record so problems stay in line order."""

    reason: str


@dataclass
class _Problems:
    """Collects problems, storing the first MAX_STORED_PROBLEMS and counting the rest."""

    stored: list[RecordProblem] = field(default_factory=list)
    count: int = 0

    def add(self, problem: RecordProblem) -> None:
        self.count += 1
        if len(self.stored) < MAX_STORED_PROBLEMS:
            if len(problem.reason) > MAX_REASON_CHARS:
                problem = replace(problem, reason=problem.reason[: MAX_REASON_CHARS - 1] + "…")
            self.stored.append(problem)


@dataclass
class DatasetScan:
    """What scan_dataset found: counts and the (capped) problems, no conversations."""

    format: str
    records: int
    conversations: int
    problems: list[RecordProblem]
    problem_count: int
    bytes_read: int

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


def _whole_file_error(name: str, reason: str, line: int = 1, record: int | None = None) -> DatasetError:
    """A DatasetError whose one structured problem says the same as its message."""
    return DatasetError(f"{name}: {reason}", [RecordProblem(line, "", reason, record)], 1, listed=False)


class _Source:
    """A binary stream with a push-back buffer, a byte count and the byte-order mark removed."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.pending = b""
        self.bytes_read = 0
        first = stream.read(CHUNK_BYTES) or b""
        if first.startswith(_BOM):  # spreadsheet exports often start with one
            first = first[len(_BOM):]
            self.bytes_read += len(_BOM)
        self.pending = first

    def read(self, n: int) -> bytes:
        if self.pending:
            out, self.pending = self.pending[:n], self.pending[n:]
        else:
            out = self.stream.read(n) or b""
        self.bytes_read += len(out)
        return out

    def readline(self) -> bytes:
        if self.pending:
            cut = self.pending.find(b"\n")
            if cut >= 0:
                out, self.pending = self.pending[: cut + 1], self.pending[cut + 1:]
            else:
                out, self.pending = self.pending + (self.stream.readline() or b""), b""
        else:
            out = self.stream.readline() or b""
        self.bytes_read += len(out)
        return out

    def first_char(self) -> bytes:
        """The first non-whitespace byte (b"" for an empty file), left unread."""
        while True:
            stripped = self.pending.lstrip(b" \t\r\n")
            if stripped:
                return stripped[:1]
            more = self.stream.read(CHUNK_BYTES) or b""
            if not more:
                return b""
            self.pending += more

    def first_line(self, limit: int) -> bytes | None:
        """The first non-blank line, left unread; None if it is longer than `limit` bytes."""
        while True:
            start = len(self.pending) - len(self.pending.lstrip(b" \t\r\n"))
            cut = self.pending.find(b"\n", start)
            if cut >= 0:
                return self.pending[start:cut]
            if len(self.pending) - start > limit:
                return None
            more = self.stream.read(CHUNK_BYTES) or b""
            if not more:
                return self.pending[start:]
            self.pending += more


class _ArrayParser:
    """Values of a JSON array read from a stream through a sliding text buffer.

    Only the unread tail and the current element are held. Lines and columns of positions are
    tracked incrementally (positions only move forward).
    """

    def __init__(self, source: _Source, name: str):
        self.source = source
        self.name = name
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.offset = 0  # characters dropped from the buffer's front
        self.mark, self.line, self.last_newline = 0, 1, -1  # last_newline: absolute offset

    def _more(self, n: int | None = None) -> bool:
        """Append up to n more bytes' worth of text (a chunk by default); False at end of file."""
        if self.eof:
            return False
        before = self.source.bytes_read
        raw = self.source.read(n or CHUNK_BYTES)
        try:
            text = self.utf8.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            held = len(exc.object) - len(raw)  # bytes carried over from the previous read
            byte = before - held + exc.start
            line = self.line_at(len(self.buf)) + exc.object[: exc.start].count(b"\n")
            raise _whole_file_error(self.name, f"line {line}: not UTF-8 text (byte {byte})", line) from exc
        if not raw:
            self.eof = True
        self.buf += text
        return bool(raw) or bool(text)

    def _compact(self) -> None:
        if self.pos > CHUNK_BYTES:
            self.line_at(self.pos)
            self.buf = self.buf[self.pos:]
            self.offset += self.pos
            self.mark -= self.pos
            self.pos = 0

    def line_at(self, pos: int) -> int:
        if pos > self.mark:
            newlines = self.buf.count("\n", self.mark, pos)
            if newlines:
                self.line += newlines
                self.last_newline = self.offset + self.buf.rfind("\n", self.mark, pos)
            self.mark = pos
        return self.line

    def column_at(self, pos: int) -> int:
        self.line_at(pos)
        return self.offset + pos - self.last_newline

    def skip_ws(self) -> bool:
        """Move past whitespace; False at end of file."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def value(self, record: int | None) -> Any:
        """Decode the value at pos, reading on (doubling) until it is complete."""
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more(max(CHUNK_BYTES, len(self.buf) - self.pos)):
                    continue
                raise self.syntax_error(exc.pos, exc.msg, record) from exc
            # A number or literal ending at the buffer's end may go on in the next read.
            if end == len(self.buf) and self._more():
                continue
            self.pos = end
            return value

    def syntax_error(self, pos: int, msg: str, record: int | None) -> DatasetError:
        line, column = self.line_at(pos), self.column_at(pos)
        where = f" (in record {record} of the array)" if record else ""
        reason = f"not valid JSON at line {line} column {column}: {msg}{where}"
        problem = RecordProblem(line, "", f"not valid JSON ({msg} at column {column})", record)
        return DatasetError(f"{self.name}: {reason}", [problem], 1, listed=False)

    def records(self) -> Iterator[_Record]:
        self.skip_ws()
        self.pos += 1  # the "[" the caller saw
        if not self.skip_ws():
            raise self.syntax_error(self.pos, "the array is not closed with ']'", None)
        if self.buf[self.pos] == "]":
            self.pos += 1
            self.expect_end()
            raise _whole_file_error(self.name, "the dataset is an empty JSON array")
        index = 0
        while True:
            index += 1
            start = self.pos
            line = self.line_at(start)
            value = self.value(index)
            yield _Record(value, line, index, self.pos - start)
            self._compact()
            if not self.skip_ws():
                raise self.syntax_error(self.pos, "the array is not closed with ']'", index)
            if self.buf[self.pos] == ",":
                self.pos += 1
                if not self.skip_ws():
                    raise self.syntax_error(self.pos, "the array is not closed with ']'", index)
                continue
            if self.buf[self.pos] == "]":
                self.pos += 1
                self.expect_end()
                return
            raise self.syntax_error(self.pos, "Expecting ',' or ']'", index)

    def expect_end(self) -> None:
        if self.skip_ws():
            raise self.syntax_error(self.pos, "extra data after the JSON array", None)


def _jsonl_records(source: _Source, name: str) -> Iterator[_Record]:
    number = 0
    while raw := source.readline():
        number += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = source.bytes_read - len(raw) + exc.start
            raise _whole_file_error(name, f"line {number}: not UTF-8 text (byte {byte})", number) from exc
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            value = _InvalidJSON(f"not valid JSON ({exc.msg} at column {exc.colno})")
        yield _Record(value, number, None, len(line))


def _iter_records(source: _Source, name: str, suffix: str) -> Iterator[_Record]:
    first = source.first_char()
    if not first:
        raise _whole_file_error(name, "the dataset file is empty")
    array = first == b"["
    if array and suffix == ".jsonl":
        # A .jsonl file may open with a line that is itself an array ("[1, 2]"): that is a bad
        # record on line 1, not an array file. Only a first line that is not JSON by itself
        # ("[" alone, or "[{...},") makes it a JSON array.
        line = source.first_line(FORMAT_SAMPLE_CHARS)
        if line is not None:
            try:
                json.loads(line)
                array = False
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
    if array:
        yield from _ArrayParser(source, name).records()
    else:
        yield from _jsonl_records(source, name)


def _is_single_object(stream: BinaryIO, name: str) -> bool:
    """Whether the whole stream is one JSON object (read again from the start, streaming)."""
    try:
        stream.seek(0)
    except (AttributeError, OSError, ValueError):
        return False
    parser = _ArrayParser(_Source(stream), name)
    try:
        if not parser.skip_ws() or parser.buf[parser.pos] != "{":
            return False
        parser.value(None)
        return not parser.skip_ws()
    except DatasetError:
        return False


@contextmanager
def _opened(source: str | Path | BinaryIO, name: str | None) -> Iterator[tuple[BinaryIO, str]]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            handle = path.open("rb")
        except OSError as exc:
            display = name or str(path)
            raise _whole_file_error(display, f"cannot read the dataset file ({exc.strerror or exc})") from exc
        with handle:
            yield handle, name or str(path)
    else:
        yield source, name or getattr(source, "name", None) or "dataset"


def scan_dataset(
    source: str | Path | BinaryIO,
    *,
    name: str | None = None,
    on_conversation: Callable[[Conversation], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DatasetScan:
    """Check every record of a dataset, streaming; hand each good one to `on_conversation`.

    `source` is a path or a binary stream; `name` is what messages call it (and its suffix,
    .json or .jsonl, says how to read a file opening with "["). `on_progress(records,
    bytes_read)` is called every PROGRESS_EVERY_RECORDS records and at the end. Raises
    DatasetError only when the file as a whole is unusable: unreadable, empty, not JSON or
    JSONL at all, or in no format we know; its problems always name a line.
    """
    with _opened(source, name) as (stream, display):
        src = _Source(stream)
        records = _iter_records(src, display, Path(display).suffix.lower())
        sample: list[_Record] = []
        known = chars = 0
        for record in records:
            sample.append(record)
            chars += record.size
            known += isinstance(record.value, dict) and _record_format(record.value) is not None
            if known >= FORMAT_SAMPLE_RECORDS or chars >= FORMAT_SAMPLE_CHARS:
                break
        whole = known < FORMAT_SAMPLE_RECORDS and chars < FORMAT_SAMPLE_CHARS
        fmt = _detect_format(sample, display, stream if whole else None)
        problems = _Problems()
        count = good = 0
        for record in chain(sample, records):
            count += 1
            conversation = _normalise(record, fmt, problems)
            if conversation is not None:
                good += 1
                if on_conversation is not None:
                    on_conversation(conversation)
            if on_progress is not None and count % PROGRESS_EVERY_RECORDS == 0:
                on_progress(count, src.bytes_read)
        del sample
        if on_progress is not None:
            on_progress(count, src.bytes_read)
        return DatasetScan(fmt, count, good, problems.stored, problems.count, src.bytes_read)


def load_dataset_file(path: str | Path | BinaryIO, *, name: str | None = None) -> DatasetReport:
    """Read and check every record; return the good ones as conversations and every problem.

    The worker's loader: it keeps every conversation (it trains on them). The control plane
    validates with scan_dataset, which keeps none. Raises DatasetError as scan_dataset does.
    """
    conversations: list[Conversation] = []
    scan = scan_dataset(path, name=name, on_conversation=conversations.append)
    return DatasetReport(
        format=scan.format,
        records=scan.records,
        problems=scan.problems,
        conversations=conversations,
        problem_count=scan.problem_count,
    )


def validate_dataset_file(path: str | Path) -> DatasetReport:
    """Like load_dataset_file, but raise DatasetError if any record has a problem."""
    report = load_dataset_file(path)
    if report.problem_count:
        plural = "s" if report.problem_count != 1 else ""
        raise DatasetError(
            f"{path}: {report.problem_count} problem{plural} in {report.records} records "
            f"({report.format} format)",
            report.problems,
            report.problem_count,
        )
    return report


def _record_format(record: dict[str, Any]) -> str | None:
    if "messages" in record:
        return "messages"
    if "current_user_input" in record or "target_response" in record:
        return "training_pairs"
    if "prompt" in record or "completion" in record:
        return "prompt_completion"
    return None


def _detect_format(sample: list[_Record], name: str, whole_stream: BinaryIO | None) -> str:
    """The format most of the first records look like; the odd ones out are reported against it.

    `whole_stream` is given when the sample is the whole file (so "nothing parsed" means the
    file is not JSONL at all, and it may be worth checking for a single JSON object).
    """
    votes = Counter(f for f in (_record_format(r.value) for r in sample if isinstance(r.value, dict)) if f is not None)
    if votes:
        best = max(votes.values())
        return next(f for f in FORMATS if votes[f] == best)
    if sample and all(isinstance(r.value, _InvalidJSON) for r in sample):
        # Nothing parsed: not a JSONL file with some bad lines but something else entirely.
        if whole_stream is not None and _is_single_object(whole_stream, name):
            reason = ("the file is a single JSON object; expected a JSON array of records "
                      "or JSONL (one record per line)")
            raise _whole_file_error(name, reason)
        problems = _Problems()
        for record in sample:
            problems.add(RecordProblem(record.line, "", record.value.reason))
        scope = "no line holds a JSON record" if whole_stream is not None else "no line of its start holds a JSON record"
        raise DatasetError(f"{name}: not JSON or JSONL: {scope}", problems.stored, problems.count)
    objects = [r for r in sample if isinstance(r.value, dict)]
    if not objects:
        # Records, but none of them an object: each is reported where it is, in file order.
        problems = _Problems()
        for record in sample:
            _normalise(record, FORMATS[0], problems)
        raise DatasetError(f"{name}: no record is a JSON object; {problems.stored[0]}", problems.stored, problems.count)
    first = objects[0]
    sample_fields = sorted(str(k)[:40] for k in first.value)[:10]
    seen = f"; the first record (line {first.line}) has fields {', '.join(sample_fields)}" if sample_fields else ""
    reason = ("unknown dataset format: expected records with 'messages', or 'current_user_input' and "
              f"'target_response', or 'prompt' and 'completion'{seen}")
    problem = RecordProblem(first.line, "", "has none of the fields of a known format (messages; "
                            "current_user_input and target_response; prompt and completion)", first.index)
    raise DatasetError(f"{name}: {reason}", [problem], 1, listed=False)


# Normalisation to chat


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Checker:
    """Checks one record, adding a problem per defect; ``ok`` tells whether it is usable."""

    def __init__(self, record: _Record, problems: _Problems):
        self.record = record
        self.problems = problems
        self.ok = True

    def fail(self, name: str, reason: str) -> None:
        self.ok = False
        self.problems.add(RecordProblem(self.record.line, name, reason, self.record.index))

    def text(self, obj: dict[str, Any], key: str, name: str, required: bool = True) -> str | None:
        if key not in obj or (obj[key] is None and not required):
            if required:
                self.fail(name, "is missing")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.fail(name, f"must be a string (got {_json_type(value)})")
            return None
        if not value.strip():
            self.fail(name, "is empty")
            return None
        return value

    def turns(self, value: Any, name: str, roles: tuple[str, ...]) -> list[dict[str, Any]] | None:
        if not isinstance(value, list):
            self.fail(name, f"must be an array of {{role, content}} objects (got {_json_type(value)})")
            return None
        turns = []
        for i, turn in enumerate(value):
            here = f"{name}[{i}]"
            if not isinstance(turn, dict):
                self.fail(here, f"must be an object with role and content (got {_json_type(turn)})")
                continue
            role = turn.get("role")
            if "role" not in turn:
                self.fail(f"{here}.role", "is missing")
            elif role not in roles:
                self.fail(f"{here}.role", f"must be one of {', '.join(roles)} (got {role!r})")
                role = None
            content = self.text(turn, "content", f"{here}.content")
            if role in roles and content is not None:
                turns.append(turn)
        return turns


def _normalise(record: _Record, fmt: str, problems: _Problems) -> Conversation | None:
    check = _Checker(record, problems)
    value = record.value
    if isinstance(value, _InvalidJSON):
        check.fail("", value.reason)
        return None
    if not isinstance(value, dict):
        check.fail("", f"record must be a JSON object (got {_json_type(value)})")
        return None
    if fmt == "messages":
        conversation = _from_messages(value, record.line, check)
    elif fmt == "training_pairs":
        conversation = _from_training_pair(value, record.line, check)
    else:
        conversation = _from_prompt_completion(value, record.line, check)
    return conversation if check.ok else None


def _from_messages(obj: dict[str, Any], line: int, check: _Checker) -> Conversation | None:
    if "messages" not in obj:
        check.fail("messages", "is missing")
        return None
    turns = check.turns(obj["messages"], "messages", CHAT_ROLES)
    if turns is None or not check.ok:
        return None
    if not turns:
        check.fail("messages", "must not be empty")
        return None
    messages = [{"role": t["role"], "content": t["content"]} for t in turns]
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistant:
        check.fail("messages", "must contain at least one assistant message")
        return None
    for i in assistant:
        if "weight" in turns[i] and turns[i]["weight"] not in (0, 1):
            check.fail(f"messages[{i}].weight", f"must be 0 or 1 (got {turns[i]['weight']!r})")
    trainable = [i for i in assistant if turns[i].get("weight", 1) == 1]
    if check.ok and not trainable:
        check.fail("messages", "has no assistant message with weight 1, so nothing to train on")
    if not check.ok:
        return None
    weighted = len(trainable) != len(assistant)
    return Conversation(messages, line, trainable if weighted else None)


def _from_training_pair(obj: dict[str, Any], line: int, check: _Checker) -> Conversation | None:
    system = check.text(obj, "system_prompt", "system_prompt", required=False)
    history: list[dict[str, Any]] = []
    if obj.get("conversation_history") is not None:
        history = check.turns(obj["conversation_history"], "conversation_history", HISTORY_ROLES) or []
    user = check.text(obj, "current_user_input", "current_user_input")
    target = check.text(obj, "target_response", "target_response")
    if not check.ok or user is None or target is None:
        return None
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": t["role"], "content": t["content"]} for t in history]
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": target}]
    return Conversation(messages, line, [len(messages) - 1])


def _from_prompt_completion(obj: dict[str, Any], line: int, check: _Checker) -> Conversation | None:
    prompt = check.text(obj, "prompt", "prompt")
    completion = check.text(obj, "completion", "completion")
    if prompt is None or completion is None:
        return None
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return Conversation(messages, line, [1])


# Split


def split_conversations(
    conversations: Sequence[Conversation], eval_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """Seeded split into (train, eval), both in their original order.

    The same seed and input always give the same split (random.Random with an int seed does not
    depend on PYTHONHASHSEED). With two or more conversations each side gets at least one.
    """
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be between 0 and 1 (got {eval_fraction!r})")
    n = len(conversations)
    if n < 2:
        return list(conversations), []
    n_eval = min(max(round(n * eval_fraction), 1), n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = set(order[:n_eval])
    train = [c for i, c in enumerate(conversations) if i not in held_out]
    evaluation = [c for i, c in enumerate(conversations) if i in held_out]
    return train, evaluation


# Tokenisation


def _common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the common prefix of two token lists or two strings (bisection over slice
    comparisons, which run in C)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _trim_end(tokenizer: Any, full: list[int], start: int, end: int) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if end <= start and eos is not None:
        # A template that renders the last turn differently: fall back to the next end-of-turn.
        end = next((j + 1 for j in range(start, len(full)) if full[j] == eos), len(full))
    # The template's separator after the end-of-turn token (ChatML's "\n") is not the model's
    # to predict as part of the answer; drop trailing whitespace-only tokens.
    while end > start and not tokenizer.decode([full[end - 1]]).strip():
        end -= 1
    return end


def _segment_tokens(tokenizer: Any) -> tuple[str, ...]:
    """Added tokens (ChatML's <|im_start|>, <|im_end|>) that split text into segments the
    tokenizer encodes independently: the text after one tokenises the same whatever came
    before. Only a fast tokenizer (offsets) and tokens that absorb no whitespace qualify."""
    if not getattr(tokenizer, "is_fast", False):
        return ()
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return tuple(t.content for t in decoder.values()
                 if t.content and not getattr(t, "lstrip", False) and not getattr(t, "rstrip", False))


def _agree(full: list[int], ends: list[int] | None, encoded: Sequence[Sequence[int]], part: tuple[int, int]) -> int:
    """Common prefix of the full rendering's tokens and a partial rendering's: the full one's
    tokens up to the partial's cut, then its tail's (see assistant_spans_batch)."""
    cut, tail_key = part
    kept = bisect.bisect_right(ends, cut) if ends is not None and cut else 0
    return kept + _common_prefix(full[kept:], encoded[tail_key])


def assistant_spans_batch(
    tokenizer: Any, conversations: Sequence[tuple[list[dict[str, str]], Iterable[int] | None]]
) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """assistant_spans for several conversations, with one tokenizer call for all of them.

    For assistant message i, where its content begins is the larger of two lower bounds: the
    common prefix with the conversation up to i rendered with a generation prompt (ends right
    after the assistant header when the template is prefix-stable), and with the conversation
    up to i with that message's content emptied (identical to the full one up to the content;
    this also covers templates that inject a default system prompt, which a prefix of zero
    messages would not show). It ends where the conversation up to and including i stops
    agreeing with the full one (the whole rendering for the last message), trailing
    whitespace-only tokens dropped.

    Those partial renderings share most of their text with the full one. A segment token
    (see _segment_tokens) inside the shared text splits both the same way, so the partial
    rendering's tokens are the full one's up to that point plus its own short tail: only the
    tail is tokenised. Without segment tokens each rendering is tokenised whole.
    """
    segments = _segment_tokens(tokenizer)
    texts: dict[str, int] = {}

    def render(messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def partial(full_text: str, messages: list[dict[str, str]], generation_prompt: bool) -> tuple[int, int]:
        """(characters of the full text shared, key of the tail's text)"""
        text = render(messages, generation_prompt)
        shared = _common_prefix(full_text, text)
        cut = 0
        for token in segments:
            at = full_text.rfind(token, 0, shared)
            if at >= 0:
                cut = max(cut, at + len(token))
        return cut, texts.setdefault(text[cut:], len(texts))

    plans = []
    for messages, trainable_turns in conversations:
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        # Only assistant messages can carry loss, whatever indices the caller passes.
        turns = assistant if trainable_turns is None else sorted(set(trainable_turns) & set(assistant))
        full_text = render(messages, False)
        parts = [
            (partial(full_text, messages[:i], True) if i > 0 else None,
             partial(full_text, [*messages[:i], {"role": "assistant", "content": ""}], False),
             None if i == len(messages) - 1 else partial(full_text, messages[: i + 1], False))
            for i in turns
        ]
        plans.append((texts.setdefault(full_text, len(texts)), parts))
    # Rendering to text and tokenising without special tokens is what apply_chat_template does
    # itself; doing it in two steps avoids its return type changing between versions.
    ordered = list(texts)
    if segments:
        batch = tokenizer(ordered, add_special_tokens=False, return_offsets_mapping=True)
        encoded, offsets = batch["input_ids"], batch["offset_mapping"]
    else:
        encoded, offsets = (tokenizer(ordered, add_special_tokens=False)["input_ids"] if ordered else []), None

    results = []
    for full_key, parts in plans:
        full = list(encoded[full_key])
        ends = [end for _, end in offsets[full_key]] if offsets is not None else None
        spans = []
        for prefix, emptied, upto in parts:
            start = _agree(full, ends, encoded, prefix) if prefix is not None else 0
            start = max(start, _agree(full, ends, encoded, emptied))
            end = len(full) if upto is None else _agree(full, ends, encoded, upto)
            spans.append((start, _trim_end(tokenizer, full, start, end)))
        results.append((full, spans))
    return results


def assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]], trainable_turns: Iterable[int] | None = None
) -> tuple[list[int], list[tuple[int, int]]]:
    """The full rendering's token ids and the [start, end) spans that carry loss."""
    return assistant_spans_batch(tokenizer, [(messages, trainable_turns)])[0]


def tokenize_conversation(
    tokenizer: Any,
    messages: list[dict[str, str]],
    max_seq_length: int,
    trainable_turns: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Render with the tokenizer's chat template; labels are -100 except on trained assistant
    turns (their content and end-of-turn token). Truncates to max_seq_length from the right.

    Returns {"input_ids": list[int], "labels": list[int], "truncated": bool}.
    """
    full, spans = assistant_spans(tokenizer, messages, trainable_turns)
    labels = [IGNORE_INDEX] * len(full)
    for start, end in spans:
        labels[start:end] = full[start:end]
    return {
        "input_ids": full[:max_seq_length],
        "labels": labels[:max_seq_length],
        "truncated": len(full) > max_seq_length,
    }


def _percentile(histogram: Counter[int], count: int, q: float) -> int:
    """Nearest-rank percentile of the lengths counted in `histogram` (length -> how many)."""
    if not count:
        return 0
    rank = max(math.ceil(q / 100 * count), 1)
    seen = 0
    for length in sorted(histogram):
        seen += histogram[length]
        if seen >= rank:
            return length
    return max(histogram)


# A conversation with more characters than this is counted in pieces (see _long_conversation):
# tokenising megabytes at once costs the tokenizer hundreds of bytes per character.
LONG_CONVERSATION_CHARS = 256 * 1024
_SEGMENT_CHARS = 64 * 1024
# A byte-level BPE pre-tokenizer (GPT-2's pattern, SmolLM2's) starts a new piece at a single
# space between a non-space and a letter (" word"); pieces never merge across it, so the token
# counts of text cut there add up to the count of the whole.
_PIECE_BOUNDARY = re.compile(r"(?<=[^\s]) (?=[^\W\d_])")


def _safe_cuts(text: str, every: int) -> list[int]:
    """Positions, about `every` characters apart, where `text` can be cut between pieces."""
    cuts, pos = [], every
    while pos < len(text):
        match = _PIECE_BOUNDARY.search(text, pos)
        if match is None:
            break
        cuts.append(match.start())
        pos = match.start() + every
    return cuts


def count_tokens_in_pieces(tokenizer: Any, text: str) -> int:
    """len(tokenizer(text)) without tokenising it all at once (bounded memory)."""
    bounds = [0, *_safe_cuts(text, _SEGMENT_CHARS), len(text)]
    return sum(len(tokenizer(text[a:b], add_special_tokens=False)["input_ids"]) for a, b in zip(bounds, bounds[1:], strict=False))


def _long_conversation(
    tokenizer: Any, messages: list[dict[str, str]], turns: Iterable[int] | None, limit: int
) -> tuple[int, list[tuple[int, int]] | None]:
    """(full length, loss spans valid up to `limit`) of a very long conversation, in bounded memory.

    The length is counted in pieces. The spans come from a copy cut (between pieces) after
    LONG_CONVERSATION_CHARS characters of content: its tokens are the full rendering's up to
    the cut, so spans clipped at `limit` are the same, provided the cut lies beyond `limit`
    tokens; otherwise (None) the caller tokenises the whole conversation.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    length = count_tokens_in_pieces(tokenizer, text)
    budget, cut = LONG_CONVERSATION_CHARS, []
    for message in messages:
        content = message["content"]
        if len(content) > budget:
            cuts = [c for c in _safe_cuts(content, max(budget // 2, 1)) if c <= budget]
            cut.append({**message, "content": content[: cuts[-1] if cuts else budget]})
            break
        cut.append(message)
        budget -= len(content)
    full, spans = assistant_spans(tokenizer, cut, turns)
    if len(full) <= limit + 64:
        return length, None
    return length, spans


# Conversations tokenised together (one tokenizer call for all their renderings).
STATS_BATCH = 64


class TokenStatistics:
    """Token statistics accumulated over conversations added one at a time (see token_statistics).

    Lengths are kept as a histogram (length -> count): percentiles are exact and memory grows
    with the number of distinct lengths, never with the number of conversations. Conversations
    are tokenised in batches of STATS_BATCH; `on_length(conversation, length)` is called for
    each, in the order added, once it has been counted (result() counts the last batch).
    """

    def __init__(self, tokenizer: Any, max_seq_length: int,
                 on_length: Callable[[Any, int], None] | None = None):
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.on_length = on_length
        self.pending: list[tuple[Any, list[dict[str, str]], list[int] | None]] = []
        self.lengths: Counter[int] = Counter()
        self.count = self.length_sum = self.total = self.trainable = self.truncated = self.untrainable = 0

    def add(self, conversation: Conversation | list[dict[str, str]]) -> None:
        if isinstance(conversation, Conversation):
            messages, turns = conversation.messages, conversation.trainable_turns
        else:
            messages, turns = conversation, None
        if sum(len(m["content"]) for m in messages) > LONG_CONVERSATION_CHARS:
            self.flush()  # keep on_length in the order added
            length, spans = _long_conversation(self.tokenizer, messages, turns, self.max_seq_length)
            if spans is None:
                full, spans = assistant_spans(self.tokenizer, messages, turns)
                length = len(full)
            self._count(conversation, length, spans)
            return
        self.pending.append((conversation, messages, turns))
        if len(self.pending) >= STATS_BATCH:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        results = assistant_spans_batch(self.tokenizer, [(messages, turns) for _, messages, turns in pending])
        for (conversation, _, _), (full, spans) in zip(pending, results, strict=True):
            self._count(conversation, len(full), spans)

    def _count(self, conversation: Any, length: int, spans: list[tuple[int, int]]) -> None:
        limit = self.max_seq_length
        self.lengths[length] += 1
        self.count += 1
        self.length_sum += length
        self.total += min(length, limit)
        kept = sum(max(0, min(end, limit) - start) for start, end in spans)
        self.trainable += kept
        self.truncated += length > limit
        self.untrainable += kept == 0
        if self.on_length is not None:
            self.on_length(conversation, length)

    def result(self) -> dict[str, Any]:
        self.flush()
        return {
            "conversations": self.count,
            "total_tokens": self.total,
            "trainable_tokens": self.trainable,
            "mean_length": self.length_sum / self.count if self.count else 0.0,
            "p50_length": _percentile(self.lengths, self.count, 50),
            "p95_length": _percentile(self.lengths, self.count, 95),
            "max_length": max(self.lengths) if self.lengths else 0,
            "truncated": self.truncated,
            "untrainable": self.untrainable,
            "max_seq_length": self.max_seq_length,
        }


def token_statistics(
    tokenizer: Any, conversations: Iterable[Conversation | list[dict[str, str]]], max_seq_length: int
) -> dict[str, Any]:
    """Token counts for the preprocessing report.

    Lengths (mean/p50/p95/max) are of the full, untruncated renderings, so they show what
    max_seq_length would need to be; total and trainable tokens are after truncation, i.e. what
    training sees. ``untrainable`` counts conversations left with no labelled token. Streams:
    `conversations` may be any iterable, read once.
    """
    stats = TokenStatistics(tokenizer, max_seq_length)
    for conversation in conversations:
        stats.add(conversation)
    return stats.result()
