"""Who may report: the signature, its time window, the job it names. A refusal writes nothing."""

from __future__ import annotations

import json
import time
import uuid

import time_machine

from gpu_worker import signing
from training.models import JobEvent, TrainingJob
from training.services.ingest import ingest_event

from .conftest import WEBHOOK_URL, make_job


def assert_nothing_written(job: TrainingJob) -> None:
    assert not JobEvent.objects.filter(job=job).exists()
    job.refresh_from_db()
    assert job.last_heartbeat_at is None


def test_it_accepts_a_correctly_signed_event(worker):
    response = worker.send("heartbeat", {"stage": "training", "step": 3, "total_steps": 10})
    assert response.status == 200
    assert response.body == {"accepted": True, "duplicate": False}


def test_it_refuses_a_forged_signature(worker, job):
    response = worker.send("heartbeat", {"stage": "training"}, secret="not-the-job-secret")
    assert response.status == 401
    assert "signature" in response.body["detail"]
    assert_nothing_written(job)


def test_it_refuses_a_tampered_body(worker, job):
    body, headers = worker.build("stage_changed", {"stage": "finalizing"})
    response = worker.post(body.replace(b"finalizing", b"validating"), headers)
    assert response.status == 401
    assert_nothing_written(job)


def test_it_refuses_a_stale_timestamp(worker, job):
    response = worker.send("heartbeat", {"stage": "training"}, timestamp=int(time.time()) - 6 * 60)
    assert response.status == 401
    assert "tolerance" in response.body["detail"]
    assert_nothing_written(job)


def test_it_refuses_a_replay_six_minutes_later(worker, job):
    body, headers = worker.build("heartbeat", {"stage": "training"})
    with time_machine.travel(time.time() + 6 * 60):
        response = worker.post(body, headers)
    assert response.status == 401
    assert_nothing_written(job)


def test_it_refuses_a_timestamp_from_the_future(worker, job):
    response = worker.send("heartbeat", {"stage": "training"}, timestamp=int(time.time()) + 6 * 60)
    assert response.status == 401
    assert_nothing_written(job)


def test_it_accepts_a_timestamp_within_the_tolerance(worker):
    assert worker.send("heartbeat", {"stage": "training"}, timestamp=int(time.time()) - 4 * 60).status == 200


def test_it_refuses_missing_signature_headers(worker, job):
    body, _ = worker.build("heartbeat", {"stage": "training"})
    assert worker.post(body, {}).status == 401
    assert_nothing_written(job)


def post_heartbeat(client, job_id, attempt: int, secret: str, *, timestamp: int | None = None):
    body = json.dumps({"id": "evt_1", "type": "heartbeat", "job_id": str(job_id), "attempt": attempt,
                       "seq": 1, "data": {}}).encode()
    headers = signing.signed_headers(secret, body, msg_id="evt_1",
                                     timestamp=int(time.time()) if timestamp is None else timestamp)
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)


def test_an_unknown_job_is_answered_exactly_like_a_bad_signature(client, job):
    bad_signature = post_heartbeat(client, job.pk, 1, "not-the-job-secret")
    unknown = post_heartbeat(client, uuid.uuid4(), 1, "s3cret")
    assert unknown.status_code == bad_signature.status_code == 401
    assert unknown.json() == bad_signature.json()
    assert JobEvent.objects.count() == 0


def test_a_stale_timestamp_is_answered_alike_for_unknown_and_known_jobs(client, job):
    stale = int(time.time()) - 6 * 60
    known = post_heartbeat(client, job.pk, 1, "s3cret", timestamp=stale)
    unknown = post_heartbeat(client, uuid.uuid4(), 1, "s3cret", timestamp=stale)
    assert unknown.status_code == known.status_code == 401
    assert unknown.json() == known.json()


def test_a_job_that_was_never_started_is_answered_like_an_unknown_one(client, db):
    job = make_job(status="pending", attempt=0, secret="")
    # It has no secret: neither an empty one nor any other signs for it.
    for secret in ("", "s3cret"):
        never_started = post_heartbeat(client, job.pk, 0, secret)
        unknown = post_heartbeat(client, uuid.uuid4(), 0, secret)
        assert never_started.status_code == unknown.status_code == 401
        assert never_started.json() == unknown.json()
    assert_nothing_written(job)


def test_it_answers_400_for_a_malformed_body_or_job_id(client, db):
    for body in (b"not json", b"[1, 2]", b'{"job_id": "not-a-uuid"}', b'{"type": "heartbeat"}'):
        response = client.post(WEBHOOK_URL, data=body, content_type="application/json",
                               headers=signing.signed_headers("s3cret", body))
        assert response.status_code == 400, body
    assert not JobEvent.objects.exists()


def test_it_refuses_a_body_whose_id_is_not_the_webhook_id(worker, job):
    body, _ = worker.build("heartbeat", {"stage": "training"}, event_id="evt_body")
    response = worker.post(body, signing.signed_headers(worker.secret, body, msg_id="evt_header"))
    assert response.status == 400
    assert "webhook-id" in response.body["detail"]
    assert_nothing_written(job)


def test_it_refuses_a_signed_event_that_breaks_the_contract(worker, job):
    assert worker.send("reboot", {}).status == 400
    assert worker.send("stage_changed", {"stage": "sleeping"}).status == 400
    assert worker.send("metrics", {"points": [{"epoch": 1.0}]}).status == 400
    assert worker.send("checkpoint_saved", {"step": "100"}).status == 400
    assert_nothing_written(job)


def test_it_only_accepts_post(client, db):
    assert client.get(WEBHOOK_URL).status_code == 405


def test_the_service_reads_headers_in_any_case(job):
    body = json.dumps({"id": "evt_1", "type": "heartbeat", "job_id": str(job.pk), "attempt": 1,
                       "seq": 1, "data": {}}).encode()
    headers = {k.title(): v for k, v in signing.signed_headers("s3cret", body, msg_id="evt_1").items()}
    assert ingest_event(headers, body).status == 200


def test_the_service_takes_the_clock_as_a_parameter(job):
    body = json.dumps({"id": "evt_1", "type": "heartbeat", "job_id": str(job.pk), "attempt": 1,
                       "seq": 1, "data": {}}).encode()
    headers = signing.signed_headers("s3cret", body, msg_id="evt_1", timestamp=1_000_000)
    assert ingest_event(headers, body, now=1_000_000 + 301).status == 401
    assert ingest_event(headers, body, now=1_000_000 + 299).status == 200
