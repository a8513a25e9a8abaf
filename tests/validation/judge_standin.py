"""A local stand-in for an OpenAI-compatible chat-completions endpoint, for the judge's tests.

A real HTTP server on 127.0.0.1 (a free port), so the tests drive `requests` and the client's
retry and timeout code for real rather than a mocked session:

    with JudgeStandIn(api_key="sk-test-...") as api:
        config = JudgeConfig(base_url=api.base_url, model="standin-judge", api_key=...)
        api.queue_rate_limit(retry_after=0.05)    # the next request is answered 429
        api.queue_server_error()                  # then 500
        api.queue_content("not JSON at all")      # then a malformed answer
        api.queue_json({...}, prompt_tokens=1000, completion_tokens=200)
        api.queue_error(400, "Unsupported parameter")   # an OpenAI-style error body
        api.queue_slow(2.0)                       # answers after 2 s (the client times out)
        api.position_bias = 1                     # the default judge adds 1 to Reply A
        api.requests                              # every request: path, headers, body, time

It checks what OpenAI checks first: the bearer key (401 with OpenAI's error body otherwise,
before any scripted answer is used), the path, and that the body has a model and messages;
`supports_json_mode=False` makes it reject `response_format` with a 400, as many compatible
servers do. With nothing queued it answers as a deterministic rule-based judge that reads the
prompt (see `rule_scores`), so a test can predict every score. Every answer carries usage.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EI_CRITERIA = ("empathy", "clarity", "appropriateness")
FEELING_WORDS = ("sounds", "feel", "understand", "hard", "scary", "heavy", "sorry")


def rule_scores(reply: str) -> dict[str, int]:
    """The default judge's scores for one reply, before any position bias: a longer reply
    (12 words or more) and one that asks the person a question score higher; naming a
    feeling helps empathy; promising a guarantee hurts appropriateness. Every score is 1..4,
    so a +1 position bias never clips at 5 and the both-orders means stay exact."""
    words = len(reply.split())
    long, question = int(words >= 12), int("?" in reply)
    feeling = int(any(w in reply.lower() for w in FEELING_WORDS))
    promise = int("guarantee" in reply.lower())
    return {
        "empathy": 1 + long + question + feeling,
        "clarity": 2 + long + question,
        "appropriateness": max(1, 2 + long + question - 2 * promise),
    }


def brand_rule_score(reply: str) -> int:
    return max(1, min(5, 3 + int("?" in reply) + int(len(reply.split()) >= 12)
                      - 2 * int("guarantee" in reply.lower())))


def _between(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.S)
    return match.group(1) if match else None


def _word_count(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival
    status: int = 0
    usage: dict[str, int] = field(default_factory=dict)  # what the answer billed, if any


@dataclass
class Step:
    kind: str  # content | status | slow
    content: str | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class JudgeStandIn:
    def __init__(self, api_key: str = "sk-standin-0123456789abcdef", *,
                 position_bias: int = 0, supports_json_mode: bool = True):
        self.api_key = api_key
        self.position_bias = position_bias
        self.supports_json_mode = supports_json_mode
        self.requests: list[Recorded] = []
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def __enter__(self) -> JudgeStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                standin._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                standin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes slow answers, so shutdown never waits on them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    @property
    def completions(self) -> list[Recorded]:
        """The requests answered 200: those the client was billed for."""
        return [r for r in self.requests if r.status == 200]

    # --- scripting ---

    def queue_json(self, answer: dict[str, Any], *, prompt_tokens: int | None = None,
                   completion_tokens: int | None = None) -> None:
        self.queue_content(json.dumps(answer), prompt_tokens=prompt_tokens,
                           completion_tokens=completion_tokens)

    def queue_content(self, content: str, *, prompt_tokens: int | None = None,
                      completion_tokens: int | None = None) -> None:
        self._push(Step("content", content=content, prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens))

    def queue_rate_limit(self, retry_after: float | str | None = 0.05) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self._push(Step("status", status=429, headers=headers, error={
            "message": "Rate limit reached for requests. Please try again shortly.",
            "type": "requests", "param": None, "code": "rate_limit_exceeded"}))

    def queue_server_error(self, status: int = 500) -> None:
        self._push(Step("status", status=status, error={
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": None, "code": None}))

    def queue_error(self, status: int, message: str, *, type: str = "invalid_request_error",
                    code: str | None = None, param: str | None = None) -> None:
        self._push(Step("status", status=status, error={
            "message": message, "type": type, "param": param, "code": code}))

    def queue_slow(self, seconds: float) -> None:
        """The next request is answered by the default judge, but only after `seconds`."""
        self._push(Step("slow", delay_s=seconds))

    def _push(self, step: Step) -> None:
        with self._lock:
            self._script.append(step)

    # --- the default judge ---

    def judge(self, body: dict[str, Any]) -> str:
        prompt = str(body["messages"][-1].get("content", ""))
        # A re-ask's last message is the complaint; the rubric is in the first user turn.
        for message in body["messages"]:
            if message.get("role") == "user" and "<reply" in str(message.get("content")):
                prompt = str(message["content"])
                break
        reply_a, reply_b = _between(prompt, "reply_a"), _between(prompt, "reply_b")
        if reply_a is not None and reply_b is not None:
            a, b = rule_scores(reply_a), rule_scores(reply_b)
            a = {k: min(5, v + self.position_bias) for k, v in a.items()}
            return json.dumps({"A": a, "B": b, "reason": "The longer reply that asks a question "
                                                         "engages the person more."})
        reply = _between(prompt, "reply")
        keys = re.findall(r'<characteristic key="([^"]+)">', prompt)
        if reply is not None and keys:
            score = brand_rule_score(reply)
            return json.dumps({"scores": {k: score for k in keys},
                               "reason": "Scored by the stand-in's rules."})
        return "I can only judge prompts that hold replies to score."

    # --- HTTP ---

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Recorded(handler.command, handler.path, dict(handler.headers.items()), body,
                          time.monotonic())
        with self._lock:
            self.requests.append(record)

        auth = handler.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ") if auth else ""
            # Echoes the key it was given in full, as some servers do, so the client's masking
            # is tested against the worst case.
            message = (f"Incorrect API key provided: {given}. You can find your API key at "
                       f"https://example.invalid/api-keys." if given else
                       "You didn't provide an API key.")
            return self._send_error(handler, record, 401, message, "invalid_request_error",
                                    "invalid_api_key")
        if handler.command != "POST" or handler.path.rstrip("/") != "/v1/chat/completions":
            return self._send_error(handler, record, 404,
                                    f"Invalid URL ({handler.command} {handler.path})",
                                    "invalid_request_error", None)
        problem = self._body_problem(body)
        if problem:
            return self._send_error(handler, record, 400, problem, "invalid_request_error", None)

        with self._lock:
            step = self._script.popleft() if self._script else None
        if step is not None and step.kind == "status":
            return self._send(handler, record, step.status, {"error": step.error}, step.headers)
        if step is not None and step.kind == "slow" and self._stopping.wait(step.delay_s):
            return  # the stand-in is stopping; the client gave up long ago
        content = step.content if step is not None and step.kind == "content" else self.judge(body)
        usage = {
            "prompt_tokens": (step.prompt_tokens if step and step.prompt_tokens is not None
                              else _word_count(body["messages"])),
            "completion_tokens": (step.completion_tokens
                                  if step and step.completion_tokens is not None
                                  else len(str(content).split())),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        record.usage = usage
        self._send(handler, record, 200, {
            "id": f"chatcmpl-standin-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        })

    def _body_problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "We could not parse the JSON body of your request."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty array"
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in (
                    "system", "user", "assistant") or not isinstance(message.get("content"), str):
                return f"Invalid value for 'messages[{i}]'"
        if "response_format" in body and not self.supports_json_mode:
            return "Unrecognized request argument supplied: response_format"
        return None

    def _send_error(self, handler: BaseHTTPRequestHandler, record: Recorded, status: int,
                    message: str, type: str, code: str | None) -> None:
        self._send(handler, record, status,
                   {"error": {"message": message, "type": type, "param": None, "code": code}})

    def _send(self, handler: BaseHTTPRequestHandler, record: Recorded, status: int,
              payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        record.status = status
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to tell it
