"""Never two live attempts, with real processes racing:

- a Celery worker killed (SIGKILL) in the middle of a launch, after RunPod rented the pod but
  before the launch was recorded: the task is redelivered to another worker, which finds that
  pod instead of renting a second one;
- two pollers (as two beat schedulers' poll tasks would) polling the same job at once for 10
  cycles while its spot pods are preempted: one relaunch per interruption.

Real processes, real PostgreSQL (they must see the test database) and Redis, the real `runpod`
SDK against the stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from training.lifecycle import Status
from training.models import JobEvent, TrainingJob

from .conftest import runpod_env
from .test_celery_integration import (  # noqa: F401 (broker: a fixture)
    REPO_ROOT,
    broker,
    database_url,
    start_celery_worker,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def api(runpod_api):
    return runpod_api


@pytest.fixture
def pod_job(make_job):
    return make_job(name="race", executor="runpod", gpu_pricing_tier="spot")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_celery_worker_killed_mid_launch_leaves_exactly_one_pod(api, pod_job, broker, postgres_required,  # noqa: F811
                                                                   settings, tmp_path):
    from training.services import jobs

    settings.CELERY_TASK_ALWAYS_EAGER = False
    visibility = 60  # the shortest CELERY_VISIBILITY_TIMEOUT the settings accept
    env = {**os.environ, **runpod_env(api), "DATABASE_URL": database_url(), "REDIS_URL": broker,
           "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_VISIBILITY_TIMEOUT": str(visibility),
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "LOG_LEVEL": "INFO"}
    log = tmp_path / "celery.log"
    api.deploy_answer_delay = 40  # RunPod rents the pod, then the launcher dies before the answer
    first = start_celery_worker(env, log)
    TrainingJob.objects.filter(pk=pod_job.pk).update(status=Status.PENDING)
    pod_job.refresh_from_db()
    try:
        jobs.start_job(pod_job, user=pod_job.created_by)  # enqueues launch_job on commit
        wait_for(lambda: api.pods, 60, "the first worker's deploy request")
        stop(first)  # SIGKILL: the task is neither acknowledged nor finished
    finally:
        stop(first)
    rented = list(api.pods)
    pod_job.refresh_from_db()
    assert pod_job.status == Status.PROVISIONING and not pod_job.attempt_ref.get("pod_id")

    api.deploy_answer_delay = 0
    second = start_celery_worker(env, log)
    try:
        # Redis hands the unacknowledged task out again once the visibility timeout has passed.
        wait_for(lambda: TrainingJob.objects.get(pk=pod_job.pk).attempt_ref.get("pod_id"), visibility + 60,
                 "the redelivered launch to record a pod")
    finally:
        stop(second)
    pod_job.refresh_from_db()
    assert list(api.pods) == rented, "a second pod was rented"
    assert pod_job.attempt_ref["pod_id"] == rented[0] and pod_job.attempt == 1
    assert len(api.calls("podRentInterruptable")) == 1
    assert pod_job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 1


POLLER = """
import os, sys, time
import django
django.setup()
from training.services import polling
job_id, start, period, min_cycles, stop_file = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cycle = 0
# On one clock with the other poller; until the test says stop (and at least min_cycles), at
# most 600 cycles so a stuck test cannot leave it running.
while cycle < 600 and not (cycle >= min_cycles and os.path.exists(stop_file)):
    time.sleep(max(0.0, start + cycle * period - time.time()))
    polling.poll_attempt(job_id)
    print("cycle", cycle, flush=True)
    cycle += 1
"""


def test_two_pollers_for_ten_cycles_relaunch_once_per_interruption(api, pod_job, postgres_required, settings,
                                                                    tmp_path):
    from training.services import launching

    launching.launch_attempt(pod_job.pk)
    env = {**os.environ, **runpod_env(api), "DATABASE_URL": database_url(), "REDIS_URL": "",
           "CELERY_TASK_ALWAYS_EAGER": "true",  # the winner's relaunch runs inside its poll
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"}
    period, cycles = 0.8, 10
    stop_file = tmp_path / "stop"
    start = time.time() + 8  # both processes loaded and waiting on the same clock
    pollers = [subprocess.Popen([sys.executable, "-c", POLLER, str(pod_job.pk), str(start), str(period),
                                 str(cycles), str(stop_file)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    preempted = []
    try:
        # Take the live pod away three times, each once the pollers have relaunched the last one:
        # waiting for that (rather than for a point on the clock) keeps the test independent of
        # how fast a loaded machine polls and relaunches. The first once both have polled twice.
        time.sleep(max(0.0, start + 1.5 * period - time.time()))
        for _ in range(3):
            preempted.append(_wait_for_new_live_pod(api, pod_job, preempted))
            api.preempt(preempted[-1])
        _wait_for_new_live_pod(api, pod_job, preempted)
        stop_file.touch()
        outputs = [p.communicate(timeout=120)[0] for p in pollers]
    finally:
        for p in pollers:
            if p.poll() is None:
                p.kill()
    for p, output in zip(pollers, outputs, strict=True):
        assert p.returncode == 0 and output.count("cycle ") >= cycles, output[-3000:]
    pod_job.refresh_from_db()
    assert len(set(preempted)) == 3, preempted
    assert pod_job.checkpoint_recovery_count == 3
    assert pod_job.attempt == 4
    assert len(api.calls("podRentInterruptable")) == 4  # the first launch and one per interruption
    live = [pod for pod in api.pods.values()]
    assert len(live) == 1 and live[0].id == pod_job.attempt_ref["pod_id"]
    assert pod_job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 4
    assert pod_job.events.filter(payload__to="recovering").count() == 3


def _wait_for_new_live_pod(api, job, preempted: list[str], timeout: float = 90.0) -> str:
    """The job's pod once it is live and not one already taken away (the pollers relaunched)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod_id = TrainingJob.objects.get(pk=job.pk).attempt_ref.get("pod_id")
        if pod_id and pod_id not in preempted and pod_id in api.pods:
            return pod_id
        time.sleep(0.1)
    raise AssertionError(f"no new live pod within {timeout} s; taken away so far: {preempted}")
