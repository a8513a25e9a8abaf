"""Dataset uploads: the size limit (413), validation as a background task with progress,
per-user records over one stored blob, warnings for records the sequence length would cut."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from training import tasks
from training.models import DatasetBlob, TrainingFile
from training.services import datasets
from training.services.datasets import delete_training_file, ingest_training_file

pytestmark = pytest.mark.django_db

GOOD = "\n".join(
    json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": f"answer {i}"}]})
    for i in range(5)
).encode() + b"\n"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def api(django_user_model):
    def make(username: str) -> APIClient:
        user = django_user_model.objects.get_or_create(username=username)[0]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        client.user = user
        return client

    return make


def upload(client, content: bytes, filename: str = "chat.jsonl"):
    return client.post("/api/training/files", {"file": SimpleUploadedFile(filename, content)}, format="multipart")


# --- Size limit ------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_413_naming_the_field_and_the_limit(settings, api):
    settings.DATASET_MAX_UPLOAD_BYTES = 100 * 1024  # the body (~200 KiB) is under limit + overhead:
    content = GOOD * 1200  # stopped while streaming, by the upload handler
    response = upload(api("olivia"), content)
    assert response.status_code == 413, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "the 100 KiB upload limit" in response.json()["file"][0]
    assert TrainingFile.objects.count() == 0 and DatasetBlob.objects.count() == 0


def test_a_body_that_declares_a_length_over_the_limit_is_refused_before_it_is_read(settings, api):
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    response = upload(api("olivia"), b" " * (2 << 20))
    assert response.status_code == 413
    assert "the 1000 bytes upload limit" in response.json()["file"][0]


def test_the_service_refuses_a_file_over_the_limit_while_copying(settings):
    settings.DATASET_MAX_UPLOAD_BYTES = len(GOOD) - 1
    with pytest.raises(datasets.UploadTooLarge):
        ingest_training_file(uploaded=SimpleUploadedFile("chat.jsonl", GOOD))
    assert TrainingFile.objects.count() == 0


def test_the_admin_upload_form_answers_413(settings, client, django_user_model):
    staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True, is_superuser=True)
    client.force_login(staff)
    settings.DATASET_MAX_UPLOAD_BYTES = 100 * 1024
    response = client.post("/admin/training/trainingfile/add/",
                           {"file": SimpleUploadedFile("chat.jsonl", GOOD * 1200), "name": "x", "description": ""})
    assert response.status_code == 413
    assert "upload limit" in response.content.decode()
    assert TrainingFile.objects.count() == 0


def test_uploaded_files_are_streamed_to_disk_not_memory(settings):
    from django.core.files.uploadhandler import load_handler

    handlers = [load_handler(path) for path in settings.FILE_UPLOAD_HANDLERS]
    from django.core.files.uploadhandler import TemporaryFileUploadHandler

    assert handlers and all(isinstance(h, TemporaryFileUploadHandler) for h in handlers)


# --- Background validation -------------------------------------------------------------------


@pytest.fixture
def background(settings, monkeypatch):
    """Celery not eager: the upload enqueues the task on commit; `run()` runs what the commit
    would (the test's transaction never commits) and delivers the tasks."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued: list[str] = []
    monkeypatch.setattr(tasks.validate_dataset, "delay", queued.append)
    start = len(connection.run_on_commit)

    class Queue:
        def run(self):
            pending = connection.run_on_commit[start:]
            del connection.run_on_commit[start:]
            for _, callback, _ in pending:
                callback()
            while queued:
                tasks.validate_dataset(queued.pop(0))

    return Queue()


def test_the_api_answers_at_once_with_a_pending_file_and_the_task_validates_it(background, api):
    client = api("olivia")
    response = upload(client, GOOD)
    assert response.status_code == 202
    assert response.data["validation_status"] == "pending" and response.data["is_trainable"] is False
    file_id = response.data["id"]

    refused = client.post("/api/training/jobs", {"training_file": file_id}, format="json")
    assert refused.status_code == 400
    assert "still being validated" in refused.data["training_file"][0]

    background.run()
    detail = client.get(f"/api/training/files/{file_id}").data
    assert detail["validation_status"] == "valid" and detail["record_count"] == 5
    assert detail["validation_progress"] == {"records": 5, "bytes": len(GOOD), "total_bytes": len(GOOD)}
    assert detail["token_stats"]["conversations"] == 5


def test_progress_is_stored_on_the_blob_while_validating(background, monkeypatch):
    monkeypatch.setattr(datasets, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(datasets.data, "PROGRESS_EVERY_RECORDS", 2)
    seen: list[tuple[str, int]] = []
    original = datasets.TokenCounter.add

    def watch(self, conversation):
        blob = DatasetBlob.objects.get()
        seen.append((blob.validation_status, blob.records_validated))
        original(self, conversation)

    monkeypatch.setattr(datasets.TokenCounter, "add", watch)
    record = ingest_training_file(uploaded=SimpleUploadedFile("chat.jsonl", GOOD))
    assert record.validation_status == "pending"
    background.run()
    assert [status for status, _ in seen] == ["validating"] * 5
    assert [n for _, n in seen] == [0, 0, 2, 2, 4]
    record.refresh_from_db()
    assert record.validation_status == "valid"


def test_a_redelivered_task_does_nothing_once_validated(background):
    record = ingest_training_file(uploaded=SimpleUploadedFile("chat.jsonl", GOOD))
    background.run()
    assert datasets.validate_blob(record.blob_id) is None


# --- Per-user records over one blob ----------------------------------------------------------


def test_a_second_user_gets_their_own_record_over_the_same_blob(django_user_model, media):
    olivia, oscar = (django_user_model.objects.create(username=n) for n in ("olivia", "oscar"))
    first = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", GOOD), user=olivia, name="secret-project")
    second = ingest_training_file(uploaded=SimpleUploadedFile("b.jsonl", GOOD), user=oscar)
    again = ingest_training_file(uploaded=SimpleUploadedFile("b.jsonl", GOOD), user=oscar)

    assert first.pk != second.pk and again.pk == second.pk and again.was_duplicate
    assert first.blob_id == second.blob_id and DatasetBlob.objects.count() == 1
    assert second.is_trainable and second.created_by == oscar
    assert "secret-project" not in json.dumps(second.validation_report)
    assert len([p for p in media.rglob("*") if p.is_file()]) == 1


def test_the_blob_and_its_bytes_go_with_the_last_record(django_user_model, django_capture_on_commit_callbacks):
    olivia, oscar = (django_user_model.objects.create(username=n) for n in ("olivia", "oscar"))
    first = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", GOOD), user=olivia)
    second = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", GOOD), user=oscar)
    stored = first.file

    with django_capture_on_commit_callbacks(execute=True):
        delete_training_file(first)
    assert DatasetBlob.objects.count() == 1 and stored.storage.exists(stored.name)

    with django_capture_on_commit_callbacks(execute=True):
        delete_training_file(second)
    assert DatasetBlob.objects.count() == 0 and not stored.storage.exists(stored.name)


def test_the_migration_gives_each_existing_file_its_blob():
    from importlib import import_module

    migration = import_module("training.migrations.0007_dataset_blobs")
    old = TrainingFile.objects.create(name="old", file="datasets/abc.jsonl", sha256="a" * 64, size_bytes=10,
                                      validation_status="valid", format="messages", record_count=3,
                                      token_stats={"total_tokens": 9})
    migration.blobs_for_existing_files(apps, None)
    old.refresh_from_db()
    assert old.blob is not None
    assert (old.blob.sha256, old.blob.file.name, old.blob.validation_status, old.blob.record_count,
            old.blob.token_stats) == ("a" * 64, "datasets/abc.jsonl", "valid", 3, {"total_tokens": 9})


# --- Warnings and structured problems --------------------------------------------------------


def test_records_the_sequence_length_would_cut_are_warnings_by_line(monkeypatch, api):
    monkeypatch.setattr(datasets, "STATS_MAX_SEQ_LENGTH", 80)
    long = {"messages": [{"role": "user", "content": "tell me everything " * 40},
                         {"role": "assistant", "content": "ok"}]}
    content = GOOD + json.dumps(long).encode() + b"\n"
    response = upload(api("olivia"), content)
    assert response.data["validation_status"] == "valid" and response.data["problem_count"] == 0
    assert response.data["warning_count"] == 1
    [warning] = response.data["warnings"]
    assert warning["line"] == 6 and warning["field"] == ""
    assert "maximum sequence length of 80 cuts" in warning["reason"]
    assert "1 record is longer than 80 tokens" in response.data["validation_report"]["message"]


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "array"), ('"text"', "string"), ("42", "number")])
def test_a_line_that_is_not_an_object_is_a_problem_at_its_line(api, line, kind):
    lines = GOOD.decode().splitlines()
    lines.insert(2, line)
    response = upload(api("olivia"), ("\n".join(lines) + "\n").encode())
    assert response.data["validation_status"] == "invalid"
    assert response.data["problems"] == [{"line": 3, "field": "", "reason": f"record must be a JSON object (got {kind})"}]


@pytest.mark.parametrize(
    ("filename", "content", "line"),
    [("bad.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n', 2),
     ("bad.json", b'[\n{"prompt": "a", "completion": "b"},\n{"prompt": "a" "completion": "b"}\n]', 3)],
)
def test_a_whole_file_problem_is_stored_structured_with_its_line(filename, content, line):
    record = ingest_training_file(uploaded=SimpleUploadedFile(filename, content))
    assert record.validation_status == "invalid"
    assert record.problems and record.problems[0]["line"] == line and record.problems[0]["reason"]
    assert record.validation_report["message"].startswith(f"{filename}: ")
