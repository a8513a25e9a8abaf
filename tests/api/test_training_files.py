"""Dataset upload, listing, detail and deletion."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from training.models import TrainingFile

pytestmark = pytest.mark.django_db

GOOD = "\n".join(
    json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": f"answer {i}"}]})
    for i in range(5)
).encode()
BAD = b'{"messages": [{"role": "user", "content": "only a question"}]}\nnot json at all\n'


def upload(api, content: bytes, filename="chat.jsonl", **fields):
    return api.post("/api/training/files", {"file": SimpleUploadedFile(filename, content), **fields}, format="multipart")


def test_it_stores_a_valid_upload_with_its_report(owner, owner_api):
    response = upload(owner_api, GOOD, name="support chats", description="five of them")

    # 202: validation runs as a task (inline here, where Celery is eager), so the status is final.
    assert response.status_code == 202, response.data
    assert response.data["validation_status"] == "valid"
    assert response.data["is_trainable"] is True
    assert response.data["record_count"] == 5 and response.data["created_by"] == "olivia"
    assert response.data["name"] == "support chats"
    assert {"validation_report", "token_stats"} <= set(response.data)


def test_it_stores_an_invalid_upload_and_says_what_is_wrong(owner_api):
    response = upload(owner_api, BAD)

    assert response.status_code == 202
    assert response.data["is_trainable"] is False
    assert response.data["validation_status"] == "invalid"
    assert response.data["problem_count"] >= 1
    assert response.data["validation_report"]["message"]


def test_it_refuses_a_file_that_is_not_json_naming_the_field(owner_api):
    response = upload(owner_api, b"a,b\n1,2\n", filename="table.csv")

    assert response.status_code == 400
    assert "file" in response.data


def test_it_requires_a_file(owner_api):
    response = owner_api.post("/api/training/files", {"name": "nothing"}, format="multipart")

    assert response.status_code == 400 and "file" in response.data


def test_the_same_upload_again_returns_the_same_file(owner_api):
    first = upload(owner_api, GOOD, name="support chats")
    second = upload(owner_api, GOOD, filename="copy.jsonl", name="support chats")

    assert second.status_code == 200
    assert second.data["id"] == first.data["id"]
    assert TrainingFile.objects.count() == 1


def test_the_same_bytes_under_a_new_name_are_a_new_file_with_that_name(owner_api):
    first = upload(owner_api, GOOD, name="support chats")
    second = upload(owner_api, GOOD, filename="copy.jsonl")

    assert second.status_code == 202, second.data
    assert second.data["id"] != first.data["id"] and second.data["name"] == "copy"
    assert second.data["is_trainable"] is True
    assert owner_api.get(f"/api/training/files/{first.data['id']}").data["name"] == "support chats"
    records = TrainingFile.objects.all()
    assert records.count() == 2 and len({r.blob_id for r in records}) == 1  # one stored copy


def test_two_users_uploading_identical_bytes_each_get_their_own_record_under_their_own_name(
        owner, owner_api, client_for, outsider):
    mine = upload(owner_api, GOOD, name="olivia's chats")
    theirs = upload(client_for(outsider), GOOD, name="oscar's chats")
    # The same name as the first user's too: still never the first user's record.
    same_name = upload(client_for(outsider), GOOD, filename="x.jsonl", name="olivia's chats")

    assert (mine.status_code, theirs.status_code, same_name.status_code) == (202, 202, 202)
    assert len({mine.data["id"], theirs.data["id"], same_name.data["id"]}) == 3
    assert (theirs.data["name"], theirs.data["created_by"]) == ("oscar's chats", "oscar")
    assert (same_name.data["name"], same_name.data["created_by"]) == ("olivia's chats", "oscar")
    assert TrainingFile.objects.get(pk=mine.data["id"]).created_by == owner
    assert {f["id"] for f in client_for(outsider).get("/api/training/files").data["results"]} == {
        theirs.data["id"], same_name.data["id"]}


def test_the_same_bytes_from_someone_else_are_their_own_dataset_and_leak_nothing(owner_api, client_for, outsider):
    first = upload(owner_api, GOOD, name="olivia's chats")
    other = client_for(outsider)

    response = upload(other, GOOD)

    assert response.status_code == 202, response.data
    assert response.data["id"] != first.data["id"]
    assert response.data["created_by"] == "oscar" and response.data["is_trainable"] is True
    assert "olivia" not in str(response.data)
    assert other.get(f"/api/training/files/{first.data['id']}").status_code == 404
    assert [f["id"] for f in other.get("/api/training/files").data["results"]] == [response.data["id"]]
    records = TrainingFile.objects.order_by("created_at")
    assert records.count() == 2 and records[0].blob_id == records[1].blob_id
    assert records[0].file.name == records[1].file.name  # one stored copy


def test_the_list_is_a_summary_and_the_detail_is_complete(owner, owner_api, make_file):
    dataset = make_file(owner, validation_report={"problems": [], "message": "120 records; all valid."})

    listed = owner_api.get("/api/training/files").data["results"][0]
    detail = owner_api.get(f"/api/training/files/{dataset.pk}").data

    assert "validation_report" not in listed
    assert detail["validation_report"]["message"] == "120 records; all valid."
    assert detail["token_stats"] == {"total_tokens": 48_000, "trainable_tokens": 30_000}
    # Each top-level count is the token_stats figure of the same name, never the other one.
    assert (detail["total_tokens"], detail["trainable_tokens"]) == (48_000, 30_000)


def test_an_uploads_token_counts_agree_with_its_token_stats(owner_api):
    detail = upload(owner_api, GOOD).data

    stats = detail["token_stats"]
    assert detail["total_tokens"] == stats["total_tokens"] and detail["trainable_tokens"] == stats["trainable_tokens"]
    assert 0 < detail["trainable_tokens"] < detail["total_tokens"]


def test_without_a_tokenizer_count_the_counts_are_null_and_the_estimate_says_so(owner, owner_api, make_file):
    dataset = make_file(owner, token_stats={"error": "no tokenizer", "estimated_total_tokens": 600})

    detail = owner_api.get(f"/api/training/files/{dataset.pk}").data

    assert (detail["total_tokens"], detail["trainable_tokens"]) == (None, None)
    assert detail["token_stats"]["estimated_total_tokens"] == 600


def test_files_cannot_be_edited(owner, owner_api, make_file):
    dataset = make_file(owner)

    assert owner_api.patch(f"/api/training/files/{dataset.pk}", {"name": "x"}, format="multipart").status_code == 405


def test_it_deletes_an_unused_file_with_its_bytes(owner_api, django_capture_on_commit_callbacks):
    created = upload(owner_api, GOOD)
    stored = TrainingFile.objects.get(pk=created.data["id"]).file
    assert stored.storage.exists(stored.name)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.delete(f"/api/training/files/{created.data['id']}")

    assert response.status_code == 204
    assert not TrainingFile.objects.filter(pk=created.data["id"]).exists()
    assert not stored.storage.exists(stored.name)


def test_it_refuses_to_delete_a_file_a_job_uses(owner, owner_api, make_job):
    job = make_job(owner)

    response = owner_api.delete(f"/api/training/files/{job.training_file_id}")

    assert response.status_code == 409
    assert "used by 1 job" in response.data["detail"]
    assert TrainingFile.objects.filter(pk=job.training_file_id).exists()
