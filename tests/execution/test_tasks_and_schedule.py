"""The Celery tasks are thin and idempotent; the beat schedule is a row operators can edit."""

from __future__ import annotations

import uuid

import pytest

from training import tasks
from training.lifecycle import Status

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("task", [tasks.launch_job, tasks.stop_job_execution, tasks.poll_job])
def test_a_task_for_a_job_that_no_longer_exists_does_nothing(task):
    task.apply(args=(str(uuid.uuid4()),)).get()


@pytest.mark.parametrize("status", [Status.PENDING, Status.COMPLETED, Status.CANCELLED])
def test_launch_does_nothing_for_a_job_that_is_not_waiting_for_a_worker(make_job, status):
    job = make_job(status=status)
    tasks.launch_job.apply(args=(str(job.pk),)).get()
    job.refresh_from_db()
    assert (job.status, job.attempt, job.attempt_ref, job.attempts.count()) == (status, 0, {}, 0)


def test_poll_active_jobs_is_scheduled_every_15_seconds():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="training.tasks.poll_active_jobs")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (15, "seconds")


def test_the_tasks_are_registered_under_the_names_services_enqueue():
    from config.celery import app

    app.loader.import_default_modules()
    assert {"training.tasks.launch_job", "training.tasks.stop_job_execution", "training.tasks.poll_job",
            "training.tasks.poll_active_jobs"} <= set(app.tasks)
