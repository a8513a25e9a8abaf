"""The validation suite: the benchmark sets the evaluators run (docs/worker-contract.md,
"Validation suite"), read from `config.validation_suite` and checked field by field.

The control plane validates every set before it sends one, so the checks here are a defence:
a malformed suite stops the job in preprocessing, before any model is loaded, with a
SuiteError (a ConfigError, classified `configuration`) naming each bad field, e.g.
``validation_suite: emotional_intelligence.items[3].messages: must end with a user turn``.

Only what the worker uses is required (ids, messages, references, questions, options,
answers); the other documented fields are type-checked when present, and fields nobody
documented are ignored inside sets and items (a set may carry notes for people). Unknown keys
at the top level are refused, so a misspelt set name cannot silently skip an evaluator.

Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpu_worker.config import ConfigError

SET_KEYS = ("emotional_intelligence", "knowledge_retention", "brand_voice")
TOP_LEVEL_KEYS = ("system_prompt", *SET_KEYS)
# How many problems the error lists (its first line names the first).
MAX_LISTED_PROBLEMS = 20


class SuiteError(ConfigError):
    """The validation suite cannot be used; ``problems`` lists "field: reason" strings."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        first = f"validation_suite: {self.problems[0]}"
        more = len(self.problems) - 1
        if more:
            first += f" (and {more} more problem{'s' if more != 1 else ''})"
        lines = [first, *(f"  {p}" for p in self.problems[1:MAX_LISTED_PROBLEMS])]
        if len(self.problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED_PROBLEMS} more")
        super().__init__("\n".join(lines))


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read and check a suite file; return the parsed suite (unchanged). Raises SuiteError."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SuiteError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise SuiteError([f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    try:
        suite = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError([f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from exc
    check_suite(suite)
    return suite


def check_suite(suite: Any) -> None:
    """Raise SuiteError listing every problem of a parsed suite; return None when it is usable."""
    problems: list[str] = []
    if not isinstance(suite, dict):
        raise SuiteError([f"must be a JSON object (got {type(suite).__name__})"])
    unknown = sorted(set(suite) - set(TOP_LEVEL_KEYS))
    if unknown:
        problems.append(f"{', '.join(unknown)}: unknown key(s); known: {', '.join(TOP_LEVEL_KEYS)}")
    prompt = suite.get("system_prompt")
    if prompt is not None and not isinstance(prompt, str):
        problems.append(f"system_prompt: must be a string or null (got {_kind(prompt)})")
    checkers = {"emotional_intelligence": _check_ei_item, "knowledge_retention": _check_kr_item,
                "brand_voice": _check_bv_item}
    for key in SET_KEYS:
        if key in suite:
            _check_set(suite[key], key, checkers[key], problems)
    if problems:
        raise SuiteError(problems)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_set(value: Any, where: str, check_item: Any, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object (got {_kind(value)})")
        return
    for name in ("name", "version", "sha256"):
        if not isinstance(value.get(name), str):
            problems.append(f"{where}.{name}: must be a string (got {_kind(value.get(name))})")
    if where == "brand_voice" and "characteristics" in value:
        _check_characteristics(value["characteristics"], f"{where}.characteristics", problems)
    items = value.get("items")
    if not isinstance(items, list) or not items:
        problems.append(f"{where}.items: must be a non-empty list (got {_kind(items)})")
        return
    seen: set[str] = set()
    for index, item in enumerate(items):
        at = f"{where}.items[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be an object (got {_kind(item)})")
            continue
        item_id = item.get("id")
        if not _nonempty_str(item_id):
            problems.append(f"{at}.id: must be a non-empty string (got {_kind(item_id)})")
        elif item_id in seen:
            problems.append(f"{at}.id: {item_id!r} is used by an earlier item")
        else:
            seen.add(item_id)
        check_item(item, at, problems)


def _check_messages(messages: Any, at: str, problems: list[str]) -> None:
    if not isinstance(messages, list) or not messages:
        problems.append(f"{at}: must be a non-empty list of messages (got {_kind(messages)})")
        return
    for index, message in enumerate(messages):
        where = f"{at}[{index}]"
        if not isinstance(message, dict):
            problems.append(f"{where}: must be an object with role and content (got {_kind(message)})")
            continue
        if message.get("role") not in ("user", "assistant"):
            problems.append(f"{where}.role: must be 'user' or 'assistant' (got {message.get('role')!r}); "
                            "the system prompt is the suite's system_prompt")
        if not _nonempty_str(message.get("content")):
            problems.append(f"{where}.content: must be a non-empty string")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        problems.append(f"{at}: must end with a user turn (the reply is the model's)")


def _check_optional(item: dict[str, Any], at: str, problems: list[str], name: str, kind: type, what: str) -> None:
    if name in item and item[name] is not None and not isinstance(item[name], kind):
        problems.append(f"{at}.{name}: must be {what} (got {_kind(item[name])})")


def _check_ei_item(item: dict[str, Any], at: str, problems: list[str]) -> None:
    _check_messages(item.get("messages"), f"{at}.messages", problems)
    if not _nonempty_str(item.get("reference")):
        problems.append(f"{at}.reference: must be a non-empty string (the reference reply)")
    _check_optional(item, at, problems, "category", str, "a string")
    _check_optional(item, at, problems, "needs_referral", bool, "true or false")
    _check_optional(item, at, problems, "referral", str, "a string")
    good = item.get("good_reply")
    if good is not None and not (isinstance(good, list) and all(isinstance(g, str) for g in good)):
        problems.append(f"{at}.good_reply: must be a list of strings")


def _check_bv_item(item: dict[str, Any], at: str, problems: list[str]) -> None:
    _check_messages(item.get("messages"), f"{at}.messages", problems)
    _check_optional(item, at, problems, "topic", str, "a string")
    _check_optional(item, at, problems, "needs_referral", bool, "true or false")


def _check_kr_item(item: dict[str, Any], at: str, problems: list[str]) -> None:
    if not _nonempty_str(item.get("question")):
        problems.append(f"{at}.question: must be a non-empty string")
    options = item.get("options")
    if not (isinstance(options, list) and 2 <= len(options) <= len(string.ascii_uppercase)):
        problems.append(f"{at}.options: must be a list of 2 to 26 strings (got {_kind(options)}"
                        f"{f' of {len(options)}' if isinstance(options, list) else ''})")
        options = None
    else:
        for index, option in enumerate(options):
            if not _nonempty_str(option):
                problems.append(f"{at}.options[{index}]: must be a non-empty string")
    answer = item.get("answer")
    letters = string.ascii_uppercase[: len(options)] if options else string.ascii_uppercase
    if not (isinstance(answer, str) and len(answer) == 1 and answer in letters):
        problems.append(f"{at}.answer: must be one of {', '.join(letters)} (got {answer!r})")
    _check_optional(item, at, problems, "topic", str, "a string")
    _check_optional(item, at, problems, "explanation", str, "a string")


def _check_characteristics(value: Any, at: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{at}: must be a list (got {_kind(value)})")
        return
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not _nonempty_str(item.get("key")):
            problems.append(f"{at}[{index}]: must be an object with a non-empty key")


# The system prompt


def dominant_system_prompt(conversations: Sequence[Any]) -> str | None:
    """The training data's dominant system prompt: the most common system message among the
    conversations (`data.Conversation`s or message lists), provided at least half of all the
    conversations carry that very message; otherwise None (no system prompt).

    A conversation's system message is its first message with role system. Ties go to the one
    seen first. Requiring half for the same text, not merely half with some system message,
    keeps a prompt templated per record ("You are Elena, talking to {name}") from electing an
    arbitrary one of its renderings.
    """
    counts: Counter[str] = Counter()
    for conversation in conversations:
        messages = getattr(conversation, "messages", conversation)
        system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        if isinstance(system, str) and system.strip():
            counts[system] += 1
    if not counts:
        return None
    prompt, count = counts.most_common(1)[0]
    return prompt if 2 * count >= len(conversations) else None


def suite_system_prompt(suite: dict[str, Any] | None, conversations: Sequence[Any]) -> str | None:
    """The system prompt the generation evaluators put before every prompt: the suite's
    `system_prompt` when it is a string ("" meaning none), else the data's dominant one."""
    if suite is not None and isinstance(suite.get("system_prompt"), str):
        return suite["system_prompt"] or None
    return dominant_system_prompt(conversations)
