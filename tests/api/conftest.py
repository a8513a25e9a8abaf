"""API fixtures: token-authenticated clients per role, valid datasets and jobs made with the
ORM, and a recorder in place of Celery delivery. Services (ingestion, estimates, job
operations) are the real ones."""

from __future__ import annotations

import hashlib
from itertools import count

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import DeliveryRecorder, record_deliveries
from training.models import BaseModel, HyperparameterPreset, TrainingFile, TrainingJob

_serial = count(1)


@pytest.fixture(autouse=True)
def deliveries(monkeypatch) -> dict[str, DeliveryRecorder]:
    return record_deliveries(monkeypatch)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Four users per test with the default PBKDF2 cost make the permission matrix crawl.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Clients ---------------------------------------------------------------------------------


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def owner_api(client_for, owner) -> APIClient:
    return client_for(owner)


@pytest.fixture
def users(owner, teammate, outsider, staff):
    """Role name -> user (None for anonymous), for parametrized permission tests."""
    return {"owner": owner, "teammate": teammate, "outsider": outsider, "staff": staff, "anonymous": None}


# --- Rows ------------------------------------------------------------------------------------


@pytest.fixture
def make_file():
    """A TrainingFile row made directly, as ingestion would leave a valid upload."""

    def make(user, **fields) -> TrainingFile:
        n = next(_serial)
        values = {
            "name": f"dataset-{n}.jsonl",
            "file": f"datasets/{n:064x}.jsonl",
            "sha256": hashlib.sha256(f"dataset {n}".encode()).hexdigest(),
            "size_bytes": 2048,
            "format": TrainingFile.Format.MESSAGES,
            "validation_status": TrainingFile.ValidationStatus.VALID,
            "record_count": 120,
            "token_stats": {"total_tokens": 48_000, "trainable_tokens": 30_000},
            "token_stats_model": "embedded:smollm2-135m-instruct",
            "created_by": user,
        }
        values.update(fields)
        return TrainingFile.objects.create(**values)

    return make


@pytest.fixture
def make_job(make_file):
    """A pending job made with the ORM (no estimate service involved)."""

    def make(user, *, training_file=None, preset="balanced", status=None, tags=(), **fields) -> TrainingJob:
        from training.services.jobs import resolve_configuration

        preset_row = HyperparameterPreset.objects.get(slug=preset) if preset else None
        base_model = BaseModel.objects.get(is_embedded=True)
        configuration = resolve_configuration(base_model=base_model, preset=preset_row)
        configuration["hyperparameters"]["checkpoint_interval"] = 100  # as create_job freezes it
        job = TrainingJob.objects.create(
            training_file=training_file or make_file(user),
            base_model=base_model,
            preset=preset_row,
            name=fields.pop("name", f"job {next(_serial)}"),
            configuration=configuration,
            executor=configuration["executor"],
            gpu_type=configuration["gpu_type"],
            gpu_pricing_tier=configuration["gpu_pricing_tier"],
            created_by=user,
            **fields,
        )
        if tags:
            from training.models import Tag

            job.tags.set([Tag.objects.get_or_create(name=t)[0] for t in tags])
        if status is not None:
            TrainingJob.objects.filter(pk=job.pk).update(status=status)
            job.refresh_from_db()
        return job

    return make
