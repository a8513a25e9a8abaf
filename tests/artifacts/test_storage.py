"""core.storage on both backends: streaming writes and reads, listing, prefix deletes,
signed URLs used over real HTTP, and multipart uploads on S3."""

from __future__ import annotations

import io
import os
import time

import pytest
import requests
import time_machine

from core import storage

pytestmark = pytest.mark.django_db


def test_it_round_trips_a_stream_and_overwrites_in_place(backend):
    payload = os.urandom(3 * storage.CHUNK + 17)
    key = storage.job_key("job-1", "adapter/adapter_model.safetensors")
    assert storage.save_stream(key, io.BytesIO(payload)) == len(payload)
    with storage.open_read(key) as handle:
        assert handle.read() == payload
    storage.save_bytes(key, b"replaced")
    assert storage.read_bytes(key) == b"replaced"
    assert storage.size(key) == 8
    # Overwrite kept the key (FileSystemStorage.save would have invented a new name).
    assert [k for k, _ in storage.list_keys("jobs/job-1/")] == [key]


def test_it_lists_and_deletes_by_prefix(backend):
    for rel, data in [("checkpoints/step-1/a", b"x" * 10), ("checkpoints/step-1/manifest.json", b"{}"),
                      ("checkpoints/step-10/a", b"y" * 5), ("adapter/adapter_config.json", b"{}")]:
        storage.save_bytes(storage.job_key("j", rel), data)
    assert storage.list_dirs("jobs/j/checkpoints/") == ["step-1", "step-10"]
    # "step-1/" must not match "step-10/".
    assert storage.delete_prefix("jobs/j/checkpoints/step-1/") == 12
    assert [k for k, _ in storage.list_keys("jobs/j/")] == [
        "jobs/j/adapter/adapter_config.json", "jobs/j/checkpoints/step-10/a"]
    assert storage.delete_prefix("jobs/nothing-here/") == 0


@pytest.mark.parametrize("rel", ["../escape", "a/../../b", "/abs", "a//b", "a\\b", ".", "a/./b", ""])
def test_it_refuses_keys_that_leave_the_job(rel):
    with pytest.raises(storage.InvalidKey):
        storage.job_key("j", rel) if rel else storage.clean_relative_key(rel)


@pytest.mark.django_db(transaction=True)
def test_signed_urls_put_and_get_over_http(backend, live_server):
    key = storage.job_key("j", "reports/metrics.jsonl")
    body = os.urandom(storage.CHUNK * 2 + 5)
    put = storage.presigned_url(key, "PUT", 60, base_url=live_server.url)
    assert requests.put(put, data=io.BytesIO(body), timeout=30).status_code in (200, 201)
    get = storage.presigned_url(key, "GET", 60, base_url=live_server.url)
    response = requests.get(get, timeout=30)
    assert response.status_code == 200
    assert response.content == body


@pytest.mark.django_db(transaction=True)
def test_filesystem_blob_urls_refuse_altered_expired_and_wrong_method(filesystem, live_server):
    key = storage.job_key("j", "adapter/adapter_model.safetensors")
    storage.save_bytes(key, b"weights")
    get = storage.presigned_url(key, "GET", 60, base_url=live_server.url)
    assert requests.get(get, timeout=10).content == b"weights"

    altered = get[:-3] + ("AAA" if not get.endswith("AAA") else "BBB")
    assert requests.get(altered, timeout=10).status_code == 403
    # A GET URL does not allow PUT.
    assert requests.put(get, data=b"evil", timeout=10).status_code == 403
    assert storage.read_bytes(key) == b"weights"
    with time_machine.travel(time.time() + 61, tick=False):
        # The live server runs in this process, so it sees the travelled clock too.
        response = requests.get(get, timeout=10)
    assert response.status_code == 403
    assert b"weights" not in response.content


@pytest.mark.django_db(transaction=True)
def test_filesystem_blob_put_is_limited_in_size(filesystem, live_server, settings):
    settings.ARTIFACT_MAX_UPLOAD_BYTES = 100
    key = storage.job_key("j", "checkpoints/step-1/optimizer.pt")
    put = storage.presigned_url(key, "PUT", 60, base_url=live_server.url)
    assert requests.put(put, data=b"x" * 101, timeout=10).status_code == 413
    assert not storage.exists(key)
    assert requests.put(put, data=b"x" * 100, timeout=10).status_code == 201


def test_big_uploads_to_s3_go_multipart(s3, monkeypatch):
    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    payload = os.urandom(11 * 1024 * 1024)
    key = storage.job_key("j", "exports/deployment-package.zip")
    assert storage.save_stream(key, io.BytesIO(payload)) == len(payload)
    s3 = storage.default_storage()
    head = s3.connection.meta.client.head_object(Bucket=s3.bucket.name, Key=f"tenant-a/{key}")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert storage.read_bytes(key, limit=len(payload)) == payload
