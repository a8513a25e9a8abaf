"""Fixtures for the artifacts tests: both storage backends, jobs, and a worker's view of them.

`backend` is parametrized over the filesystem (FileSystemStorage in tmp_path) and S3
(django-storages' S3Storage against moto's standalone server, over real HTTP, a fresh bucket per
test and a `location` prefix so key mapping is exercised). Settings go through pytest-django's
`settings` fixture, whose setting_changed signal resets Django's storage cache.
"""

from __future__ import annotations

import json
import os
import uuid
from itertools import count

import boto3
import pytest

from training.lifecycle import Status
from training.models import BaseModel, TrainingFile, TrainingJob

_serial = count(1)
SECRET = "job-secret-for-tests"


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def s3_storages(endpoint: str, bucket: str) -> dict:
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "location": "tenant-a",
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def use_s3(request, settings) -> None:
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    settings.STORAGES = s3_storages(endpoint, bucket)


@pytest.fixture
def s3(request, settings, tmp_path) -> str:
    """S3 (moto's standalone server over HTTP) only, for behaviour that exists only there."""
    settings.MEDIA_ROOT = tmp_path / "media"
    use_s3(request, settings)
    return "s3"


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, settings, tmp_path) -> str:
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.param == "s3":
        use_s3(request, settings)
    else:
        settings.STORAGES = {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    return request.param


@pytest.fixture
def filesystem(settings, tmp_path) -> str:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return "filesystem"


@pytest.fixture(autouse=True, scope="session")
def no_persistent_connections():
    """The live server answers each request in a thread of its own; with CONN_MAX_AGE those
    threads' connections outlive the test and block dropping the test database."""
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    saved = settings_dict.get("CONN_MAX_AGE", 0)
    settings_dict["CONN_MAX_AGE"] = 0
    yield
    settings_dict["CONN_MAX_AGE"] = saved


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def embedded_base_model() -> BaseModel:
    # Transactional tests (live_server) flush the seeded rows, so make it when it is gone.
    return BaseModel.objects.get_or_create(
        slug="smollm2-135m-instruct",
        defaults={"name": "SmolLM2-135M-Instruct (embedded)", "model_id": "embedded:smollm2-135m-instruct",
                  "parameter_count": 134_515_008, "recommended_gpu": "CPU_LOCAL", "is_embedded": True},
    )[0]


@pytest.fixture
def make_job():
    def make(user=None, status: str = Status.TRAINING, attempt: int = 1, secret: str = SECRET,
             **fields) -> TrainingJob:
        n = next(_serial)
        training_file = TrainingFile.objects.create(
            name=f"chat-{n}.jsonl", file=f"datasets/{n:064x}.jsonl", sha256=uuid.uuid4().hex,
            validation_status=TrainingFile.ValidationStatus.VALID, created_by=user,
        )
        job = TrainingJob.objects.create(
            name=fields.pop("name", f"Support bot {n}"), training_file=training_file,
            base_model=embedded_base_model(),
            configuration={"base_model": "embedded:smollm2-135m-instruct",
                           "hyperparameters": {"lora_r": 8, "lora_alpha": 16}},
            created_by=user, **fields,
        )
        TrainingJob.objects.filter(pk=job.pk).update(status=status, attempt=attempt, secret=secret)
        job.refresh_from_db()
        return job

    return make


ADAPTER_FILES = {
    "adapter_model.safetensors": b"\x00lora-weights" * 500,
    "adapter_config.json": b'{"peft_type": "LORA", "r": 8, "lora_alpha": 16}',
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b'{"chat_template": "..."}',
}


def upload_outputs(job, adapter_files=None) -> None:
    """What a completed worker leaves in storage: adapter/, reports/ and one checkpoint."""
    from core import storage

    for name, data in (adapter_files or ADAPTER_FILES).items():
        storage.save_bytes(storage.job_key(job.pk, f"adapter/{name}"), data)
    storage.save_bytes(storage.job_key(job.pk, "reports/metrics.jsonl"), b'{"step": 1}\n')
    storage.save_bytes(storage.job_key(job.pk, "reports/summary.json"),
                       json.dumps({"final_train_loss": 0.82, "steps": 30}).encode())
    storage.save_bytes(storage.job_key(job.pk, "checkpoints/step-30/manifest.json"), b'{"step": 30, "files": {}}')


@pytest.fixture
def completed_job(make_job, owner):
    from training.models import MetricPoint

    job = make_job(owner, status=Status.COMPLETED, results={
        "validation": {"evaluators": {"perplexity": {"base": 12.5, "trained": 8.0, "improvement_pct": 36.0,
                                                     "samples": 20}}},
        "final": {"final_train_loss": 0.82, "steps": 30, "adapter_key": "adapter"},
    })
    for step in (10, 20, 30):
        MetricPoint.objects.create(job=job, step=step, epoch=step / 30, train_loss=2.0 - step / 30,
                                   learning_rate=1e-4)
    upload_outputs(job)
    return job


def set_review(job, state: str):
    """The job's artifact (registered now if need be) with QA's decision `state`, as the
    validation app's review leaves it; "approved" releases the deployment package."""
    from artifacts import services

    artifact = services.artifact_for(job)
    artifact.review_state = state
    artifact.save(update_fields=["review_state"])
    return artifact
