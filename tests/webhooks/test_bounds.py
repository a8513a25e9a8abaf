"""Correctly signed events whose numbers or text the database cannot hold: a 400 naming the
field and nothing written, or the text made storable; never a 500 (issue 18, items 3 and 4)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpu_worker import signing
from training.models import JobEvent, MetricPoint, TrainingJob

from .conftest import FakeWorker, point

pytestmark = pytest.mark.usefixtures("postgres_required")

INT_MAX = 2**31 - 1  # PostgreSQL integer, the type of every step, seq and attempt column


def assert_refused_naming(response, field: str) -> None:
    assert response.status == 400, response.body
    assert field in response.body["errors"], response.body
    assert field in response.body["detail"]


def assert_nothing_written(job: TrainingJob) -> None:
    assert not JobEvent.objects.filter(job=job).exists()
    assert not MetricPoint.objects.filter(job=job).exists()


@pytest.mark.parametrize(("event_type", "data", "field"), [
    ("metrics", {"points": [point(1), point(2**31)]}, "points[1].step"),
    ("metrics", {"points": [point(1, eta_seconds=1e300)]}, "points[0].eta_seconds"),
    ("metrics", {"points": [point(1, total_steps=10**12)]}, "points[0].total_steps"),
    ("metrics", {"points": [point(1, gpu_memory_used_mb=2**40)]}, "points[0].gpu_memory_used_mb"),
    ("metrics", {"points": [point(1, gpu_utilization_pct=10**6)]}, "points[0].gpu_utilization_pct"),
    ("metrics", {"points": [point(1, train_loss=10**400)]}, "points[0].train_loss"),
    ("checkpoint_saved", {"step": 2**31, "key": "checkpoints/step-x"}, "step"),
    ("resumed", {"resumed_from_step": 2**63}, "resumed_from_step"),
    ("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 2**31}, "last_checkpoint_step"),
    ("completed", {"steps": 10**12, "final_train_loss": 1.0}, "steps"),
])
def test_a_number_too_big_for_its_column_is_a_400_naming_the_field(worker, job, event_type, data, field):
    assert_refused_naming(worker.send(event_type, data), field)
    assert_nothing_written(job)


@pytest.mark.parametrize("field", ["seq", "attempt"])
def test_a_huge_seq_or_attempt_is_a_400_naming_it(worker, job, field):
    assert_refused_naming(worker.send("heartbeat", {"stage": "training"}, **{field: 2**40}), field)
    assert_nothing_written(job)


def test_the_largest_values_the_columns_hold_are_accepted(worker, job):
    TrainingJob.objects.filter(pk=job.pk).update(attempt=INT_MAX)
    response = FakeWorker(worker.client, job, attempt=INT_MAX).send(
        "metrics", {"points": [point(INT_MAX, eta_seconds=INT_MAX, total_steps=INT_MAX, train_loss=1e308,
                                     gpu_utilization_pct=100, gpu_memory_used_mb=INT_MAX)]}, seq=INT_MAX)
    assert response.status == 200, response.body
    row = MetricPoint.objects.get(job=job)
    assert (row.step, row.eta_seconds, row.train_loss) == (INT_MAX, INT_MAX, 1e308)


def test_a_float_literal_beyond_double_range_is_read_as_null(worker, job):
    body, headers = worker.build("metrics", {"points": [point(3, train_loss=1.0)]})
    body = body.replace(b'"grad_norm":null', b'"grad_norm":1e400')
    headers = signing.signed_headers(worker.secret, body, msg_id=headers["webhook-id"])
    assert worker.post(body, headers).status == 200
    assert MetricPoint.objects.get(job=job, step=3).grad_norm is None


def test_worker_text_with_nul_bytes_or_lone_surrogates_is_stored_without_them(worker, job):
    response = worker.send("error", {"error_type": "crash\u0000", "message": "boom\u0000 at \ud800 here",
                                     "details": {"trace\u0000": ["line\u0000"]}, "exit_code": 1})
    assert response.status == 200, response.body
    job.refresh_from_db()
    assert job.status == "failed"
    assert "\x00" not in job.error_message and job.error_message.startswith("boom")
    event = JobEvent.objects.get(job=job, event_type="error")
    assert "\x00" not in json.dumps(event.payload, ensure_ascii=False)


NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63, 2**64, 10**12, 1e300, -1e300, 5e-324, -0.0, 32767, 32768]),
)
# Every numeric field of the contract (docs/worker-contract.md), as (event type, data builder).
FIELDS = [
    *[("metrics", name) for name in ("step", "epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm",
                                      "perplexity", "tokens_per_second", "samples_per_second",
                                      "gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_utilization_pct",
                                      "eta_seconds", "total_steps")],
    ("checkpoint_saved", "step"), ("checkpoint_saved", "size_bytes"), ("resumed", "resumed_from_step"),
    ("interrupted", "last_checkpoint_step"), ("completed", "steps"), ("completed", "final_train_loss"),
    ("completed", "final_eval_loss"), ("error", "exit_code"), ("heartbeat", "step"), ("heartbeat", "total_steps"),
    ("validation_results", "perplexity"), ("envelope", "seq"), ("envelope", "attempt"),
]


def event_with(event_type: str, name: str, value) -> tuple[str, dict, dict]:
    if event_type == "metrics":
        values = {"step": 5, name: value} if name != "step" else {"step": value}
        return "metrics", {"points": [{**point(5, train_loss=1.0), **values}]}, {}
    if event_type == "envelope":
        return "heartbeat", {"stage": "training"}, {name: value}
    if event_type == "validation_results":
        return event_type, {"evaluators": {"perplexity": {"trained": value, "base": value}}}, {}
    data = {"checkpoint_saved": {"step": 10, "key": "checkpoints/step-10"}, "resumed": {"resumed_from_step": 1},
            "interrupted": {"signal": "SIGTERM"}, "completed": {"steps": 10},
            "error": {"error_type": "oom", "message": "x"}, "heartbeat": {"stage": "training"}}[event_type]
    return event_type, {**data, name: value}, {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=NUMBERS)
def test_any_number_in_any_field_is_never_a_server_error(client, db, postgres_required, field, value):
    from .conftest import make_job

    job = make_job()
    event_type, data, envelope = event_with(*field, value)
    worker = FakeWorker(client, job)
    body, headers = worker.build(event_type, data, **envelope)
    # json.dumps writes NaN and Infinity as the worker's json.dumps would.
    response = client.post("/api/training/webhook", data=body, content_type="application/json", headers=headers)
    assert response.status_code < 500, (field, value, response.content[:300])
    assert response["Content-Type"] == "application/json"
    if response.status_code == 400:
        assert response.json()["errors"], response.json()
    if isinstance(value, float) and math.isfinite(value) and field[1] in ("train_loss", "eval_loss"):
        # A finite loss fits a double column: it is never refused.
        assert response.status_code == 200, (field, value, response.json())
