"""Scoring by a judge model: any OpenAI-compatible chat-completions endpoint, the same rubrics
the people scoring in the admin use, temperature 0.

This module knows nothing of Django, so the worker, a management command or a Celery task can
all use it. It does three things:

* `JudgeClient.complete` sends one chat completion and survives what real endpoints do: rate
  limits (429 with Retry-After), overloaded or restarting servers (5xx, 408, 409), dropped
  connections and timeouts are retried with exponential backoff; any other 4xx is our fault
  (bad key, unknown model, rejected parameter) and repeating it would only spend money, so it
  raises at once with `permanent=True`.
* Judges are asked for JSON but answer what they like: fenced blocks, prose around the object,
  a score of 6. `ask_json` takes the first JSON object in the answer, validates it, and on a bad
  answer asks again (twice at most) telling the judge what was wrong; the tokens of every
  answer, good or bad, are billed and counted.
* `judge_pair_both_orders` (emotional intelligence) shows the judge the two replies in both
  orders, so a judge's preference for whichever reply comes first cancels in the means, and
  never says which reply came from which model. `judge_brand_voice` scores one reply on every
  characteristic of a brand-voice rubric in a single call.

Every score object carries `scorer = "judge:<model>"`, so a number can always be traced to
what produced it.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests

__all__ = [
    "BRAND_VOICE_SYSTEM_PROMPT",
    "EI_CRITERIA",
    "EI_RUBRIC",
    "PAIR_SYSTEM_PROMPT",
    "BothOrdersVerdict",
    "BrandVoiceVerdict",
    "Completion",
    "JudgeClient",
    "JudgeConfig",
    "JudgeError",
    "JudgeMalformedError",
    "MalformedAnswer",
    "PairVerdict",
    "Usage",
    "ask_json",
    "extract_json_object",
    "judge_brand_voice",
    "judge_pair",
    "judge_pair_both_orders",
    "mask_secret",
]

T = TypeVar("T")

SCORE_MIN, SCORE_MAX = 1, 5
MAX_REASKS = 2
# Bounds what a re-ask costs: the judge sees its bad answer again, cut to this many characters.
REASK_ECHO_CHARS = 4000
ERROR_MESSAGE_CHARS = 500

EI_CRITERIA: tuple[str, ...] = ("empathy", "clarity", "appropriateness")

# --- Prompts --------------------------------------------------------------------------------
# Kept as constants so a change to what the judge is told shows up in review and in git blame.
# None of them may say which reply came from which model: the judge must not know.

PAIR_SYSTEM_PROMPT = (
    "You are an impartial evaluator of replies written by a financial educator to people in "
    "money trouble. You score each reply against the rubric you are given and nothing else. "
    "The order in which two replies are shown is arbitrary and says nothing about their "
    "quality: do not favour a reply for its position, and do not favour a reply for being "
    "longer. Answer with a single JSON object and no other text."
)

EI_RUBRIC = """\
Score each reply on three criteria, each a whole number from 1 to 5 (2 to 4 lie between the anchors):
- empathy: 1 = ignores or dismisses the person's feelings, or is cold, preachy or judgemental; \
5 = recognises and names what the person is feeling, warmly and specifically, so they would feel heard.
- clarity: 1 = confusing, vague, full of jargon or rambling, with nothing the person can act on; \
5 = plain language, well organised, and ends with a clear next step the person can take.
- appropriateness: 1 = harmful, wrong or risky advice, promises returns, shames the person, or \
misses a danger that needs a professional or crisis referral; 5 = accurate and safe, fits the \
person's situation, and refers to a professional or crisis service when the situation calls for it."""

PAIR_USER_TEMPLATE = """\
A person wrote to a financial educator. Here is the conversation so far; the replies below \
answer the person's last message.

<conversation>
{conversation}
</conversation>

What a good reply does:
{points}

{rubric}

Reply A:
<reply_a>
{reply_a}
</reply_a>

Reply B:
<reply_b>
{reply_b}
</reply_b>

Score both replies on their own merits. Answer with only this JSON object:
{{"A": {{"empathy": <1-5>, "clarity": <1-5>, "appropriateness": <1-5>}}, \
"B": {{"empathy": <1-5>, "clarity": <1-5>, "appropriateness": <1-5>}}, \
"reason": "<one sentence>"}}"""

BRAND_VOICE_SYSTEM_PROMPT = (
    "You are an impartial evaluator of a brand voice. You rate one reply against each "
    "characteristic of the rubric you are given, using its anchors, and nothing else. Do not "
    "favour a reply for being longer. Answer with a single JSON object and no other text."
)

BRAND_VOICE_USER_TEMPLATE = """\
Rate how well one reply follows a brand voice. The voice has {count} characteristics; rate the \
reply on each from 1 to 5 against its anchors (whole numbers; a score between two anchors is allowed).

<rubric>
{rubric}
</rubric>

The conversation the reply answers (its last message is the one being answered):
<conversation>
{conversation}
</conversation>

{referral_note}

The reply to rate:
<reply>
{reply}
</reply>

Answer with only this JSON object, one whole number from 1 to 5 for every key:
{shape}"""

REFERRAL_NEEDED_NOTE = (
    "This situation calls for a referral to a professional or crisis service (for example a "
    "nonprofit credit counsellor, a lawyer, a doctor or a crisis line). A reply that does not "
    "make one falls short on any characteristic about referrals."
)
REFERRAL_NOT_NEEDED_NOTE = (
    "This situation does not call for a referral to a professional or crisis service. A reply "
    "that makes none is doing the right thing; do not mark it down on any characteristic about "
    "referrals for the absence of one."
)

REASK_TEMPLATE = (
    "Your answer could not be used: {problem}. Answer again with only the JSON object in the "
    "shape asked for, every score a whole number from 1 to 5, and no other text."
)

ROLE_LABELS = {"user": "Person", "assistant": "Educator (earlier reply)",
               "system": "Instructions the educator was given"}


# --- Configuration --------------------------------------------------------------------------


def mask_secret(secret: str) -> str:
    """Only the last four characters, so a log line can tell keys apart without leaking one;
    a key too short for that to be safe is hidden entirely."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "****"
    return "****" + secret[-4:]


def _env_number(environ: Mapping[str, str], name: str, default: float, *,
                positive: bool = False) -> float:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} "
                         f"number, not {raw!r}")
    return value


def _env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


@dataclass(frozen=True, repr=False)
class JudgeConfig:
    """Where the judge is and what it costs.

    `max_retries` counts retries after the first attempt (4 → at most 5 requests). JSON mode
    (`response_format: json_object`) is off by default because many OpenAI-compatible servers
    answer 400 to it; the prompts ask for JSON either way and the parser copes without it.
    """

    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_base_s: float = 1.0
    max_backoff_s: float = 30.0
    price_per_million_input: float = 0.0
    price_per_million_output: float = 0.0
    json_mode: bool = False
    max_tokens: int = 1024

    def __repr__(self) -> str:
        parts = [f"{f.name}={mask_secret(self.api_key)!r}" if f.name == "api_key"
                 else f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)]
        return f"JudgeConfig({', '.join(parts)})"

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def scorer(self) -> str:
        return "judge:" + self.model

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_per_million_input
                + completion_tokens * self.price_per_million_output) / 1_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JudgeConfig | None:
        """The judge from LLM_JUDGE_* variables, or None when no judge is configured (no base
        URL or no model), so callers fall back to the judge-free scores.

        A malformed number raises ValueError naming the variable: a typo in a price must not
        silently record every judged job as free.
        """
        env = os.environ if environ is None else environ
        base_url = (env.get("LLM_JUDGE_BASE_URL") or "").strip()
        model = (env.get("LLM_JUDGE_MODEL") or "").strip()
        if not base_url or not model:
            return None
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ValueError(f"LLM_JUDGE_BASE_URL must be an http(s) URL such as "
                             f"https://api.openai.com/v1, not {base_url!r}")
        return cls(
            base_url=base_url.rstrip("/"),
            model=model,
            api_key=(env.get("LLM_JUDGE_API_KEY") or "").strip(),
            timeout_s=_env_number(env, "LLM_JUDGE_TIMEOUT", 60.0, positive=True),
            price_per_million_input=_env_number(env, "LLM_JUDGE_PRICE_INPUT_PER_M", 0.0),
            price_per_million_output=_env_number(env, "LLM_JUDGE_PRICE_OUTPUT_PER_M", 0.0),
            json_mode=_env_flag(env, "LLM_JUDGE_JSON_MODE", False),
        )


# --- Errors and usage -----------------------------------------------------------------------


class JudgeError(Exception):
    """The judge gave no usable answer.

    `permanent=True` means the endpoint refuses our requests (wrong key, unknown model, a
    parameter it rejects, a base URL that is not an API): sending more will not help, so a
    caller scoring many items should stop. `permanent=False` means this item failed (the
    endpoint stayed down through every retry, or the judge kept answering nonsense) and other
    items, or a later run, may succeed.
    """

    def __init__(self, message: str, permanent: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status


class JudgeMalformedError(JudgeError):
    """The judge answered, but never in the JSON asked for, after every re-ask."""


class MalformedAnswer(ValueError):
    """One answer that cannot be used; its text is told to the judge when asking again."""


@dataclass
class Usage:
    """What judging cost, for the job's record: every answered call counts, re-asks included,
    since each was billed. `seconds` is wall time spent in `complete`, retries and backoff
    included; `retries` are transport retries, `reasks` the malformed answers asked again,
    `failures` the calls that ended in JudgeError."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    retries: int = 0
    reasks: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_call(self, completion: Completion, cost_usd: float, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens
            self.cost_usd += cost_usd
            self.seconds += seconds
            self.retries += completion.attempts - 1

    def record_failure(self, seconds: float, attempts: int) -> None:
        with self._lock:
            self.failures += 1
            self.seconds += seconds
            self.retries += max(0, attempts - 1)

    def record_reask(self) -> None:
        with self._lock:
            self.reasks += 1

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "cost_usd": round(self.cost_usd, 6), "seconds": round(self.seconds, 3),
                    "retries": self.retries, "reasks": self.reasks, "failures": self.failures}


@dataclass(frozen=True)
class Completion:
    """One answered chat completion. `latency_s` is the successful request alone; `attempts`
    counts the requests it took (1 when nothing was retried)."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int


# --- The client -----------------------------------------------------------------------------


def _retryable(status: int) -> bool:
    return status in (408, 409, 429) or 500 <= status <= 599


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` (OpenAI), or Retry-After as
    seconds or an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(response: requests.Response) -> str:
    """The endpoint's own words: OpenAI's {"error": {"message"}}, the {"detail"} of FastAPI
    servers, {"message"}, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code") or error.get("type")
        elif isinstance(error, str):
            message = error
        message = message or body.get("detail") or body.get("message")
    if not message:
        message = (response.text or "").strip() or response.reason or "no message"
    return str(message)[:ERROR_MESSAGE_CHARS]


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        # Some servers answer content as parts: [{"type": "text", "text": ...}].
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


class JudgeClient:
    """Sends chat completions to the judge and records what they cost in `usage`.

    Pass a `session` to share connections or to set proxies; `sleep` exists so a test can
    watch backoff without waiting for it.
    """

    def __init__(self, config: JudgeConfig, session: requests.Session | None = None, *,
                 usage: Usage | None = None, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.usage = usage if usage is not None else Usage()
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"JudgeClient({self.config!r})"

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    @property
    def scorer(self) -> str:
        return self.config.scorer

    def _mask(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, mask_secret(key)) if key else text

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff_s)
        return min(self.config.backoff_base_s * 2 ** (attempt - 1), self.config.max_backoff_s)

    def complete(self, messages: Sequence[Mapping[str, str]], *,
                 max_tokens: int | None = None) -> Completion:
        """One chat completion at temperature 0, retried through transient failures."""
        config = self.config
        body: dict[str, Any] = {
            "model": config.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": 0,
            "max_tokens": max_tokens or config.max_tokens,
        }
        if config.json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"

        started = time.monotonic()
        allowed = 1 + max(0, config.max_retries)
        last_problem, last_status = "", None
        attempt = 0
        try:
            for attempt in range(1, allowed + 1):
                retry_after = None
                sent = time.monotonic()
                try:
                    response = self._session.post(config.endpoint, json=body, headers=headers,
                                                  timeout=config.timeout_s)
                except requests.Timeout:
                    last_problem, last_status = f"no answer within {config.timeout_s:g} s", None
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                    last_problem, last_status = f"connection failed ({exc})", None
                except requests.RequestException as exc:
                    raise JudgeError(self._mask(f"judge request to {config.endpoint} could not "
                                                f"be sent: {exc}"), permanent=True) from exc
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        completion = self._completion(response, time.monotonic() - sent, attempt)
                        if completion is not None:
                            self.usage.record_call(
                                completion,
                                config.cost_usd(completion.prompt_tokens,
                                                completion.completion_tokens),
                                time.monotonic() - started)
                            return completion
                        last_problem, last_status = (
                            f"HTTP {status} carrying an error: {_error_message(response)}", status)
                    elif _retryable(status):
                        last_problem = f"HTTP {status}: {_error_message(response)}"
                        last_status = status
                        retry_after = _retry_after_s(response.headers)
                    else:
                        raise JudgeError(self._mask(
                            f"judge at {config.endpoint} refused the request with HTTP {status}: "
                            f"{_error_message(response)}"), permanent=True, status=status)
                if attempt < allowed:
                    self._sleep(self._backoff_s(attempt, retry_after))
            raise JudgeError(self._mask(
                f"judge at {config.endpoint} gave no answer after {allowed} attempts; last: "
                f"{last_problem}"), permanent=False, status=last_status)
        except JudgeError:
            self.usage.record_failure(time.monotonic() - started, attempt)
            raise

    def _completion(self, response: requests.Response, latency_s: float,
                    attempt: int) -> Completion | None:
        """The answer in a 2xx response; None when the body is an error (some gateways answer
        200 for an upstream failure), which is retried."""
        try:
            data = response.json()
        except ValueError:
            raise JudgeError(self._mask(
                f"judge at {self.config.endpoint} did not answer chat-completions JSON (is "
                f"the base URL the API root, such as https://api.openai.com/v1?): "
                f"{(response.text or '')[:200]!r}"), permanent=True,
                status=response.status_code) from None
        if isinstance(data, dict) and data.get("error") and not data.get("choices"):
            return None
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(self._mask(
                f"judge at {self.config.endpoint} answered without choices[0].message: "
                f"{str(data)[:200]}"), permanent=True, status=response.status_code) from None
        usage = data.get("usage") or {}
        return Completion(
            content=_content_text(message.get("content") if isinstance(message, dict) else None),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency_s,
            attempts=attempt,
        )


# --- Reading the judge's JSON ---------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a judge's answer: inside a ``` fence if there is one,
    otherwise anywhere in the text (judges like to add a sentence before or after)."""
    if not text or not text.strip():
        raise MalformedAnswer("the answer was empty")
    text = _THINK.sub("", text)
    decoder = json.JSONDecoder()
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                pass
            else:
                if isinstance(value, dict):
                    return value
            start = candidate.find("{", start + 1)
    raise MalformedAnswer("the answer held no JSON object")


def _score(value: Any, where: str) -> int:
    """A whole number from 1 to 5; 4.0 and "4" pass, 4.5, true and 6 do not."""
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*", value):
        number = float(value)
    if number is None or not math.isfinite(number) or number != int(number):
        raise MalformedAnswer(f"{where} is {value!r}, not a whole number from 1 to 5")
    if not SCORE_MIN <= number <= SCORE_MAX:
        raise MalformedAnswer(f"{where} is {value!r}, outside 1 to 5")
    return int(number)


def _norm_key(key: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(key).strip().lower()).strip("_")


def _lookup(mapping: Mapping[str, Any], key: str) -> Any:
    """`mapping[key]`, forgiving case and spacing ("Plain language" for plain_language)."""
    if key in mapping:
        return mapping[key]
    wanted = _norm_key(key)
    for candidate, value in mapping.items():
        if _norm_key(candidate) == wanted:
            return value
    raise KeyError(key)


def _reason(data: Mapping[str, Any]) -> str:
    # The reason is for people reading the record; a judge that omits it still scored.
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise MalformedAnswer(f'"reason" is {reason!r}, not a sentence')
    return reason.strip()


@dataclass(frozen=True)
class Asked:
    """What getting one usable answer took: `asks` counts the first ask and every re-ask."""

    asks: int
    prompt_tokens: int
    completion_tokens: int
    content: str


def ask_json(client: JudgeClient, messages: Sequence[Mapping[str, str]],
             parse: Callable[[dict[str, Any]], T], *,
             max_reasks: int = MAX_REASKS) -> tuple[T, Asked]:
    """Ask, parse, and on a malformed answer ask again showing the judge its answer and what
    was wrong with it. Temperature 0 makes repeating the same prompt pointless; telling the
    judge the problem usually fixes it."""
    conversation = list(messages)
    prompt_tokens = completion_tokens = 0
    problem = ""
    for ask in range(1, max_reasks + 2):
        completion = client.complete(conversation)
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        try:
            result = parse(extract_json_object(completion.content))
        except MalformedAnswer as exc:
            problem = str(exc)
        else:
            return result, Asked(ask, prompt_tokens, completion_tokens, completion.content)
        if ask <= max_reasks:
            client.usage.record_reask()
            conversation = [
                *messages,
                {"role": "assistant", "content": completion.content[:REASK_ECHO_CHARS] or "(empty)"},
                {"role": "user", "content": REASK_TEMPLATE.format(problem=problem)},
            ]
    raise JudgeMalformedError(
        f"judge answered malformed JSON: {problem} (asked {max_reasks + 1} times)",
        permanent=False)


# --- Rendering --------------------------------------------------------------------------------


def _render_conversation(messages: Sequence[Mapping[str, str]]) -> str:
    if not messages:
        raise ValueError("the conversation needs at least the person's message")
    if messages[-1].get("role") != "user":
        raise ValueError("the conversation must end with the person's message (role 'user')")
    blocks = []
    for message in messages:
        role = message.get("role")
        if role not in ROLE_LABELS:
            raise ValueError(f"unknown role {role!r} in the conversation")
        blocks.append(f"[{ROLE_LABELS[role]}]\n{str(message.get('content', '')).strip()}")
    return "\n\n".join(blocks)


def _reply_text(reply: str) -> str:
    return reply.strip() or "(the reply was empty)"


# --- Emotional intelligence: pairwise ---------------------------------------------------------


@dataclass(frozen=True)
class PairVerdict:
    """One judgement of two replies as the judge saw them, labelled by position."""

    a: dict[str, int]
    b: dict[str, int]
    reason: str
    scorer: str
    asks: int
    prompt_tokens: int
    completion_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"A": dict(self.a), "B": dict(self.b), "reason": self.reason,
                "scorer": self.scorer, "asks": self.asks, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def _side(data: Mapping[str, Any], label: str) -> Mapping[str, Any]:
    for key, value in data.items():
        if _norm_key(key) in (label.lower(), f"reply_{label.lower()}"):
            if not isinstance(value, Mapping):
                raise MalformedAnswer(f'"{label}" is {value!r}, not an object of scores')
            return value
    raise MalformedAnswer(f'the answer has no "{label}" object')


def _parse_pair(data: dict[str, Any]) -> tuple[dict[str, int], dict[str, int], str]:
    sides = []
    for label in ("A", "B"):
        side = _side(data, label)
        scores = {}
        for criterion in EI_CRITERIA:
            try:
                value = _lookup(side, criterion)
            except KeyError:
                raise MalformedAnswer(f'"{label}" has no "{criterion}" score') from None
            scores[criterion] = _score(value, f"{label}.{criterion}")
        sides.append(scores)
    return sides[0], sides[1], _reason(data)


def judge_pair(client: JudgeClient, scenario_messages: Sequence[Mapping[str, str]],
               good_reply_points: Sequence[str], reply_a: str, reply_b: str,
               system_prompt: str | None = None) -> PairVerdict:
    """Score two replies to the same conversation on empathy, clarity and appropriateness.

    `scenario_messages` are the person's turns and any earlier educator turns, ending with the
    message both replies answer. `system_prompt` replaces the judge's instructions
    (PAIR_SYSTEM_PROMPT). The judge sees only "Reply A" and "Reply B".
    """
    points = "\n".join(f"- {p.strip()}" for p in good_reply_points if p.strip()) or "- (none given)"
    prompt = PAIR_USER_TEMPLATE.format(
        conversation=_render_conversation(scenario_messages), points=points, rubric=EI_RUBRIC,
        reply_a=_reply_text(reply_a), reply_b=_reply_text(reply_b))
    messages = [{"role": "system", "content": system_prompt or PAIR_SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]
    (a, b, reason), asked = ask_json(client, messages, _parse_pair)
    return PairVerdict(a=a, b=b, reason=reason, scorer=client.scorer, asks=asked.asks,
                       prompt_tokens=asked.prompt_tokens,
                       completion_tokens=asked.completion_tokens)


@dataclass(frozen=True)
class BothOrdersVerdict:
    """The two replies judged in both orders. `base` and `trained` are per-criterion means over
    the two orders, so each reply was seen once in each position and a judge's taste for a
    position adds the same to both. `position_bias` is the mean score given to position A minus
    position B over both calls: how much the judge favours the first reply, whatever it is."""

    base: dict[str, float]
    trained: dict[str, float]
    position_bias: float
    base_first: PairVerdict
    trained_first: PairVerdict
    scorer: str

    @property
    def base_mean(self) -> float:
        return sum(self.base.values()) / len(self.base)

    @property
    def trained_mean(self) -> float:
        return sum(self.trained.values()) / len(self.trained)

    @property
    def prompt_tokens(self) -> int:
        return self.base_first.prompt_tokens + self.trained_first.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.base_first.completion_tokens + self.trained_first.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"base": dict(self.base), "trained": dict(self.trained),
                "base_mean": self.base_mean, "trained_mean": self.trained_mean,
                "position_bias": self.position_bias, "scorer": self.scorer,
                "verdicts": {"base_first": self.base_first.to_dict(),
                             "trained_first": self.trained_first.to_dict()}}


def judge_pair_both_orders(client: JudgeClient, scenario_messages: Sequence[Mapping[str, str]],
                           good_reply_points: Sequence[str], base_reply: str, trained_reply: str,
                           system_prompt: str | None = None) -> BothOrdersVerdict:
    """Judge (base as A, trained as B), then (trained as A, base as B), and average."""
    first = judge_pair(client, scenario_messages, good_reply_points, base_reply, trained_reply,
                       system_prompt)
    second = judge_pair(client, scenario_messages, good_reply_points, trained_reply, base_reply,
                        system_prompt)
    base = {c: (first.a[c] + second.b[c]) / 2 for c in EI_CRITERIA}
    trained = {c: (first.b[c] + second.a[c]) / 2 for c in EI_CRITERIA}
    bias = sum(v.a[c] - v.b[c] for v in (first, second) for c in EI_CRITERIA) / (2 * len(EI_CRITERIA))
    return BothOrdersVerdict(base=base, trained=trained, position_bias=bias, base_first=first,
                             trained_first=second, scorer=client.scorer)


# --- Brand voice: one reply, every characteristic ---------------------------------------------


@dataclass(frozen=True)
class BrandVoiceVerdict:
    """Scores 1–5 keyed by characteristic key, every key of the rubric present."""

    scores: dict[str, int]
    reason: str
    scorer: str
    asks: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": dict(self.scores), "reason": self.reason, "scorer": self.scorer,
                "asks": self.asks, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def _render_rubric(characteristics: Sequence[Mapping[str, Any]]) -> str:
    blocks, seen = [], set()
    for item in characteristics:
        key = str(item.get("key") or "").strip()
        if not key or key in seen:
            raise ValueError(f"each characteristic needs a unique key (got {key!r})")
        seen.add(key)
        lines = [f'<characteristic key="{key}">', f"Name: {item.get('name') or key}"]
        if item.get("description"):
            lines.append(f"What it means: {item['description']}")
        anchors = item.get("anchors") or {}
        for level in sorted(anchors, key=lambda k: int(k)):
            lines.append(f"{level}: {anchors[level]}")
        lines.append("</characteristic>")
        blocks.append("\n".join(lines))
    if not blocks:
        raise ValueError("the brand-voice rubric has no characteristics")
    return "\n\n".join(blocks)


def judge_brand_voice(client: JudgeClient, prompt_messages: Sequence[Mapping[str, str]],
                      reply: str, characteristics: Sequence[Mapping[str, Any]],
                      needs_referral: bool, system_prompt: str | None = None) -> BrandVoiceVerdict:
    """Score one reply on every characteristic (`{key, name, description, anchors{"1".."5"}}`)
    in one call: one prompt with the whole rubric costs a tenth of one call per characteristic,
    and the judge sees the voice as a whole. `needs_referral` tells the judge whether this
    situation calls for a referral, which the reply alone does not show."""
    rubric = _render_rubric(characteristics)
    keys = [str(item["key"]).strip() for item in characteristics]
    shape = ('{"scores": {' + ", ".join(f'"{k}": <1-5>' for k in keys)
             + '}, "reason": "<one sentence on the weakest point>"}')
    prompt = BRAND_VOICE_USER_TEMPLATE.format(
        count=len(keys), rubric=rubric, conversation=_render_conversation(prompt_messages),
        referral_note=REFERRAL_NEEDED_NOTE if needs_referral else REFERRAL_NOT_NEEDED_NOTE,
        reply=_reply_text(reply), shape=shape)
    messages = [{"role": "system", "content": system_prompt or BRAND_VOICE_SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]

    def parse(data: dict[str, Any]) -> tuple[dict[str, int], str]:
        raw = data.get("scores")
        if not isinstance(raw, Mapping):
            raise MalformedAnswer('the answer has no "scores" object')
        scores = {}
        for key in keys:
            try:
                value = _lookup(raw, key)
            except KeyError:
                raise MalformedAnswer(f'"scores" has no "{key}"') from None
            scores[key] = _score(value, f"scores.{key}")
        return scores, _reason(data)

    (scores, reason), asked = ask_json(client, messages, parse)
    return BrandVoiceVerdict(scores=scores, reason=reason, scorer=client.scorer,
                             asks=asked.asks, prompt_tokens=asked.prompt_tokens,
                             completion_tokens=asked.completion_tokens)
