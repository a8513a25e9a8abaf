"""A webhook-id is applied once, however often and however concurrently it arrives."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, close_old_connections, connection

from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob
from training.services.ingest import ingest_event

from .conftest import FakeWorker, make_job, point


def test_a_replayed_event_has_one_effect(worker, job):
    first = worker.send("metrics", {"points": [point(10, train_loss=2.0)]})
    again = worker.resend_last()
    assert first.body["duplicate"] is False
    assert (again.status, again.body) == (200, {"accepted": True, "duplicate": True})
    assert JobEvent.objects.filter(job=job, event_type="metrics").count() == 1
    assert MetricPoint.objects.filter(job=job).count() == 1


def test_a_replayed_checkpoint_does_not_move_the_job_twice(worker, job):
    worker.send("stage_changed", {"stage": "finalizing"})
    worker.resend_last()
    assert JobEvent.objects.filter(job=job, event_type=JobEvent.Type.STATUS_CHANGED).count() == 1


def test_a_duplicate_does_not_count_as_a_heartbeat(worker, job):
    worker.send("heartbeat", {"stage": "training"})
    job.refresh_from_db()
    first_beat = job.last_heartbeat_at
    worker.resend_last()
    job.refresh_from_db()
    assert job.last_heartbeat_at == first_beat


def _send_from_threads(body: bytes, headers: dict[str, str], copies: int) -> list:
    """POST one event from `copies` threads at once, each on its own database connection."""
    results: list = [None] * copies
    start = threading.Barrier(copies)

    def deliver(index: int) -> None:
        try:
            start.wait(timeout=30)
            # Connection slots can run out with a hundred clients at once; the worker answers
            # that (a 5xx) by retrying, and so do we: retrying is exactly what must be safe.
            for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0):
                try:
                    results[index] = ingest_event(headers, body)
                    return
                except OperationalError as exc:
                    if "too many clients" not in str(exc) and "connection slots" not in str(exc):
                        raise
                    time.sleep(delay)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_hundred_concurrent_copies_have_exactly_one_effect(postgres_required, client):
    job = make_job(status=Status.TRAINING)
    body, headers = FakeWorker(client, job).build("stage_changed", {"stage": "finalizing"})
    close_old_connections()
    connection.close()  # leave every connection slot to the hundred senders

    results = _send_from_threads(body, headers, copies=100)

    errors = [r for r in results if not hasattr(r, "status")]
    assert not errors, errors[:3]
    assert all(r.status == 200 for r in results), {r.status for r in results}
    assert sum(not r.body["duplicate"] for r in results) == 1
    assert JobEvent.objects.filter(job=job, event_type="stage_changed").count() == 1
    assert JobEvent.objects.filter(job=job, event_type=JobEvent.Type.STATUS_CHANGED).count() == 1
    assert TrainingJob.objects.get(pk=job.pk).status == Status.FINALIZING


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_copies_of_a_metrics_batch_store_each_point_once(postgres_required, client):
    job = make_job(status=Status.TRAINING)
    body, headers = FakeWorker(client, job).build(
        "metrics", {"points": [point(s, train_loss=3.0 - s / 100) for s in range(1, 11)]})
    connection.close()

    results = _send_from_threads(body, headers, copies=20)

    assert all(getattr(r, "status", None) == 200 for r in results), results[:3]
    assert sum(not r.body["duplicate"] for r in results) == 1
    assert MetricPoint.objects.filter(job=job).count() == 10
    assert JobEvent.objects.filter(job=job, event_type="metrics").count() == 1
