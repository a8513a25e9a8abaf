"""LocalExecutor against a fake worker: idempotent launch, poll, cancel, and poll from elsewhere."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from training.executors.local import LocalExecutor, group_members, process_status, work_dir
from training.models import JobAttempt

pytestmark = pytest.mark.django_db


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def launched(job, **fake):
    result = LocalExecutor().launch(job, {"job_id": str(job.pk), "fake": fake})
    set_ref(job, result.ref)
    return result.ref


def set_ref(job, ref: dict) -> None:
    """What the services do once a launch returns: the ref becomes the current attempt's."""
    job.current_attempt = JobAttempt(job=job, number=job.attempt, ref=ref)


def trace(job) -> list[str]:
    path = work_dir(job.pk, job.attempt) / "fake.trace"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def job(make_job, fake_worker):
    job = make_job(status="provisioning", attempt=1)
    yield job
    pgid = job.attempt_ref.get("pgid")
    if pgid and group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


def test_it_launches_one_worker_when_launched_twice(job):
    first = launched(job, sleep=30)
    second = LocalExecutor().launch(job, {"job_id": str(job.pk), "fake": {"sleep": 30}}).ref
    assert second["pid"] == first["pid"]
    wait_for(lambda: trace(job))
    time.sleep(0.3)
    assert len([line for line in trace(job) if line.startswith("started")]) == 1


def test_it_launches_one_worker_when_two_launches_race(job):
    refs = []
    barrier = threading.Barrier(2)

    def launch():
        barrier.wait()
        refs.append(LocalExecutor().launch(job, {"job_id": str(job.pk), "fake": {"sleep": 30}}).ref)

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    set_ref(job, refs[0])
    assert refs[0]["pid"] == refs[1]["pid"]


def test_it_takes_over_a_claim_left_empty_by_a_dead_launcher(job):
    directory = work_dir(job.pk, job.attempt)
    directory.mkdir(parents=True)
    (directory / "worker.pid").touch()
    old = time.time() - 60
    os.utime(directory / "worker.pid", (old, old))
    ref = launched(job, sleep=30)
    assert LocalExecutor().poll(job).state == "running"
    assert json.loads((directory / "worker.pid").read_text())["pid"] == ref["pid"]


def test_it_records_where_the_worker_runs_and_keeps_the_config_private(job):
    ref = launched(job, sleep=30)
    assert {"host", "pid", "pgid", "log", "config", "started"} <= set(ref)
    assert stat.S_IMODE(Path(ref["config"]).stat().st_mode) == 0o600
    assert json.loads(Path(ref["config"]).read_text())["job_id"] == str(job.pk)


def test_it_polls_running_then_exited_with_the_exit_code(job):
    launched(job, sleep=0.5, exit=3)
    assert LocalExecutor().poll(job).state == "running"
    state = wait_for(lambda: (s := LocalExecutor().poll(job)).state == "exited" and s)
    assert state.exit_code == 3


def test_it_polls_a_clean_exit_as_code_zero(job):
    launched(job, sleep=0, exit=0)
    state = wait_for(lambda: (s := LocalExecutor().poll(job)).state == "exited" and s)
    assert state.exit_code == 0


def test_it_polls_gone_when_the_worker_is_killed_outright(job):
    ref = launched(job, sleep=30)
    wait_for(lambda: trace(job))
    os.killpg(ref["pgid"], signal.SIGKILL)
    state = wait_for(lambda: (s := LocalExecutor().poll(job)).state != "running" and s)
    assert state.state == "gone"
    assert "SIGKILL" in state.detail


def test_it_reports_unknown_for_a_worker_on_another_host(job):
    launched(job, sleep=30)
    set_ref(job, {**job.attempt_ref, "host": "some-other-machine"})
    state = LocalExecutor().poll(job)
    assert state.state == "unknown"
    assert "some-other-machine" in state.detail
    set_ref(job, {**job.attempt_ref, "host": os.uname().nodename})


def test_cancel_stops_the_worker_cleanly_with_sigterm(job):
    ref = launched(job, sleep=60, spawn_child=True, on_term=4)
    wait_for(lambda: trace(job))
    wait_for(lambda: len(group_members(ref["pgid"])) >= 3)  # supervisor, worker, grandchild
    LocalExecutor().cancel(job)
    assert LocalExecutor().wait_stopped(job, timeout=15)
    assert "term" in trace(job)
    assert group_members(ref["pgid"]) == []
    state = LocalExecutor().poll(job)
    assert (state.state, state.exit_code) == ("exited", 4)


def test_cancel_returns_before_a_slow_worker_has_stopped(job, settings):
    # A worker mid-step may take a while to stop: cancel sends SIGTERM and returns; the 30 s
    # grace runs in the supervisor, not in the caller (an API request, the train command).
    settings.LOCAL_WORKER_STOP_GRACE_SECONDS = 30
    ref = launched(job, sleep=60, on_term=None)
    wait_for(lambda: trace(job))
    started = time.monotonic()
    LocalExecutor().cancel(job)
    took = time.monotonic() - started
    # Signalling a group is a few syscalls; 5 s is a loaded 2-core CI machine's worst case with
    # room to spare, and far below the 30 s the old cancel blocked for.
    assert took < 5, f"cancel blocked for {took:.1f} s"
    wait_for(lambda: "term" in trace(job))
    assert group_members(ref["pgid"]), "the worker ignores SIGTERM, so it is still there: cancel did not wait"


def test_cancel_kills_a_worker_that_ignores_sigterm(job, settings):
    settings.LOCAL_WORKER_STOP_GRACE_SECONDS = 0.5
    ref = launched(job, sleep=60, spawn_child=True, on_term=None)
    wait_for(lambda: trace(job))
    wait_for(lambda: len(group_members(ref["pgid"])) >= 3)
    LocalExecutor().cancel(job)
    # The supervisor sends SIGKILL after the grace period, kills what the worker left behind,
    # records the worker's -9, and the launcher's reaper collects the supervisor: no <defunct>.
    assert LocalExecutor().wait_stopped(job, timeout=15)
    assert "term" in trace(job)
    assert group_members(ref["pgid"]) == []
    state = LocalExecutor().poll(job)
    assert (state.state, state.exit_code) == ("exited", -signal.SIGKILL)
    wait_for(lambda: process_status(ref["pid"]) == "absent")  # reaped, not a zombie


def test_cancel_is_a_no_op_when_the_worker_is_already_gone(job):
    launched(job, sleep=0, exit=0)
    wait_for(lambda: LocalExecutor().poll(job).state == "exited")
    LocalExecutor().cancel(job)


POLL_SNIPPET = """
import json, sys, types
import django
django.setup()
from training.executors.local import LocalExecutor
job = types.SimpleNamespace(attempt_ref=json.loads(sys.argv[1]))
state = LocalExecutor().poll(job)
print(json.dumps({"state": state.state, "exit_code": state.exit_code}))
"""


def poll_elsewhere(ref: dict) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", POLL_SNIPPET, json.dumps(ref)], env=env, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_another_process_on_the_host_can_poll_the_worker(job):
    ref = launched(job, sleep=60, on_term=2)
    wait_for(lambda: trace(job))
    assert poll_elsewhere(ref) == {"state": "running", "exit_code": None}
    LocalExecutor().cancel(job)
    assert LocalExecutor().wait_stopped(job, timeout=15)
    assert poll_elsewhere(ref) == {"state": "exited", "exit_code": 2}
