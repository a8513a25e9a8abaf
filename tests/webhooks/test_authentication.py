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


def test_it_answers_404_for_an_unknown_job(client, db):
    body = json.dumps({"id": "evt_1", "type": "heartbeat", "job_id": str(uuid.uuid4()), "attempt": 1,
                       "seq": 1, "data": {}}).encode()
    response = client.post(WEBHOOK_URL, data=body, content_type="application/json",
                           headers=signing.signed_headers("s3cret", body, msg_id="evt_1"))
    assert response.status_code == 404
    assert not JobEvent.objects.exists()


def test_it_answers_404_for_a_job_that_was_never_started(client, db):
    job = make_job(status="pending", attempt=0, secret="")
    body = json.dumps({"id": "evt_1", "type": "heartbeat", "job_id": str(job.pk), "attempt": 0,
                       "seq": 1, "data": {}}).encode()
    response = client.post(WEBHOOK_URL, data=body, content_type="application/json",
                           headers=signing.signed_headers("", body, msg_id="evt_1"))
    assert response.status_code == 404
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
