"""The worker storage API, driven by the worker's own HttpStore client against a live server,
on both storage backends."""

from __future__ import annotations

import json
import time

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from core import storage
from gpu_worker import signing
from gpu_worker.stores import (
    StoreError,
    commit_checkpoint,
    fetch_checkpoint,
    open_store,
    prune_checkpoints,
)
from training.lifecycle import Status

from .conftest import SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def api_url(live_server, job) -> str:
    return f"{live_server.url}/api/worker/jobs/{job.pk}/storage"


def signed_post(url: str, payload: dict, secret: str = SECRET, attempt: int | None = 1,
                **header_overrides) -> requests.Response:
    """A control call as HttpStore makes it: signed, with its attempt (None: without the header)."""
    body = json.dumps(payload).encode()
    headers = {**signing.signed_headers(secret, body), "content-type": "application/json",
               **({"x-worker-attempt": str(attempt)} if attempt is not None else {}), **header_overrides}
    return requests.post(url, data=body, headers=headers, timeout=10)


def worker_store(live_server, job):
    return open_store({"kind": "http", "api_url": api_url(live_server, job)}, secret=job.secret,
                      attempt=job.attempt)


def checkpoint_dir(tmp_path, step: int):
    folder = tmp_path / f"local-step-{step}"
    (folder / "nested").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes([step % 256]) * 3000)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "nested" / "rng.pt").write_bytes(b"rng" * step)
    return folder


def test_the_worker_client_commits_lists_fetches_and_prunes(backend, live_server, make_job, tmp_path):
    job = make_job()
    store = worker_store(live_server, job)
    for step in (100, 200, 300):
        commit_checkpoint(store, checkpoint_dir(tmp_path, step), step, attempt=1)

    committed = store.committed_checkpoints()
    assert [m["step"] for m in committed] == [100, 200, 300]
    assert set(committed[-1]["files"]) == {"adapter_model.safetensors", "trainer_state.json", "nested/rng.pt"}

    restored = fetch_checkpoint(store, committed[-1], tmp_path / "restored")
    assert (restored / "nested" / "rng.pt").read_bytes() == b"rng" * 300

    assert prune_checkpoints(store, keep=1) == [100, 200]
    assert [m["step"] for m in store.committed_checkpoints()] == [300]
    assert storage.list_dirs(f"jobs/{job.pk}/checkpoints/") == ["step-300"]

    # The adapter and reports land under the job's root, where register_artifacts looks.
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(b"lora" * 1000)
    store.put_file("adapter/adapter_model.safetensors", weights)
    store.put_bytes("reports/summary.json", b'{"final_train_loss": 1.2}')
    assert storage.read_bytes(f"jobs/{job.pk}/adapter/adapter_model.safetensors") == b"lora" * 1000
    store.get_file("reports/summary.json", tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text()) == {"final_train_loss": 1.2}


def test_a_checkpoint_whose_manifest_never_arrived_is_not_listed(backend, live_server, make_job, tmp_path):
    job = make_job()
    store = worker_store(live_server, job)
    commit_checkpoint(store, checkpoint_dir(tmp_path, 1), 1, attempt=1)
    # A crash mid-upload: files of step 2 but no manifest.
    store.put_file("checkpoints/step-2/adapter_model.safetensors",
                   checkpoint_dir(tmp_path, 2) / "adapter_model.safetensors")
    assert [m["step"] for m in store.committed_checkpoints()] == [1]


def test_get_of_a_missing_key_is_a_store_error(backend, live_server, make_job, tmp_path):
    job = make_job()
    store = worker_store(live_server, job)
    with pytest.raises(StoreError):
        store.get_file("checkpoints/step-9/manifest.json", tmp_path / "m.json")


def test_it_rejects_a_bad_or_stale_signature(filesystem, live_server, make_job):
    job = make_job()
    wrong = open_store({"kind": "http", "api_url": api_url(live_server, job)}, secret="not-the-secret",
                       attempt=job.attempt)
    with pytest.raises(StoreError, match="HTTP 401"):
        wrong.committed_checkpoints()

    url = api_url(live_server, job) + "/sign"
    payload = {"method": "PUT", "keys": ["adapter/x"]}
    stale = signed_post(url, payload, **signing.signed_headers(SECRET, json.dumps(payload).encode(),
                                                              timestamp=int(time.time()) - 600))
    assert stale.status_code == 401
    unsigned = requests.post(url, json=payload, timeout=10)
    assert unsigned.status_code == 401
    # Another job's secret does not open this job's storage.
    other = make_job(secret="other-secret")
    assert signed_post(url, payload, secret=other.secret).status_code == 401
    assert signed_post(url, payload).status_code == 200


@pytest.mark.parametrize("key", ["../other-job/adapter/x", "checkpoints/../../x", "/etc/passwd",
                                 "a//b", "a\\..\\b"])
def test_it_rejects_keys_outside_the_job(filesystem, live_server, make_job, key):
    job = make_job()
    base = api_url(live_server, job)
    assert signed_post(base + "/sign", {"method": "PUT", "keys": [key]}).status_code == 400
    assert signed_post(base + "/delete", {"prefix": key}).status_code == 400


def test_it_rejects_malformed_requests(filesystem, live_server, make_job):
    base = api_url(live_server, make_job())
    assert signed_post(base + "/sign", {"method": "DELETE", "keys": ["a"]}).status_code == 400
    assert signed_post(base + "/sign", {"method": "GET", "keys": []}).status_code == 400
    assert signed_post(base + "/delete", {"prefix": ""}).status_code == 400
    # exports/ belong to the control plane.
    assert signed_post(base + "/sign", {"method": "PUT", "keys": ["exports/adapter.zip"]}).status_code == 400
    assert signed_post(base + "/delete", {"prefix": "exports/"}).status_code == 400
    assert signed_post(base + "/delete", {"prefix": "adapter"}).status_code == 400


def test_delete_keeps_everything_outside_the_prefix(backend, live_server, make_job):
    job, neighbour = make_job(), make_job()
    for owner in (job, neighbour):
        storage.save_bytes(storage.job_key(owner.pk, "checkpoints/step-1/a"), b"1")
    storage.save_bytes(storage.job_key(job.pk, "adapter/adapter_config.json"), b"{}")
    response = signed_post(api_url(live_server, job) + "/delete", {"prefix": "checkpoints/"})
    assert response.status_code == 204
    assert [k for k, _ in storage.list_keys(f"jobs/{job.pk}/")] == [f"jobs/{job.pk}/adapter/adapter_config.json"]
    assert storage.exists(storage.job_key(neighbour.pk, "checkpoints/step-1/a"))


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED])
def test_a_finished_job_gets_409(filesystem, live_server, make_job, status):
    job = make_job(status=status)
    store = worker_store(live_server, job)
    with pytest.raises(StoreError, match="HTTP 409"):
        store.put_bytes("checkpoints/step-1/manifest.json", b"{}")


def test_a_cancelled_jobs_current_attempt_still_commits_its_last_checkpoint(filesystem, live_server, make_job,
                                                                           tmp_path):
    """The worker checkpoints its last completed step as the cancel stops it; a superseded
    attempt of the same job still gets nothing."""
    job = make_job(status=Status.CANCELLED)
    commit_checkpoint(worker_store(live_server, job), checkpoint_dir(tmp_path, 7), 7, attempt=1)
    assert [m["step"] for m in worker_store(live_server, job).committed_checkpoints()] == [7]
    url = f"{api_url(live_server, job)}/sign"
    assert signed_post(url, {"method": "PUT", "keys": ["checkpoints/step-8/manifest.json"]}, attempt=2).status_code == 409


def test_an_attempt_header_from_a_superseded_attempt_gets_409(filesystem, live_server, make_job):
    job = make_job(attempt=3)
    url = api_url(live_server, job) + "/sign"
    payload = {"method": "PUT", "keys": ["adapter/x"]}
    assert signed_post(url, payload, **{"x-worker-attempt": "2"}).status_code == 409
    assert signed_post(url, payload, **{"x-worker-attempt": "3"}).status_code == 200


@pytest.mark.parametrize("route", ["sign", "delete", "multipart"])
def test_a_call_without_its_attempt_header_is_a_400_naming_it(filesystem, live_server, make_job, route):
    job = make_job(attempt=3)
    storage.save_bytes(storage.job_key(job.pk, "checkpoints/step-1/a"), b"1")
    payload = {"sign": {"method": "PUT", "keys": ["adapter/x"]}, "delete": {"prefix": "checkpoints/"},
               "multipart": {"action": "start", "key": "checkpoints/x", "size": 1}}[route]
    url = f"{api_url(live_server, job)}/{route}"
    for attempt in (None, "three", "", "3.0"):
        response = signed_post(url, payload, attempt=None,
                               **({"x-worker-attempt": attempt} if attempt is not None else {}))
        assert response.status_code == 400, (attempt, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "x-worker-attempt" in response.json()["errors"]
    assert storage.exists(storage.job_key(job.pk, "checkpoints/step-1/a"))  # nothing deleted
    assert signed_post(url, payload, attempt=2).status_code == 409
    assert signed_post(url, payload, attempt=3).status_code in (200, 204)


def test_listing_checkpoints_needs_the_attempt_header_too(filesystem, live_server, make_job):
    job = make_job(attempt=2)
    url = f"{api_url(live_server, job)}/checkpoints"
    unsigned_attempt = requests.get(url, headers=signing.signed_headers(SECRET, b""), timeout=10)
    assert unsigned_attempt.status_code == 400
    assert requests.get(url, headers={**signing.signed_headers(SECRET, b""), "x-worker-attempt": "2"},
                        timeout=10).status_code == 200


def test_an_unknown_job_looks_like_a_bad_signature(filesystem, live_server, make_job):
    url = f"{live_server.url}/api/worker/jobs/00000000-0000-0000-0000-000000000000/storage/sign"
    unknown = signed_post(url, {"method": "GET", "keys": ["a"]})
    bad_signature = signed_post(api_url(live_server, make_job()) + "/sign", {"method": "GET", "keys": ["a"]},
                                secret="not-the-secret")
    never_started = signed_post(api_url(live_server, make_job(status=Status.PENDING, attempt=0, secret="")) + "/sign",
                                {"method": "GET", "keys": ["a"]}, secret="", attempt=0)
    assert unknown.status_code == bad_signature.status_code == never_started.status_code == 401
    assert unknown.json() == bad_signature.json() == never_started.json()
    # Whatever is wrong with the signature, an unknown job gets the answer a known one would.
    payload = {"method": "GET", "keys": ["a"]}
    stale = signing.signed_headers(SECRET, json.dumps(payload).encode(), timestamp=int(time.time()) - 600)
    stale_unknown = signed_post(url, payload, **stale)
    stale_known = signed_post(api_url(live_server, make_job()) + "/sign", payload, **stale)
    assert stale_unknown.status_code == stale_known.status_code == 401
    assert stale_unknown.json() == stale_known.json()


def test_a_control_body_over_the_limit_is_a_json_413(filesystem, live_server, make_job, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    url = api_url(live_server, make_job()) + "/sign"
    response = signed_post(url, {"method": "PUT", "keys": ["adapter/" + "x" * 2000]})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "1000" in response.json()["detail"]


def test_the_store_spec_for_remote_workers_points_at_this_api(settings, make_job):
    from training.worker_storage import worker_store_spec

    settings.PUBLIC_BASE_URL = "https://cp.example.com"
    job = make_job()
    assert worker_store_spec(job.pk) == {
        "kind": "http", "api_url": f"https://cp.example.com/api/worker/jobs/{job.pk}/storage"}


MIB = 1024 * 1024


def test_a_big_upload_goes_to_s3_in_parts_and_arrives_whole(s3, live_server, make_job, tmp_path, settings):
    settings.WORKER_MULTIPART_THRESHOLD_BYTES = 6 * MIB
    settings.WORKER_MULTIPART_PART_BYTES = 5 * MIB
    job = make_job()
    store = worker_store(live_server, job)
    big = tmp_path / "optimizer.pt"
    pattern = bytes(range(256)) * 4096  # 1 MiB, so a misplaced part shows
    big.write_bytes(b"".join(bytes([i]) + pattern[1:] for i in range(12)) + b"tail")  # 12 MiB + 4 bytes

    store.put_file("checkpoints/step-100/optimizer.pt", big)

    key = f"jobs/{job.pk}/checkpoints/step-100/optimizer.pt"
    assert storage.read_bytes(key, limit=20 * MIB) == big.read_bytes()
    s3_storage = storage.default_storage()
    head = s3_storage.connection.meta.client.head_object(Bucket=s3_storage.bucket.name,
                                                           Key=s3_storage._normalize_name(key))
    assert head["ETag"].strip('"').endswith("-3")  # S3's ETag of a 3-part multipart upload
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * (6 * MIB - 1))  # under the threshold: one signed PUT
    store.put_file("checkpoints/step-100/small.bin", small)
    assert storage.size(f"jobs/{job.pk}/checkpoints/step-100/small.bin") == 6 * MIB - 1


def test_the_filesystem_backend_declines_multipart(filesystem, live_server, make_job):
    job = make_job()
    answer = signed_post(f"{api_url(live_server, job)}/multipart",
                         {"action": "start", "key": "checkpoints/step-1/big.bin", "size": 10 ** 10})
    assert answer.status_code == 200 and answer.json() == {"multipart": False}


def test_multipart_requests_are_checked(s3, live_server, make_job):
    job = make_job()
    url = f"{api_url(live_server, job)}/multipart"
    assert signed_post(url, {"action": "start", "key": "../other/x", "size": 1}).status_code == 400
    assert signed_post(url, {"action": "start", "key": "checkpoints/x", "size": -1}).status_code == 400
    assert signed_post(url, {"action": "complete", "key": "checkpoints/x", "upload_id": "nope",
                             "parts": [{"part_number": 1, "etag": "\"abc\""}]}).status_code == 400
    assert signed_post(url, {"action": "explode", "key": "checkpoints/x", "upload_id": "u"}).status_code == 400
    assert signed_post(url, {"action": "start", "key": "checkpoints/x", "size": 1}, secret="wrong").status_code in (
        401, 403)


@given(st.integers(0, 10 ** 13), st.integers(1, 10 ** 9))
def test_multipart_part_sizes_fit_s3s_limits(size, preferred):
    part = storage.multipart_part_size(size, preferred)
    assert part >= storage.S3_MIN_PART and part >= preferred
    assert -(-size // part) <= storage.S3_MAX_PARTS
    if preferred >= storage.S3_MIN_PART and -(-size // preferred) <= storage.S3_MAX_PARTS:
        assert part == preferred  # raised only when it has to be
