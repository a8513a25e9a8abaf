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

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ``problem_count`` counts them all. ``str()`` is a readable multi-line report."""

    def __init__(self, message: str, problems: Sequence[RecordProblem] = (), problem_count: int | None = None):
        self.message = message
        self.problems = list(problems)
        self.problem_count = len(self.problems) if problem_count is None else problem_count
        super().__init__(message)

    def __str__(self) -> str:
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


@dataclass
class _Record:
    value: Any
    line: int
    index: int | None  # 1-based array index; None for JSONL


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
            self.stored.append(problem)


def load_dataset_file(path: str | Path) -> DatasetReport:
    """Read and check every record; return the good ones as conversations and every problem.

    Raises DatasetError only when the file as a whole is unusable: unreadable, empty, not JSON
    or JSONL at all, or in no format we know.
    """
    path = Path(path)
    text = _read_text(path)
    problems = _Problems()
    if text.lstrip().startswith("["):
        records = _parse_json_array(text, path)
    else:
        records = _parse_jsonl(text, path)
    objects = [r for r in records if isinstance(r.value, dict)]
    fmt = _detect_format(objects, path)
    conversations = []
    for record in records:
        conversation = _normalise(record, fmt, problems)
        if conversation is not None:
            conversations.append(conversation)
    return DatasetReport(
        format=fmt,
        records=len(records),
        problems=problems.stored,
        conversations=conversations,
        problem_count=problems.count,
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


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset file ({exc.strerror or exc})") from exc
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}: line {line}: not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise DatasetError(f"{path}: the dataset file is empty")
    return text


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _column_of(text: str, pos: int) -> int:
    return pos - (text.rfind("\n", 0, pos) + 1) + 1


def _parse_json_array(text: str, path: Path) -> list[_Record]:
    """Decode the array one element at a time, so each record knows the line it starts on."""
    decoder = json.JSONDecoder()
    records: list[_Record] = []
    pos = _skip_ws(text, text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        _expect_end(text, pos + 1, path)
        raise DatasetError(f"{path}: the dataset is an empty JSON array")
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _syntax_error(path, text, exc.pos, exc.msg, len(records) + 1) from exc
        records.append(_Record(value, _line_of(text, pos), len(records) + 1))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            _expect_end(text, pos + 1, path)
            return records
        reason = "Expecting ',' or ']'" if pos < len(text) else "the array is not closed with ']'"
        raise _syntax_error(path, text, pos, reason, len(records))


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _expect_end(text: str, pos: int, path: Path) -> None:
    pos = _skip_ws(text, pos)
    if pos < len(text):
        raise _syntax_error(path, text, pos, "extra data after the JSON array", None)


def _syntax_error(path: Path, text: str, pos: int, msg: str, record: int | None) -> DatasetError:
    where = f" (in record {record} of the array)" if record else ""
    return DatasetError(
        f"{path}: not valid JSON at line {_line_of(text, pos)} column {_column_of(text, pos)}: {msg}{where}"
    )


def _parse_jsonl(text: str, path: Path) -> list[_Record]:
    records: list[_Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            value = _InvalidJSON(f"not valid JSON ({exc.msg} at column {exc.colno})")
        records.append(_Record(value, number, None))
    if all(isinstance(r.value, _InvalidJSON) for r in records):
        # Nothing parsed: not a JSONL file with some bad lines but something else entirely.
        if _is_json_object(text):
            raise DatasetError(
                f"{path}: the file is a single JSON object; expected a JSON array of records "
                "or JSONL (one record per line)"
            )
        problems = [RecordProblem(r.line, "", r.value.reason) for r in records]
        raise DatasetError(
            f"{path}: not JSON or JSONL: no line holds a JSON record",
            problems[:MAX_STORED_PROBLEMS],
            len(problems),
        )
    return records


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _record_format(record: dict[str, Any]) -> str | None:
    if "messages" in record:
        return "messages"
    if "current_user_input" in record or "target_response" in record:
        return "training_pairs"
    if "prompt" in record or "completion" in record:
        return "prompt_completion"
    return None


def _detect_format(objects: list[_Record], path: Path) -> str:
    """The format most records look like; the odd ones out are reported against it."""
    votes = Counter(f for f in (_record_format(r.value) for r in objects) if f is not None)
    if not votes:
        sample = sorted(objects[0].value)[:10] if objects else []
        seen = f"; the first record (line {objects[0].line}) has fields {', '.join(sample)}" if sample else ""
        raise DatasetError(
            f"{path}: unknown dataset format: expected records with 'messages', or "
            f"'current_user_input' and 'target_response', or 'prompt' and 'completion'{seen}"
        )
    best = max(votes.values())
    return next(f for f in FORMATS if votes[f] == best)


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


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    """Token ids of the chat template's rendering, exactly as the model will see them.

    Rendering to text and tokenising without special tokens is what apply_chat_template does
    itself; doing it in two steps avoids its return type changing between versions.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _content_start(tokenizer: Any, messages: list[dict[str, str]], i: int, full: list[int]) -> int:
    """Where assistant message i's content begins in ``full``.

    Two renderings each give a lower bound: the prefix with a generation prompt (ends right
    after the assistant header when the template is prefix-stable), and the conversation up to
    i with that message's content emptied (identical to the full one up to the content; this
    also covers templates that inject a default system prompt, which a prefix of zero messages
    would not show). The larger bound is the tighter one.
    """
    start = 0
    if i > 0:
        start = _common_prefix(full, _render(tokenizer, messages[:i], generation_prompt=True))
    emptied = [*messages[:i], {"role": "assistant", "content": ""}]
    return max(start, _common_prefix(full, _render(tokenizer, emptied, generation_prompt=False)))


def _turn_end(tokenizer: Any, messages: list[dict[str, str]], i: int, full: list[int], start: int) -> int:
    """End (exclusive) of assistant message i's content plus its end-of-turn token."""
    end = len(full) if i == len(messages) - 1 else _common_prefix(full, _render(tokenizer, messages[: i + 1], False))
    eos = getattr(tokenizer, "eos_token_id", None)
    if end <= start and eos is not None:
        # A template that renders the last turn differently: fall back to the next end-of-turn.
        end = next((j + 1 for j in range(start, len(full)) if full[j] == eos), len(full))
    # The template's separator after the end-of-turn token (ChatML's "\n") is not the model's
    # to predict as part of the answer; drop trailing whitespace-only tokens.
    while end > start and not tokenizer.decode([full[end - 1]]).strip():
        end -= 1
    return end


def assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]], trainable_turns: Iterable[int] | None = None
) -> tuple[list[int], list[tuple[int, int]]]:
    """The full rendering's token ids and the [start, end) spans that carry loss."""
    full = _render(tokenizer, messages, generation_prompt=False)
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    # Only assistant messages can carry loss, whatever indices the caller passes.
    turns = assistant if trainable_turns is None else sorted(set(trainable_turns) & set(assistant))
    spans = []
    for i in turns:
        start = _content_start(tokenizer, messages, i, full)
        spans.append((start, _turn_end(tokenizer, messages, i, full, start)))
    return full, spans


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


def _percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return 0
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def token_statistics(
    tokenizer: Any, conversations: Iterable[Conversation | list[dict[str, str]]], max_seq_length: int
) -> dict[str, Any]:
    """Token counts for the preprocessing report.

    Lengths (mean/p50/p95/max) are of the full, untruncated renderings, so they show what
    max_seq_length would need to be; total and trainable tokens are after truncation, i.e. what
    training sees. ``untrainable`` counts conversations left with no labelled token.
    """
    lengths: list[int] = []
    total = trainable = truncated = untrainable = 0
    for conversation in conversations:
        if isinstance(conversation, Conversation):
            messages, turns = conversation.messages, conversation.trainable_turns
        else:
            messages, turns = conversation, None
        full, spans = assistant_spans(tokenizer, messages, turns)
        lengths.append(len(full))
        total += min(len(full), max_seq_length)
        kept = sum(max(0, min(end, max_seq_length) - start) for start, end in spans)
        trainable += kept
        truncated += len(full) > max_seq_length
        untrainable += kept == 0
    ordered = sorted(lengths)
    return {
        "conversations": len(lengths),
        "total_tokens": total,
        "trainable_tokens": trainable,
        "mean_length": sum(lengths) / len(lengths) if lengths else 0.0,
        "p50_length": _percentile(ordered, 50),
        "p95_length": _percentile(ordered, 95),
        "max_length": ordered[-1] if ordered else 0,
        "truncated": truncated,
        "untrainable": untrainable,
        "max_seq_length": max_seq_length,
    }
