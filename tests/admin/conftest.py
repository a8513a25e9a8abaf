"""Admin fixtures: a logged-in staff client, datasets and jobs made with the ORM, and
recorders in place of Celery delivery (so Start and Cancel never launch a worker)."""

from __future__ import annotations

import hashlib
from itertools import count

import pytest

from tests.conftest import DeliveryRecorder, record_deliveries
from training.lifecycle import Status
from training.models import BaseModel, HyperparameterPreset, TrainingFile, TrainingJob

_serial = count(1)


@pytest.fixture(autouse=True)
def deliveries(monkeypatch) -> dict[str, DeliveryRecorder]:
    return record_deliveries(monkeypatch)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def admin_client_for_staff(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def make_dataset(db):
    def make(*, valid: bool = True, records: int = 1000, tokens: int = 600, name: str = "") -> TrainingFile:
        n = next(_serial)
        name = name or f"dataset-{n}"
        return TrainingFile.objects.create(
            name=name, file=f"datasets/{n}.jsonl", sha256=hashlib.sha256(name.encode()).hexdigest(),
            validation_status="valid" if valid else "invalid", format="messages", record_count=records,
            problem_count=0 if valid else 1,
            validation_report={"problems": [] if valid else [{"line": 3, "field": "messages", "reason": "is missing"}],
                               "message": "ok" if valid else "1 problem"},
            token_stats={"conversations": records, "total_tokens": records * tokens,
                         "trainable_tokens": records * tokens // 2, "max_seq_length": 2048},
        )
    return make


@pytest.fixture
def make_job(make_dataset, staff):
    def make(status: str = Status.PENDING, **fields) -> TrainingJob:
        n = next(_serial)
        fields.setdefault("training_file", make_dataset())
        return TrainingJob.objects.create(
            name=fields.pop("name", f"job-{n}"), base_model=BaseModel.objects.get(slug="llama-3-70b-instruct"),
            preset=HyperparameterPreset.objects.get(slug="balanced"), status=status, created_by=staff,
            gpu_type="H100_PCIE_80GB", configuration={"hyperparameters": {"num_epochs": 3}}, **fields,
        )
    return make
