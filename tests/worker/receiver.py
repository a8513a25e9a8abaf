"""A local stand-in for the control plane's worker API (docs/worker-contract.md), for tests.

    with Receiver(tmp_path) as rx:
        reporter = Reporter(..., webhook_url=rx.events_url, secret=rx.secret, ...)
        store = open_store({"kind": "http", "api_url": rx.store_url}, secret=rx.secret)
        rx.wait_for(lambda: len(rx.events) >= 3)

What it does, all on 127.0.0.1 with an OS-chosen port, in a background thread:

- `POST /events`: verifies the Standard Webhooks signature (401 if wrong, counted in
  `bad_signatures`), answers 200 — or what `answer` says — and records the event: every
  delivery in `deliveries` (its webhook-id header in `webhook_ids`), and in `events` the first
  accepted (2xx) delivery of each id, in arrival order.
- `{store_url}/sign`, `/checkpoints`, `/delete`: the HTTP store API, signed like events. Blobs live
  on disk under `blob_dir`, served at `/blob/<key>?sig=...` (an HMAC of method and key).

Failure injection, for events and the store API alike (`scope`: "events", "storage", "all"):

- `fail_next(n, status=503)`: the next n requests fail with `status`, or have their connection
  closed with no answer when `status` is None.
- `down(status=503)` / `up()`: fail every request until `up()`.
- `answer`: a status every event request gets while it is not None (e.g. 409), except
  the types in `accept_anyway` (a cancelled job's fence: 410 but for the last words).
- `delay`: seconds to wait before answering each event request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from gpu_worker import signing

CHUNK = 1 << 20


class Receiver:
    def __init__(self, root: str | Path | None = None, secret: str = "test-secret") -> None:
        self.secret = secret
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="receiver-") if root is None else root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.webhook_ids: list[str] = []  # the webhook-id header of each delivery
        self.bad_signatures = 0
        self.requests = 0  # every request, failed ones included
        self.answer: int | None = None
        self.accept_anyway: set[str] = set()  # event types answered 200 whatever `answer` says
        self.delay = 0.0
        self._cond = threading.Condition()
        self._fail_left = 0
        self._fail_status: int | None = 503
        self._fail_scope = "events"
        self._down = False
        self._seen_ids: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----

    def start(self) -> Receiver:
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/events"

    @property
    def store_url(self) -> str:
        return f"{self.base_url}/storage"

    # ----- failure injection -----

    def fail_next(self, n: int, status: int | None = 503, scope: str = "events") -> None:
        with self._cond:
            self._fail_left, self._fail_status, self._fail_scope = n, status, scope

    def down(self, status: int | None = 503, scope: str = "events") -> None:
        with self._cond:
            self._down, self._fail_status, self._fail_scope = True, status, scope

    def up(self) -> None:
        with self._cond:
            self._down = False
            self._fail_left = 0

    # ----- inspection -----

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` holds; it is re-checked after every request."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def blob_path(self, key: str) -> Path:
        """Where the blob for `key` is kept (to corrupt or delete it in a test)."""
        return self.blob_dir / key

    # ----- used by the handler -----

    def _injected_failure(self, scope: str) -> tuple[bool, int | None]:
        with self._cond:
            self.requests += 1
            if self._fail_scope not in (scope, "all"):
                return False, None
            if self._down:
                return True, self._fail_status
            if self._fail_left > 0:
                self._fail_left -= 1
                return True, self._fail_status
            return False, None

    def _record(self, event: dict[str, Any], webhook_id: str, accepted: bool) -> None:
        with self._cond:
            self.deliveries.append(event)
            self.webhook_ids.append(webhook_id)
            if accepted and event.get("id") not in self._seen_ids:
                self._seen_ids.add(event.get("id"))
                self.events.append(event)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _blob_sig(self, method: str, key: str) -> str:
        return hmac.new(self.secret.encode(), f"{method}:{key}".encode(), hashlib.sha256).hexdigest()

    def _committed(self) -> list[dict[str, Any]]:
        committed = []
        for manifest_path in (self.blob_dir / "checkpoints").glob("step-*/manifest.json"):
            try:
                manifest = json.loads(manifest_path.read_text())
                committed.append({"step": int(manifest["step"]), "manifest": manifest})
            except (ValueError, KeyError, TypeError, OSError):
                continue
        return sorted(committed, key=lambda c: c["step"])


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"  # keep-alive, like a real control plane
    # Headers and body go out in separate writes; with Nagle on, each answer waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    # ----- helpers -----

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: Any = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _fail_if_told(self, scope: str) -> bool:
        failing, status = self.receiver._injected_failure(scope)
        if not failing:
            return False
        # Close either way: a PUT's body is still unread and would poison a kept-alive connection.
        self.close_connection = True
        if status is not None:  # None: no answer at all, the client sees a dropped connection
            self._reply(status, {"error": "injected failure"})
        return True

    def _verified(self, body: bytes) -> bool:
        try:
            signing.verify(self.receiver.secret, {k.lower(): v for k, v in self.headers.items()},
                           body)
        except signing.SignatureError as exc:
            with self.receiver._cond:
                self.receiver.bad_signatures += 1
            self._reply(401, {"error": str(exc)})
            return False
        return True

    def _blob_key(self, method: str) -> str | None:
        parts = urlsplit(self.path)
        key = unquote(parts.path[len("/blob/"):])
        sig = parse_qs(parts.query).get("sig", [""])[0]
        if not hmac.compare_digest(sig, self.receiver._blob_sig(method, key)) or ".." in key.split("/"):
            self._reply(403, {"error": "bad blob signature"})
            return None
        return key

    # ----- routes -----

    def do_POST(self) -> None:
        try:
            self._route_post()
        finally:
            self.receiver._notify()

    def do_GET(self) -> None:
        try:
            self._route_get()
        finally:
            self.receiver._notify()

    def do_PUT(self) -> None:
        try:
            self._route_put()
        finally:
            self.receiver._notify()

    def _route_post(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        rx = self.receiver
        if path == "/events":
            if self._fail_if_told("events") or not self._verified(body):
                return
            if rx.delay:
                time.sleep(rx.delay)
            event = json.loads(body)
            # A cancelled job's fence: `answer` for everything but the attempt's last words.
            status = 200 if event.get("type") in rx.accept_anyway else (rx.answer or 200)
            rx._record(event, self.headers.get("webhook-id", ""), accepted=status < 300)
            self._reply(status, {"ok": status < 300})
        elif path == "/storage/sign":
            if self._fail_if_told("storage") or not self._verified(body):
                return
            request = json.loads(body)
            method = request["method"]
            urls = {key: f"{rx.base_url}/blob/{quote(key)}?sig={rx._blob_sig(method, key)}"
                    for key in request["keys"]}
            self._reply(200, {"urls": urls})
        elif path == "/storage/delete":
            if self._fail_if_told("storage") or not self._verified(body):
                return
            prefix = json.loads(body)["prefix"]
            for blob in sorted(rx.blob_dir.rglob("*")):
                if blob.is_file() and blob.relative_to(rx.blob_dir).as_posix().startswith(prefix):
                    blob.unlink()
            self._reply(204)
        else:
            self._reply(404, {"error": "no such route"})

    def _route_get(self) -> None:
        path = urlsplit(self.path).path
        rx = self.receiver
        if path == "/storage/checkpoints":
            if self._fail_if_told("storage") or not self._verified(b""):
                return
            self._reply(200, {"committed": rx._committed()})
        elif path.startswith("/blob/"):
            if self._fail_if_told("storage"):
                return
            key = self._blob_key("GET")
            if key is None:
                return
            blob = rx.blob_path(key)
            if not blob.is_file():
                self._reply(404, {"error": "no such blob"})
                return
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(blob.stat().st_size))
            self.end_headers()
            with blob.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, CHUNK)
        else:
            self._reply(404, {"error": "no such route"})

    def _route_put(self) -> None:
        path = urlsplit(self.path).path
        rx = self.receiver
        if not path.startswith("/blob/"):
            self._body()
            self._reply(404, {"error": "no such route"})
            return
        if self._fail_if_told("storage"):
            return
        key = self._blob_key("PUT")
        if key is None:
            self.close_connection = True  # the unread body would poison the connection
            return
        length = self.headers.get("content-length")
        if length is None:
            self.close_connection = True
            self._reply(411, {"error": "content-length required"})
            return
        blob = rx.blob_path(key)
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_name(blob.name + ".partial")
        left = int(length)
        with tmp.open("wb") as handle:
            while left:
                chunk = self.rfile.read(min(CHUNK, left))
                if not chunk:
                    break
                handle.write(chunk)
                left -= len(chunk)
        if left:
            tmp.unlink()
            self.close_connection = True
            return
        tmp.replace(blob)
        self._reply(201)
