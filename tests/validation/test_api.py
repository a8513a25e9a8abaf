"""The validation API: benchmark sets (built-in and one's own uploads, checked by line and field,
scoped to who may see them) and a job's validation summary and replies."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.validation.results import report, suite_of, worker_results
from validation import sets
from validation.models import BenchmarkSet

pytestmark = pytest.mark.django_db

QUESTIONS = "\n".join(json.dumps({"id": f"q{i}", "topic": "taxes", "question": f"Question {i}?",
                                  "options": ["one", "two", "three", "four"], "answer": "C",
                                  "explanation": "Because."}) for i in range(3)).encode()


def client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def upload(user, data=QUESTIONS, **fields):
    body = {"kind": sets.KNOWLEDGE_RETENTION, "name": "team-questions", "version": "1",
            "file": SimpleUploadedFile("questions.jsonl", data), **fields}
    return client(user).post("/api/validation/sets/", body, format="multipart")


def test_the_builtin_sets_are_listed_for_everyone(outsider):
    response = client(outsider).get("/api/validation/sets/")
    assert response.status_code == 200
    names = {row["name"]: row for row in response.json()["results"]}
    assert set(names) == {"elena-emotional-intelligence", "elena-knowledge-retention", "elena-brand-voice"}
    assert names["elena-knowledge-retention"]["item_count"] == 100 and names["elena-brand-voice"]["owner"] is None


def test_an_upload_is_checked_and_attached(owner, job):
    response = upload(owner, datasets=[str(job.training_file_id)])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["item_count"] == 3 and body["owner"] == owner.username and len(body["items"]) == 3
    assert body["datasets"] == [str(job.training_file_id)]


def test_a_bad_upload_names_line_and_field_and_writes_nothing(owner):
    response = upload(owner, data=QUESTIONS + b'\n{"id": "q9", "topic": "taxes"}')
    assert response.status_code == 400
    problems = response.json()["file"]
    assert "questions.jsonl, line 4, field 'question': must be non-empty text" in problems
    assert not BenchmarkSet.objects.filter(name="team-questions").exists()


def test_a_brand_voice_upload_needs_its_rubric(owner):
    response = upload(owner, kind=sets.BRAND_VOICE)
    assert response.status_code == 400 and "rubric" in response.json()


def test_another_users_set_and_dataset_are_not_found(owner, outsider, job):
    mine = upload(owner).json()
    assert client(outsider).get(f"/api/validation/sets/{mine['id']}/").status_code == 404
    assert client(outsider).delete(f"/api/validation/sets/{mine['id']}/").status_code == 404
    response = upload(outsider, name="theirs", datasets=[str(job.training_file_id)])
    assert response.status_code == 400 and "not found" in response.json()["datasets"][0]


def test_builtin_and_used_sets_cannot_be_deleted(owner, job):
    client(owner).get("/api/validation/sets/")
    builtin = BenchmarkSet.objects.filter(is_builtin=True).first()
    assert client(owner).delete(f"/api/validation/sets/{builtin.pk}/").status_code == 403
    # A started job keeps the sets it began with: nothing new can be attached to it.
    response = upload(owner, jobs=[str(job.pk)])
    assert response.status_code == 400 and "already started" in response.json()["jobs"][0]
    job.status = "pending"
    job.save(update_fields=["status"])
    mine = upload(owner, name="for-pending", jobs=[str(job.pk)]).json()
    suite_of(job)  # the job's first attempt is configured with it
    response = client(owner).delete(f"/api/validation/sets/{mine['id']}/")
    assert response.status_code == 409 and "Upload a new version" in response.json()["detail"]
    unused = upload(owner, name="unused").json()
    assert client(owner).delete(f"/api/validation/sets/{unused['id']}/").status_code == 204


def test_a_jobs_validation_and_replies(owner, outsider, job, django_capture_on_commit_callbacks):
    assert client(owner).get(f"/api/training/jobs/{job.pk}/validation").json()["status"] == "not_started"
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    body = client(owner).get(f"/api/training/jobs/{job.pk}/validation").json()
    assert body["status"] == "complete" and body["passed"] is False
    assert set(body["benchmarks"]) == {"perplexity", *sets.KINDS}
    assert body["benchmarks"]["knowledge_retention"]["text"]["trained"] == "75.0%"
    replies = client(owner).get(f"/api/training/jobs/{job.pk}/validation/replies?benchmark=brand_voice").json()
    assert len(replies["replies"]) == 30 and replies["replies"][0]["trained"]["checks"]["concrete_numbers"] is True
    assert client(outsider).get(f"/api/training/jobs/{job.pk}/validation").status_code == 404
    assert client(owner).get(f"/api/training/jobs/{job.pk}/validation/replies?benchmark=x").status_code == 400
