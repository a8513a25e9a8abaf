"""metrics batches: one row per step, stored by step whatever the arrival order, partial
points merged; the job's progress and latest figures only move forward within an attempt."""

from __future__ import annotations

import math
from decimal import Decimal

from training.models import MetricPoint, TrainingJob

from .conftest import FakeWorker, point


def rows(job: TrainingJob) -> list[tuple]:
    return list(MetricPoint.objects.filter(job=job).values_list("step", "train_loss", "eval_loss"))


def test_points_are_stored_one_row_per_step(worker, job):
    worker.send("metrics", {"points": [point(s, train_loss=3.0 - s / 10, epoch=s / 100) for s in (1, 2, 3)]})
    assert rows(job) == [(1, 2.9, None), (2, 2.8, None), (3, 2.7, None)]


def test_out_of_order_batches_are_stored_and_returned_in_step_order(worker, job):
    worker.send("metrics", {"points": [point(30, train_loss=1.3), point(40, train_loss=1.2)]})
    worker.send("metrics", {"points": [point(20, train_loss=1.4), point(10, train_loss=1.5)]})
    assert [r[0] for r in rows(job)] == [10, 20, 30, 40]
    job.refresh_from_db()
    assert job.current_step == 40  # the late batch did not move the job back
    assert job.latest_loss == 1.2


def test_a_later_partial_point_fills_in_without_nulling_out(worker, job):
    worker.send("metrics", {"points": [point(100, train_loss=1.1, learning_rate=2e-4, grad_norm=0.7)]})
    worker.send("metrics", {"points": [point(100, eval_loss=1.25)]})
    row = MetricPoint.objects.get(job=job, step=100)
    assert (row.train_loss, row.learning_rate, row.grad_norm, row.eval_loss) == (1.1, 2e-4, 0.7, 1.25)
    assert math.isclose(row.perplexity, math.exp(1.25))


def test_a_train_and_an_eval_log_at_one_step_in_one_batch_merge(worker, job):
    worker.send("metrics", {"points": [point(50, train_loss=1.4), point(50, eval_loss=1.5)]})
    assert rows(job) == [(50, 1.4, 1.5)]


def test_a_resent_point_updates_its_row(worker, job):
    worker.send("metrics", {"points": [point(5, train_loss=2.0)]})
    worker.send("metrics", {"points": [point(5, train_loss=1.9)]})
    assert rows(job) == [(5, 1.9, None)]


def test_the_job_shows_the_newest_figures(worker, job):
    worker.send("metrics", {"points": [
        point(49, train_loss=1.6, learning_rate=1e-4, epoch=0.49, eta_seconds=301.5),
        point(50, train_loss=1.5, learning_rate=9e-5, epoch=0.5, eta_seconds=290.2),
        point(50, eval_loss=1.7),
    ]})
    job.refresh_from_db()
    assert (job.current_step, job.total_steps, job.current_epoch) == (50, 200, 0.5)
    assert (job.latest_loss, job.latest_eval_loss, job.latest_learning_rate) == (1.5, 1.7, 9e-5)
    assert job.progress_percentage == Decimal("25.00")
    assert job.estimated_time_remaining_minutes == 5
    assert job.last_heartbeat_at is not None


def test_progress_never_decreases_within_an_attempt(worker, job):
    worker.send("metrics", {"points": [point(150, train_loss=1.0)]})
    worker.send("metrics", {"points": [point(120, train_loss=1.2)]})
    job.refresh_from_db()
    assert (job.current_step, job.progress_percentage, job.latest_loss) == (150, Decimal("75.00"), 1.0)


def test_a_new_attempt_resuming_from_a_checkpoint_shows_its_own_progress(client, worker, job):
    worker.send("metrics", {"points": [point(130, train_loss=1.0, eval_loss=1.1)]})
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2)  # recovered: resumes from step 100
    second = FakeWorker(client, job, attempt=2)

    second.send("metrics", {"points": [point(110, train_loss=1.05)]})
    second.send("metrics", {"points": [point(130, train_loss=0.98)]})

    job.refresh_from_db()
    assert (job.current_step, job.latest_loss) == (130, 0.98)
    row = MetricPoint.objects.get(job=job, step=130)
    # The second attempt's figures replace the lost attempt's, eval_loss included.
    assert (row.attempt, row.train_loss, row.eval_loss) == (2, 0.98, None)


def test_the_first_batch_of_a_new_attempt_may_move_progress_back(client, worker, job):
    worker.send("metrics", {"points": [point(130, train_loss=1.0)]})
    TrainingJob.objects.filter(pk=job.pk).update(attempt=2)
    FakeWorker(client, job, attempt=2).send("metrics", {"points": [point(110, train_loss=1.05)]})
    job.refresh_from_db()
    assert (job.current_step, job.progress_percentage) == (110, Decimal("55.00"))


def test_floats_for_integer_columns_and_non_finite_values_are_tolerated(worker, job):
    body, headers = worker.build("metrics", {"points": [point(7, train_loss=1.0, eta_seconds=12.7,
                                                              gpu_memory_used_mb=1023.6)]})
    body = body.replace(b'"grad_norm":null', b'"grad_norm":NaN')
    from gpu_worker import signing

    headers = signing.signed_headers(worker.secret, body, msg_id=headers["webhook-id"])
    assert worker.post(body, headers).status == 200
    row = MetricPoint.objects.get(job=job, step=7)
    assert (row.eta_seconds, row.gpu_memory_used_mb, row.grad_norm) == (13, 1024, None)


def test_a_batch_costs_the_same_queries_whatever_its_size(worker, job, django_assert_max_num_queries):
    # The webhook must answer in milliseconds: no query per point. On PostgreSQL: the secret,
    # the row lock, the event (in a savepoint), the stored steps, one upsert of the points, one
    # of the summaries of new steps (a re-report recomputes them: the batch's rows, the untouched
    # halves, one upsert; services/metric_summaries.py), one UPDATE of the job; the trend analysis
    # adds its state's update and one bulk insert of its events, in the savepoint the job-event
    # hook opens around its receiver (training/events.py). Each event that adds (here two
    # milestones) costs the notifications receiver three more: its savepoint and one existence
    # query when nobody subscribed to the kind (notifications.services.anyone_wants). Those are
    # bounded by the events a batch can raise (four milestones, a finding of each kind), not by
    # its size.
    with django_assert_max_num_queries(21):
        worker.send("metrics", {"points": [point(s, train_loss=1.9) for s in range(11, 111)]})
    with django_assert_max_num_queries(17):  # 100 existing rows merged
        worker.send("metrics", {"points": [point(s, eval_loss=1.8) for s in range(11, 111)]})
