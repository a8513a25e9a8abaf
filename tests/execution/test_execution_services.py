"""Launch, poll, recovery and cost rules of the attempt services in training.services (fake worker, real DB)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from gpu_worker.config import WorkerConfig
from training.executors import ExecutorError
from training.executors.local import LocalExecutor, group_members, work_dir
from training.lifecycle import Status
from training.models import JobAttempt, JobEvent, TrainingJob
from training.services import launching, polling, recovery, stopping, worker_config

from .conftest import update_attempt, update_job

pytestmark = pytest.mark.django_db


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def fake(monkeypatch, fake_worker):
    """Launches carry a "fake" section telling the fake worker what to do."""
    behaviour: dict = {"sleep": 30}
    real = worker_config.build_worker_config
    monkeypatch.setattr(worker_config, "build_worker_config", lambda job: {**real(job), "fake": behaviour})
    yield behaviour
    for attempt in JobAttempt.objects.all():
        pgid = attempt.ref.get("pgid")
        if pgid and group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)


def launched_job(make_job, **fields) -> TrainingJob:
    job = make_job(**fields)
    launching.launch_attempt(str(job.pk))
    job.refresh_from_db()
    return job


def ended_long_ago(job) -> None:
    """Record the attempt's end 5 minutes back: past COMPLETION_GRACE_SECONDS."""
    job.refresh_from_db()
    update_attempt(job, ended_at=timezone.now() - timedelta(minutes=5))


def pod_events(job) -> list[str]:
    return list(job.events.filter(event_type=JobEvent.Type.POD_STATE).values_list("payload__state", flat=True))


# --- Worker configuration ---------------------------------------------------------------------


def test_the_worker_config_is_one_gpu_worker_accepts(make_job, settings):
    settings.PUBLIC_BASE_URL = "http://cp.example:8123"
    job = make_job(attempt=2, configuration={"base_model": "/models/tiny",
                                             "hyperparameters": {"max_steps": 8, "checkpoint_interval": 4}})
    config = worker_config.build_worker_config(job)
    parsed = WorkerConfig.from_dict(config)
    assert parsed.attempt == 2 and parsed.max_steps == 8 and parsed.checkpoint_interval == 4
    assert parsed.webhook_url == "http://cp.example:8123/api/training/webhook"
    assert parsed.webhook_secret == "s3cret"
    assert parsed.store == {"kind": "local", "root": str(settings.MEDIA_ROOT / "jobs" / str(job.pk))}
    assert parsed.dataset.endswith("datasets/tiny.jsonl")
    assert parsed.resume_from == "latest"
    assert f"{job.pk}/attempt-2" in parsed.output_dir


# --- Launch -----------------------------------------------------------------------------------


def test_launch_starts_attempt_one_and_records_the_worker(make_job, fake):
    job = launched_job(make_job)
    assert job.status == Status.PROVISIONING
    assert job.attempt == 1
    assert job.attempt_ref["pid"] and job.current_attempt.launch_recorded and job.billable_seconds == 0
    assert job.hourly_rate == Decimal("2.4900")  # H100 spot
    assert job.attempt_started_at is not None
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED, attempt=1).count() == 1


def test_a_second_launch_task_does_nothing(make_job, fake):
    job = launched_job(make_job)
    launching.launch_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.attempt == 1
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 1


def test_a_redelivered_launch_finds_the_worker_its_dead_predecessor_started(make_job, fake):
    job = launched_job(make_job)
    pid = job.attempt_ref["pid"]
    # The first task spawned the worker but died before storing the ref; the worker's `started`
    # report got there (ingestion keeps it on the attempt's `worker`).
    update_attempt(job, ref={}, ref_recorded_at=None, worker={"pid": 12345})
    launching.launch_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.attempt == 1
    assert job.attempt_ref["pid"] == pid
    assert job.current_attempt.worker == {"pid": 12345}


def test_a_failed_launch_fails_the_job_with_the_executors_explanation(make_job, monkeypatch, fake):
    def refuse(self, job, config):
        raise ExecutorError("infrastructure", "Could not start the local worker: no python.", "Check WORKER_PYTHON.")

    monkeypatch.setattr(LocalExecutor, "launch", refuse)
    job = launched_job(make_job)
    assert job.status == Status.FAILED
    assert job.error_type == "infrastructure"
    assert job.error_message == "Could not start the local worker: no python."
    assert job.error_suggested_fix == "Check WORKER_PYTHON."


def test_a_job_cancelled_during_launch_has_its_new_worker_stopped(make_job, monkeypatch, fake):
    real_launch = LocalExecutor.launch

    def launch_then_cancel(self, job, config):
        result = real_launch(self, job, config)
        TrainingJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
        return result

    monkeypatch.setattr(LocalExecutor, "launch", launch_then_cancel)
    job = make_job()
    launching.launch_attempt(str(job.pk))
    ref = json.loads((work_dir(job.pk, 1) / "worker.pid").read_text())
    # The stop sends SIGTERM and leaves escalation to the supervisor; on a loaded machine the
    # group may take a moment to go, so wait as the product does (within the grace period).
    job.refresh_from_db()
    assert LocalExecutor().wait_stopped(job, timeout=30)
    assert group_members(ref["pgid"]) == []


# --- Poll -------------------------------------------------------------------------------------


def test_poll_records_a_pod_state_event_only_when_the_state_changes(make_job, fake):
    job = launched_job(make_job)
    polling.poll_attempt(str(job.pk))
    polling.poll_attempt(str(job.pk))
    assert pod_events(job) == ["running"]


def test_poll_accrues_cost_from_the_attempts_start(make_job, fake):
    job = launched_job(make_job)
    update_job(job, attempt_started_at=timezone.now() - timedelta(hours=2))
    polling.poll_attempt(str(job.pk))
    polling.poll_attempt(str(job.pk))  # recomputed, not added again
    job.refresh_from_db()
    assert 7200 <= job.billable_seconds < 7260
    assert job.actual_cost == Decimal("4.98")


def test_cost_sums_finished_attempts_and_the_live_one(make_job, fake, enqueued, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    update_job(job, attempt_started_at=timezone.now() - timedelta(hours=1))
    job.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.handle_interruption(job.pk, 1, "test")
    job.refresh_from_db()
    assert 3600 <= job.billable_seconds < 3660
    launching.launch_attempt(str(job.pk))
    update_job(job, attempt_started_at=timezone.now() - timedelta(hours=1))
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.attempt == 2
    assert 7200 <= job.billable_seconds < 7300
    assert job.actual_cost == Decimal("4.98")


def test_a_worker_interrupted_with_exit_code_4_is_recovered(make_job, fake, enqueued, django_capture_on_commit_callbacks):
    fake.update(sleep=0, exit=4)
    job = launched_job(make_job)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING
    assert job.checkpoint_recovery_count == 1
    assert enqueued["launch_job"] == [str(job.pk)]
    assert pod_events(job) == ["exited"]


def test_a_vanished_worker_is_recovered_and_the_next_attempt_launched(make_job, fake, enqueued, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    wait_for(lambda: len(group_members(job.attempt_ref["pgid"])) >= 2)
    os.killpg(job.attempt_ref["pgid"], signal.SIGKILL)
    wait_for(lambda: LocalExecutor().poll(job).state == "gone")
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    assert enqueued["launch_job"] == [str(job.pk)]
    launching.launch_attempt(str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Status.PROVISIONING, 2)
    assert job.attempt_ref["pid"] and job.current_attempt.launch_recorded
    assert job.attempts.get(number=1).billable_seconds > 0  # the closed attempt's bill


def test_a_clean_exit_waits_for_the_completed_report_before_recovering(make_job, fake, enqueued, django_capture_on_commit_callbacks):
    fake.update(sleep=0, exit=0)
    job = launched_job(make_job)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING  # the report may be in flight
    update_attempt(job, ended_at=timezone.now() - timedelta(seconds=polling.COMPLETION_GRACE_SECONDS + 1))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING


def test_a_clean_exit_with_its_completed_report_is_left_to_ingestion(make_job, fake, enqueued):
    fake.update(sleep=0, exit=0)
    job = launched_job(make_job)
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.COMPLETED, attempt=1)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    ended_long_ago(job)
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING
    assert enqueued["launch_job"] == []


def test_a_user_error_exit_without_a_report_fails_after_the_grace_period(make_job, fake, enqueued):
    fake.update(sleep=0, exit=2)
    job = launched_job(make_job)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    polling.poll_attempt(str(job.pk))
    ended_long_ago(job)
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "exit code 2" in job.error_message and "worker.log" in job.error_suggested_fix


@pytest.mark.parametrize("code", [1, 3])
def test_an_error_exit_without_a_report_is_an_interruption_after_the_grace_period(
        make_job, fake, enqueued, code, django_capture_on_commit_callbacks):
    fake.update(sleep=0, exit=code)
    job = launched_job(make_job)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING  # the error report may be in flight
    ended = timezone.now() - timedelta(seconds=polling.COMPLETION_GRACE_SECONDS + 1)
    update_attempt(job, ended_at=ended)
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING
    assert enqueued["launch_job"] == [str(job.pk)]


def test_a_stale_heartbeat_stops_the_hung_worker_and_recovers(make_job, fake, enqueued, settings, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    # Silent past the hard limit: a running worker is only taken for hung then (see the
    # liveness tests below for the shorter silences that are warnings).
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_HARD_LIMIT_SECONDS + 5)
    update_job(job, attempt_started_at=stale - timedelta(minutes=5), last_heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING
    assert "no heartbeat" in job.events.filter(payload__to="recovering").get().payload["reason"]
    assert group_members(job.attempt_ref["pgid"]) == []


def test_a_young_attempt_without_heartbeats_is_not_stale(make_job, fake, enqueued):
    job = launched_job(make_job)
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING


# --- Liveness: silence alone does not interrupt a worker the executor reports running -------------


def silence_warnings(job) -> list[dict]:
    return list(job.events.filter(event_type=JobEvent.Type.ANOMALY, payload__kind="heartbeat_stale")
                .order_by("id").values_list("payload", flat=True))


@pytest.fixture
def liveness(settings):
    """The celery integration test's 5 s heartbeats (stale after 15 s) and the default graces."""
    settings.HEARTBEAT_INTERVAL_SECONDS, settings.HEARTBEAT_STALE_FACTOR = 5, 3
    settings.WORKER_STARTUP_GRACE_SECONDS, settings.HEARTBEAT_HARD_LIMIT_SECONDS = 600, 1800
    return settings


def test_a_worker_still_starting_30_s_after_launch_is_not_interrupted(make_job, fake, enqueued, liveness,
                                                                      django_capture_on_commit_callbacks):
    """The rule that fired under load: 15 s without a first heartbeat (imports, model load) was
    taken for a hang, and the live worker was stopped and relaunched as attempt 2."""
    job = launched_job(make_job)
    update_job(job, attempt_started_at=timezone.now() - timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempt, job.checkpoint_recovery_count) == (Status.PROVISIONING, 1, 0)
    assert enqueued["launch_job"] == []
    assert group_members(job.attempt_ref["pgid"]) != []  # not stopped
    assert silence_warnings(job) == []  # within the start-up grace: not even late


def test_a_worker_silent_past_the_startup_grace_is_warned_about_once_and_left_running(
        make_job, fake, enqueued, liveness, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    update_job(job, attempt_started_at=timezone.now() - timedelta(seconds=660))
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING and enqueued["launch_job"] == []
    assert group_members(job.attempt_ref["pgid"]) != []
    [warning] = silence_warnings(job)
    assert warning["first_event_received"] is False and warning["executor_state"] == "running"
    assert "WORKER_STARTUP_GRACE_SECONDS" in warning["suggested_action"]


def test_a_stale_heartbeat_of_a_running_worker_is_a_warning_once_per_silent_spell(
        make_job, fake, enqueued, liveness, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    now = timezone.now()
    update_job(job, status=Status.TRAINING, attempt_started_at=now - timedelta(minutes=10),
                                                 last_heartbeat_at=now - timedelta(seconds=20))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Status.TRAINING, 1) and enqueued["launch_job"] == []
    assert group_members(job.attempt_ref["pgid"]) != []
    assert [w["first_event_received"] for w in silence_warnings(job)] == [True]

    # It reports again, then falls silent again: a new spell, a new warning.
    TrainingJob.objects.filter(pk=job.pk).update(last_heartbeat_at=timezone.now())
    polling.poll_attempt(str(job.pk))
    assert len(silence_warnings(job)) == 1
    TrainingJob.objects.filter(pk=job.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=25))
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.TRAINING and len(silence_warnings(job)) == 2


@pytest.mark.parametrize("silence", ["starting", "stale"])
@pytest.mark.parametrize("kill", ["worker", "group"])
def test_a_silent_worker_the_executor_sees_ended_is_interrupted_at_once(
        make_job, fake, enqueued, liveness, django_capture_on_commit_callbacks, silence, kill):
    """The second look: the executor's answer, not the silence, decides. A killed worker (exited
    with -9) or a vanished one (the whole group killed: gone) is recovered on this poll."""
    job = launched_job(make_job)
    now = timezone.now()
    if silence == "starting":
        update_job(job, attempt_started_at=now - timedelta(seconds=30))
    else:
        update_job(job, status=Status.TRAINING, attempt_started_at=now - timedelta(minutes=10),
                                                     last_heartbeat_at=now - timedelta(seconds=20))
    pgid = job.attempt_ref["pgid"]
    if kill == "group":
        os.killpg(pgid, signal.SIGKILL)
    else:
        trace = wait_for(lambda: _read(job, "fake.trace"))
        os.kill(int(trace.split()[1]), signal.SIGKILL)
        wait_for(lambda: _read(job, "worker.exit"))
    wait_for(lambda: not group_members(pgid))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING and enqueued["launch_job"] == [str(job.pk)]
    reason = job.events.filter(payload__to="recovering").get().payload["reason"]
    assert reason.startswith("worker gone" if kill == "group" else "worker killed"), reason


def test_a_worker_that_never_reports_is_stopped_after_the_startup_grace_and_the_hard_limit(
        make_job, fake, enqueued, liveness, django_capture_on_commit_callbacks):
    job = launched_job(make_job)
    launched = timezone.now() - timedelta(seconds=600 + 1800 + 5)
    update_job(job, attempt_started_at=launched)
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.status == Status.RECOVERING and enqueued["launch_job"] == [str(job.pk)]
    reason = job.events.filter(payload__to="recovering").get().payload["reason"]
    assert "no heartbeat" in reason and "since its launch" in reason
    assert group_members(job.attempt_ref["pgid"]) == []


def _read(job, name: str) -> str:
    path = work_dir(job.pk, job.attempt) / name
    return path.read_text().strip() if path.exists() else ""


# --- Recovery ---------------------------------------------------------------------------------


def test_interruption_counts_the_training_lost_since_the_last_checkpoint(make_job, enqueued, django_capture_on_commit_callbacks):
    job = make_job(status=Status.TRAINING, attempt=1, attempt_started_at=timezone.now() - timedelta(hours=1))
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.CHECKPOINT_SAVED, attempt=1,
                            received_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.handle_interruption(job.pk, 1, "spot preempted")
    job.refresh_from_db()
    assert job.status == Status.RECOVERING
    assert 600 <= job.lost_seconds < 660
    assert enqueued["launch_job"] == [str(job.pk)]


def test_interruption_of_a_superseded_attempt_is_ignored(make_job, enqueued):
    job = make_job(status=Status.TRAINING, attempt=3, attempt_started_at=timezone.now())
    assert not recovery.handle_interruption(job.pk, 2, "late report")
    job.refresh_from_db()
    assert job.status == Status.TRAINING and job.checkpoint_recovery_count == 0


def test_passing_the_recovery_limit_fails_the_job_with_an_explanation(make_job, enqueued, settings, django_capture_on_commit_callbacks):
    settings.MAX_RECOVERIES = 2
    job = make_job(status=Status.TRAINING, attempt=3, checkpoint_recovery_count=2, attempt_started_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.handle_interruption(job.pk, 3, "spot preempted")
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.checkpoint_recovery_count == 3
    assert job.error_type == "recovery_limit"
    assert job.error_message.startswith("Interrupted 3 times; the recovery limit is 2.")
    assert job.error_suggested_fix
    assert enqueued["launch_job"] == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_exactly_one_of_two_racing_interruptions_relaunches(make_job, enqueued, postgres_required):
    job = make_job(status=Status.TRAINING, attempt=1, attempt_started_at=timezone.now())
    barrier = threading.Barrier(2)
    results = []

    def report():
        try:
            barrier.wait()
            results.append(recovery.handle_interruption(job.pk, 1, "racing"))
        finally:
            connection.close()

    threads = [threading.Thread(target=report) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    job.refresh_from_db()
    assert sorted(results) == [False, True]
    assert job.checkpoint_recovery_count == 1
    assert enqueued["launch_job"] == [str(job.pk)]
    assert job.events.filter(payload__to="recovering").count() == 1


# --- Stop and fan-out -------------------------------------------------------------------------


def test_stop_sends_sigterm_and_closes_the_bill(make_job, fake):
    fake.update(on_term=4)
    job = launched_job(make_job)
    update_job(job, status=Status.CANCELLED, completed_at=timezone.now(),
                                                 attempt_started_at=timezone.now() - timedelta(hours=1))
    # The fake worker writes its trace once its SIGTERM handler is installed.
    wait_for(lambda: (work_dir(job.pk, 1) / "fake.trace").exists())
    stopping.stop_attempt(str(job.pk))  # returns once SIGTERM is sent, not when the worker exits
    job.refresh_from_db()
    assert job.current_attempt.billing_closed is True
    assert LocalExecutor().wait_stopped(job, timeout=15)
    assert group_members(job.attempt_ref["pgid"]) == []
    assert job.actual_cost == Decimal("2.49")
    assert LocalExecutor().poll(job).exit_code == 4


def test_poll_active_jobs_polls_active_jobs_and_finished_ones_with_an_open_bill(make_job, enqueued):
    active = make_job(status=Status.TRAINING, attempt=1)
    launched = {"pid": 1}
    open_bill = make_job(status=Status.COMPLETED, attempt=1, completed_at=timezone.now(), attempt_ref=launched)
    make_job(status=Status.COMPLETED, attempt=1, completed_at=timezone.now(), attempt_ref=launched,
             billing_closed=True)
    make_job(status=Status.PENDING)
    assert polling.enqueue_polls() == 2
    assert sorted(enqueued["poll_job"]) == sorted([str(active.pk), str(open_bill.pk)])


def test_polling_a_finished_job_closes_its_bill(make_job):
    started = timezone.now() - timedelta(hours=1)
    job = make_job(status=Status.COMPLETED, attempt=1, attempt_started_at=started, completed_at=started + timedelta(minutes=30),
                   hourly_rate=Decimal("2"), attempt_ref={"pid": 1})
    polling.poll_attempt(str(job.pk))
    job.refresh_from_db()
    assert job.billable_seconds == 1800
    assert job.actual_cost == Decimal("1.00")
    assert job.current_attempt.billing_closed is True


def test_an_exited_pod_with_no_exit_code_defers_to_the_workers_final_report(make_job):
    # RunPod reports EXITED without an exit code: the worker's own report decides.
    from training.executors import PodState

    job = make_job()
    TrainingJob.objects.filter(pk=job.pk).update(attempt=1, status=Status.TRAINING)
    job.refresh_from_db()
    now = timezone.now()
    exited = PodState("exited", exit_code=None, detail="EXITED")
    assert polling.interruption_reason(job, exited, now=now, ended_at=now) == ""  # in flight
    late = now + timedelta(seconds=polling.COMPLETION_GRACE_SECONDS + 1)
    assert "without a final report" in polling.interruption_reason(job, exited, now=late, ended_at=now)
    JobEvent.objects.create(job=job, event_type=JobEvent.Type.COMPLETED, attempt=1)
    assert polling.interruption_reason(job, exited, now=late, ended_at=now) == ""


# --- Error report -------------------------------------------------------------------------------


def test_the_error_report_holds_config_error_events_and_the_workers_last_log_lines(make_job, fake, client):
    from rest_framework.test import APIClient

    fake.update({"sleep": 0, "exit": 3, "print": [f"line {i}" for i in range(300)] + [f"token={'s3cret'}"]})
    job = launched_job(make_job)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")  # its output is complete
    launching.fail_job(job.pk, job.attempt, "out_of_memory", "CUDA out of memory at batch size 16.",
                       "Halve the batch size and double gradient accumulation.",
                       details={"suggested_config": {"per_device_batch_size": 8, "gradient_accumulation_steps": 4}})
    api = APIClient()
    api.force_authenticate(job.created_by)
    response = api.get(f"/api/training/jobs/{job.pk}/error-report")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="error-report-{job.pk}.json"'
    report = response.json()
    assert report["job"]["id"] == str(job.pk) and report["job"]["status"] == "failed"
    assert report["configuration"] == job.configuration
    assert report["error"] == {
        "type": "out_of_memory", "message": "CUDA out of memory at batch size 16.",
        "suggested_fix": "Halve the batch size and double gradient accumulation.",
        "suggested_config": {"per_device_batch_size": 8, "gradient_accumulation_steps": 4},
        "details": {"suggested_config": {"per_device_batch_size": 8, "gradient_accumulation_steps": 4}},
    }
    types = [e["type"] for e in report["events"]]
    assert "launched" in types and types[-1] == "status_changed"
    assert len(report["log_tail"]) == 200 and report["log_tail"][-2] == "line 299"
    assert report["log_tail"][-1] == "token=[secret]"  # the job's secret never leaves in a report
    assert "s3cret" not in response.content.decode()


def test_the_error_report_of_a_pod_job_says_where_the_trace_is(make_job):
    from training.services.support import build_error_report

    job = make_job(executor="runpod", status=Status.FAILED)
    report = build_error_report(job)
    assert report["log_tail"] is None and "trace tail" in report["log_note"]
