"""Real parts for the notification tests: an SMTP server process (aiosmtpd), local HTTP
receivers standing in for Slack and a customer's webhook endpoint, and a job factory."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from training.lifecycle import Status

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    """aiosmtpd in its own process, writing what it accepts to a folder; stop() and start()
    take it down and up on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "tests.notifications.smtp_sink.Sink", str(self.folder)], cwd=REPO_ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the SMTP server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(self.folder.glob("*.eml"), key=lambda p: p.stat().st_mtime)]

    def slow_down(self, seconds: float) -> None:
        (self.folder / "delay").write_text(str(seconds))


@pytest.fixture
def smtp(settings, tmp_path):
    """Django's SMTP backend against a real SMTP server process."""
    server = SMTPServer(tmp_path / "mail")
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    yield server
    server.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


@dataclass
class HTTPReceiver:
    """A local HTTP endpoint: records every POST; answers from `responses` (status, headers,
    body) in order, then 200."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    responses: deque = field(default_factory=deque)

    def answer(self, status: int, headers: dict[str, str] | None = None, body: str = "") -> None:
        self.responses.append((status, headers or {}, body))


@pytest.fixture
def http_receiver(settings):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_URLS = True
    receiver = HTTPReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                              body, time.time()))
            status, headers, text = receiver.responses.popleft() if receiver.responses else (200, {}, "ok")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            data = text.encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_job(owner, settings, tmp_path):
    """A job of `owner` (tests/conftest.py) with the fields an email shows."""
    from training.models import BaseModel, TrainingFile, TrainingJob

    settings.MEDIA_ROOT = tmp_path / "media"

    def make(**fields) -> TrainingJob:
        training_file = TrainingFile.objects.create(
            name="elena_morales_chat.jsonl", file="datasets/tiny.jsonl",
            sha256=uuid.uuid4().hex + uuid.uuid4().hex,
            validation_status=TrainingFile.ValidationStatus.VALID, record_count=64, created_by=owner)
        base_model = BaseModel.objects.create(
            slug=f"m-{uuid.uuid4().hex[:8]}", name="SmolLM2 135M Instruct", model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            parameter_count=135_000_000, recommended_gpu="CPU_LOCAL")
        defaults = {
            "training_file": training_file, "base_model": base_model, "name": "elena v1",
            "configuration": {"base_model": base_model.model_id,
                              "hyperparameters": {"learning_rate": 0.0002, "per_device_train_batch_size": 4,
                                                  "num_train_epochs": 3, "max_steps": 48}},
            "executor": "local", "gpu_type": "H100_PCIE_80GB", "gpu_pricing_tier": "spot",
            "secret": "s3cret", "created_by": owner, "status": Status.TRAINING,
        }
        defaults.update(fields)
        return TrainingJob.objects.create(**defaults)

    return make
