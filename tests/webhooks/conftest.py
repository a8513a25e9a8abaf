"""Fixtures for the webhook tests: a started job and a worker that signs its reports exactly
as gpu_worker's Reporter does (compact JSON, gpu_worker.signing.signed_headers)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from gpu_worker import signing
from tests.conftest import ensure_catalogue
from training.lifecycle import Status
from training.models import BaseModel, TrainingFile, TrainingJob

WEBHOOK_URL = "/api/training/webhook"
SECRET = "s3cret"


def make_job(status: str = Status.TRAINING, attempt: int = 1, secret: str = SECRET) -> TrainingJob:
    ensure_catalogue()
    training_file = TrainingFile.objects.create(
        name="chat.jsonl", file="datasets/chat.jsonl", sha256=uuid.uuid4().hex,
        validation_status=TrainingFile.ValidationStatus.VALID,
    )
    job = TrainingJob.objects.create(
        name="Elena", training_file=training_file,
        base_model=BaseModel.objects.get(slug="smollm2-135m-instruct"), configuration={},
    )
    TrainingJob.objects.filter(pk=job.pk).update(status=status, attempt=attempt, secret=secret)
    job.refresh_from_db()
    return job


@dataclass
class Response:
    status: int
    body: dict[str, Any]


@dataclass
class FakeWorker:
    """Builds, signs and POSTs events for one attempt of one job."""

    client: Any
    job: TrainingJob
    attempt: int = 1
    secret: str = SECRET
    seq: int = 0
    sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def build(self, type: str, data: dict[str, Any], *, event_id: str | None = None,
              timestamp: int | None = None, secret: str | None = None,
              **envelope: Any) -> tuple[bytes, dict[str, str]]:
        self.seq += 1
        event_id = event_id or f"evt_{uuid.uuid4().hex}"
        message = {"id": event_id, "type": type, "job_id": str(self.job.pk), "attempt": self.attempt,
                   "seq": self.seq, "timestamp": "2026-11-23T20:15:03.123Z", "data": data, **envelope}
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = signing.signed_headers(secret or self.secret, body, msg_id=event_id,
                                         timestamp=int(time.time()) if timestamp is None else timestamp)
        return body, headers

    def post(self, body: bytes, headers: dict[str, str]) -> Response:
        response = self.client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)
        return Response(response.status_code, response.json())

    def send(self, type: str, data: dict[str, Any], **options: Any) -> Response:
        body, headers = self.build(type, data, **options)
        self.sent.append((body, headers))
        return self.post(body, headers)

    def resend_last(self) -> Response:
        return self.post(*self.sent[-1])


@pytest.fixture
def job(db) -> TrainingJob:
    return make_job()


@pytest.fixture
def worker(client, job) -> FakeWorker:
    return FakeWorker(client, job)


def point(step: int, **values: Any) -> dict[str, Any]:
    """A metrics point as the worker's callback builds it: every field present, most null."""
    base = dict.fromkeys(
        ("epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second",
         "samples_per_second", "gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_utilization_pct",
         "eta_seconds"))
    return {"step": step, **base, "total_steps": 200, **values}
