"""A heartbeat carries the worker's progress before any metrics batch: the job's total steps and
remaining time follow it at once, measured once a step's time is known; a finished job has none."""

from __future__ import annotations

from training.lifecycle import Status, transition
from training.models import TrainingJob
from training.services.progress import job_progress

from .conftest import FakeWorker

ESTIMATE = {"stages": {"startup": 1.0, "preprocessing": 0.5, "model_loading": 0.5, "training": 2.0,
                       "validation": 3.0},
            "throughput_minutes": {"training": 2.0, "validation": 1.0}, "total_steps": 12}


def with_estimate(job: TrainingJob) -> TrainingJob:
    TrainingJob.objects.filter(pk=job.pk).update(estimate=ESTIMATE)
    job.refresh_from_db()
    return job


def test_the_first_heartbeat_gives_the_total_steps_and_an_estimated_eta(worker: FakeWorker, job):
    with_estimate(job)
    worker.send("heartbeat", {"stage": "training", "step": 0, "total_steps": 12, "seconds_per_step": None})
    job.refresh_from_db()
    assert job.total_steps == 12
    # Nothing measured yet: the estimate's training (2 min) and validation (3 min), at most.
    assert 4 <= job.estimated_time_remaining_minutes <= 5
    shown = job_progress(job)
    assert (shown["step"], shown["total_steps"], shown["basis"]) == (0, 12, "estimate")


def test_a_measured_step_time_replaces_the_estimate_and_scales_the_stages_after(worker: FakeWorker, job):
    with_estimate(job)
    # 80 s a step against the estimate's 10 s: training 11 x 80 s, validation's throughput-bound
    # minute 8x longer: 2 min fixed + 8 min.
    worker.send("heartbeat", {"stage": "training", "step": 1, "total_steps": 12, "seconds_per_step": 80.0})
    job.refresh_from_db()
    assert job.estimated_time_remaining_minutes == -(-(11 * 80 + 10 * 60) // 60)
    shown = job_progress(job)
    assert shown["basis"] == "measured" and shown["step"] == 1
    assert 11 * 80 - 5 <= shown["stage_eta_seconds"] <= 11 * 80


def test_validation_reports_its_samples_and_their_own_eta(worker: FakeWorker, job):
    with_estimate(job)
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.VALIDATING)
    job.refresh_from_db()
    worker.send("heartbeat", {"stage": "validating", "step": 12, "total_steps": 12, "validation_done": 12,
                              "validation_total": 40, "seconds_per_validation_sample": 2.5})
    job.refresh_from_db()
    shown = job_progress(job)
    assert shown["validation"] == {"done": 12, "total": 40}
    assert 28 * 2.5 - 5 <= shown["eta_seconds"] <= 28 * 2.5
    assert job.estimated_time_remaining_minutes == 2


def test_nonsense_progress_fields_are_ignored_not_a_server_error(worker: FakeWorker, job):
    with_estimate(job)
    response = worker.send("heartbeat", {"stage": "training", "step": "x", "total_steps": 10**30,
                                         "seconds_per_step": -3, "validation_total": {"a": 1}})
    assert response.status == 200
    job.refresh_from_db()
    assert job.total_steps is None


def test_a_finished_job_has_no_remaining_time(worker: FakeWorker, job):
    with_estimate(job)
    worker.send("heartbeat", {"stage": "training", "step": 1, "total_steps": 12, "seconds_per_step": 80.0})
    assert transition(job.pk, Status.CANCELLED, message="test")
    job.refresh_from_db()
    assert job.estimated_time_remaining_minutes is None
    assert job_progress(job)["eta_seconds"] is None


def test_the_train_commands_progress_line_shows_steps_then_validation_samples(worker: FakeWorker, job):
    from training.management.commands.train import progress_line

    with_estimate(job)
    worker.send("heartbeat", {"stage": "training", "step": 0, "total_steps": 12})
    job.refresh_from_db()
    line = progress_line(job)
    assert "step 0/12" in line and "ETA " in line and "(estimate)" in line
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.VALIDATING)
    job.refresh_from_db()
    worker.send("heartbeat", {"stage": "validating", "step": 12, "total_steps": 12, "validation_done": 10,
                              "validation_total": 40, "seconds_per_validation_sample": 3.0})
    line = progress_line(job)
    assert "validating 10/40 samples" in line and " 25.0%" in line
    assert "ETA 1m 3" in line or "ETA 1m 2" in line  # 30 samples x 3 s, less the seconds since
