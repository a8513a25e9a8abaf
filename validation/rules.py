"""The rubric points a program can check in a reply, without a judge or a person.

Six of brand voice's ten characteristics have a part a rule can see; the other four (warmth,
directness, education first, no judgement) need a reader and are left to people and the judge.
Each check answers True (met), False (missed) or None (does not apply: a referral check on a
reply that needs none). They are deliberately literal: a pass means the visible sign is there,
not that the reply is good, and every figure built on them is labelled "automatic".

Pure (no Django), tested with Hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

SCORER = "automatic"

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")

FEELING_WORDS = re.compile(
    r"\b(feel\w*|felt|scar\w+|stress\w*|overwhelm\w*|shame\w*|asham\w+|embarrass\w*|hard|heavy|"
    r"worr\w+|anxi\w+|afraid|fear\w*|frustrat\w*|angry|anger|upset|grie\w+|sorry|guilt\w*|"
    r"exhaust\w*|lonely|alone|panic\w*|relie\w+|understandabl\w+|tough|painful|hurt\w*|"
    r"nervous|terrif\w+|frighten\w*|sad\w*|loss|brave|courage)\b", re.IGNORECASE)
NEXT_STEP_VERBS = re.compile(
    r"^(?:(?:so|now|today|this week|tonight|first|next|for now|your next step)\W*\s*)*"
    r"(start|write|list|call|pull|open|set|check|send|try|pick|take|make|book|ask|look|gather|"
    r"find|add|put|log|download|request|schedule|sit|jot|email|text|tell|choose|move|cancel|"
    r"grab|note|sign|contact|reach|begin|do|could you|can you|would you|will you|let's|let us)\b",
    re.IGNORECASE)
PROMISES = re.compile(
    r"(guarantee[sd]?\s+(?:a\s+)?(?:\d+\s*%\s*)?(?:return|profit|gain|growth|income)|"
    r"(?:return|profit|gain)s?\s+(?:are|is)\s+guaranteed|"
    r"will\s+(?:definitely|certainly|surely|always)\s+(?:grow|double|rise|go up|pay off|make money)|"
    r"(?:can't|cannot|can not|won't)\s+lose|risk[- ]free\s+(?:return|investment|profit)|"
    r"(?:you(?:'ll| will))\s+(?:earn|make|get)\s+\d+(?:\.\d+)?\s*%|sure thing|guaranteed to (?:grow|double|rise))",
    re.IGNORECASE)
NEGATION_BEFORE = re.compile(r"\b(no|not|never|nothing|nobody|isn't|aren't|can't be|cannot be|don't|doesn't|won't)\b[^.!?]{0,25}$",
                             re.IGNORECASE)
REFERRALS = re.compile(
    r"\b(988|911|211|hotline|lifeline|crisis|lawyer|attorney|cpa|enrolled agent|tax (?:professional|pro|preparer|advisor)|"
    r"therapist|counsel(?:l)?or|counsel(?:l)?ing|doctor|physician|hospital|billing office|ftc|reportfraud|fraud department|"
    r"police|adult protective|eldercare|1-800-\w+|professional|legal aid|social worker|financial counsel(?:l)?or)\b",
    re.IGNORECASE)
DIGITS = re.compile(r"\d")

PLAIN_MAX_WORDS_PER_SENTENCE = 22


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def names_feeling_first(reply: str, **_: Any) -> bool | None:
    """A feeling is named in the first two sentences, before the advice."""
    opening = " ".join(sentences(reply)[:2])
    return bool(FEELING_WORDS.search(opening)) if opening else False


def one_next_step(reply: str, **_: Any) -> bool | None:
    """The reply ends with one question or one clear next action, not a list of them."""
    parts = paragraphs(reply)
    if not parts:
        return False
    last_paragraph = parts[-1]
    closing = sentences(last_paragraph)
    if not closing or last_paragraph.count("?") > 1:
        return False
    last = closing[-1].lstrip("-*• ").strip()
    return last.endswith("?") or bool(NEXT_STEP_VERBS.search(last))


def never_promises_returns(reply: str, **_: Any) -> bool | None:
    """No promised or guaranteed return ("no investment is guaranteed" is fine)."""
    for match in PROMISES.finditer(reply):
        if not NEGATION_BEFORE.search(reply[max(0, match.start() - 40):match.start()]):
            return False
    return True


def referrals_when_needed(reply: str, *, needs_referral: bool = False, **_: Any) -> bool | None:
    """Where the situation needs a professional or crisis support, the reply names one."""
    if not needs_referral:
        return None
    return bool(REFERRALS.search(reply))


def concrete_numbers(reply: str, **_: Any) -> bool | None:
    """At least one figure (an amount, a rate, a count of months)."""
    return bool(DIGITS.search(reply))


def plain_language(reply: str, **_: Any) -> bool | None:
    """Short sentences: on average at most 22 words."""
    found = sentences(reply)
    if not found:
        return False
    words = sum(len(_WORD.findall(s)) for s in found)
    return words / len(found) <= PLAIN_MAX_WORDS_PER_SENTENCE


CHECKS: dict[str, Callable[..., bool | None]] = {
    "names_feeling_first": names_feeling_first,
    "plain_language": plain_language,
    "concrete_numbers": concrete_numbers,
    "one_next_step": one_next_step,
    "referrals_when_needed": referrals_when_needed,
    "never_promises_returns": never_promises_returns,
}
# What the emotional-intelligence scenarios are checked for (seed 002's points a program sees).
EI_CHECKS = ("names_feeling_first", "one_next_step", "never_promises_returns", "referrals_when_needed")


def check_reply(reply: str, *, needs_referral: bool = False, keys: tuple[str, ...] | None = None) -> dict[str, bool | None]:
    """Every check (or `keys`) on one reply."""
    return {key: CHECKS[key](reply, needs_referral=needs_referral) for key in (keys or tuple(CHECKS))}


def pass_rate(results: list[dict[str, bool | None]]) -> float | None:
    """Share of applicable checks met over several replies (None: nothing applied)."""
    applicable = [v for r in results for v in r.values() if v is not None]
    return sum(applicable) / len(applicable) if applicable else None


def reply_score(checks: dict[str, bool | None]) -> float | None:
    """One reply's share of applicable checks met, 0 to 1."""
    return pass_rate([checks])
