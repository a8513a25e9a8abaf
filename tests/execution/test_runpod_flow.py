"""Jobs on RunPod, end to end through the control plane's services, the real `runpod` SDK and
the stand-in (tests/runpod_standin.py); the worker's reports are signed webhooks (FakeWorker).

Spot launch, on-demand launch, preemption -> recovery -> completion, no capacity -> classified
error -> automatic retries with backoff -> launch or failure, the spot -> on-demand fallback,
and cancel -> terminate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from tests.runpod_standin import RunPodStandIn
from tests.webhooks.conftest import FakeWorker
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob
from training.services import jobs, launching, polling, stopping

from .conftest import update_attempt

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(runpod_api):
    return runpod_api


@pytest.fixture
def scheduled(monkeypatch) -> list[tuple[str, int]]:
    """launch_job.apply_async(countdown=...) calls (automatic launch retries), recorded."""
    from training import tasks

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(tasks.launch_job, "apply_async", lambda args, countdown=None, **kw: calls.append(
        (args[0], countdown)))
    return calls


@pytest.fixture
def pod_job(make_job):
    def make(tier: str = "spot") -> TrainingJob:
        return make_job(executor="runpod", gpu_pricing_tier=tier, status=Status.QUEUED)
    return make


def pod_of(api: RunPodStandIn, job: TrainingJob):
    job.refresh_from_db()
    return api.pods[job.attempt_ref["pod_id"]]


def report(client, job: TrainingJob, *events: tuple[str, dict]) -> FakeWorker:
    worker = FakeWorker(client, job, attempt=job.attempt, secret=job.secret)
    for type_, data in events:
        assert worker.send(type_, data).status == 200, (type_, data)
    return worker


def test_a_spot_job_is_preempted_recovers_on_a_new_pod_and_completes(api, pod_job, client, enqueued, settings,
                                                                      django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    job = pod_job("spot")
    launching.launch_attempt(job.pk)
    first = pod_of(api, job)
    assert (job.status, job.attempt, first.interruptible) == (Status.PROVISIONING, 1, True)
    old = report(client, job, ("started", {"device": "cuda"}), ("stage_changed", {"stage": "training"}),
                 ("checkpoint_saved", {"step": 100, "files": 3}))

    api.preempt(first.id)  # the spot pod is reclaimed: it disappears without a word
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert (job.status, job.checkpoint_recovery_count) == (Status.RECOVERING, 1)
    assert enqueued["launch_job"] == [str(job.pk)]

    launching.launch_attempt(job.pk)  # the enqueued launch task
    second = pod_of(api, job)
    assert (job.attempt, second.interruptible) == (2, True) and second.id != first.id
    assert '"resume_from":"latest"' in second.env["GPU_WORKER_CONFIG"].replace(" ", "")
    assert old.send("metrics", {"points": []}).status == 409  # the first attempt is superseded

    report(client, job, ("started", {"device": "cuda"}), ("resumed", {"resumed_from_step": 100}),
           ("stage_changed", {"stage": "training"}),
           ("completed", {"final_train_loss": 0.9, "steps": 200, "summary": {}}))
    api.exit(second.id)
    polling.poll_attempt(job.pk)  # closes the bill
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.resumed_from_step == 100
    assert job.recovery_summary().startswith("Interrupted 1×, resumed from step 100")
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 2


def test_an_on_demand_job_launches_through_create_pod_and_cancel_terminates_it(api, pod_job, enqueued,
                                                                                 django_capture_on_commit_callbacks):
    job = pod_job("on_demand")
    launching.launch_attempt(job.pk)
    pod = pod_of(api, job)
    assert pod.interruptible is False and api.calls("podFindAndDeployOnDemand")
    with django_capture_on_commit_callbacks(execute=True):
        jobs.cancel_job(job, user=job.created_by)
    assert enqueued["stop_job_execution"] == [str(job.pk)]
    stopping.stop_attempt(job.pk)  # the enqueued stop task
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and pod.id not in api.pods
    assert job.current_attempt.billing_closed and job.actual_cost is not None


def test_no_capacity_is_retried_automatically_with_backoff_and_then_launches(api, pod_job, scheduled, settings,
                                                                              django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.LAUNCH_RETRY_LIMIT, settings.LAUNCH_RETRY_BASE_SECONDS, settings.LAUNCH_RETRY_MAX_SECONDS = 3, 30, 600
    job = pod_job("spot")
    api.no_capacity = True
    for expected_delay in (30, 60):
        with django_capture_on_commit_callbacks(execute=True):
            launching.launch_attempt(job.pk)
        job.refresh_from_db()
        assert job.status == Status.PROVISIONING and api.pods == {}
        assert scheduled[-1] == (str(job.pk), expected_delay)
    retries = list(job.events.filter(event_type=JobEvent.Type.LAUNCH_RETRY).order_by("id").values_list(
        "payload", flat=True))
    assert [(r["retry"], r["limit"], r["delay_seconds"], r["error_type"]) for r in retries] == [
        (1, 3, 30, "gpu_provisioning"), (2, 3, 60, "gpu_provisioning")]
    assert "capacity" in retries[0]["message"]

    api.no_capacity = False  # capacity is back when the delayed task runs
    launching.launch_attempt(job.pk)
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING and job.attempt == 1 and len(api.pods) == 1
    assert job.events.filter(event_type=JobEvent.Type.LAUNCHED).count() == 1


def test_no_capacity_past_the_retry_limit_fails_with_the_classified_error_and_a_one_click_fix(
        api, pod_job, scheduled, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.LAUNCH_RETRY_LIMIT = 2
    job = pod_job("spot")
    api.no_capacity = True
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            launching.launch_attempt(job.pk)
    job.refresh_from_db()
    assert job.status == Status.FAILED and len(scheduled) == 2
    assert job.error_type == "gpu_provisioning"
    assert job.error_message == ("No H100 PCIe 80GB capacity available right now. "
                                 "(still failing after 2 automatic retries)")
    assert job.error_details["suggested_config"] == {"gpu_pricing_tier": "on_demand"}

    api.no_capacity = False
    retry = jobs.retry_job(job, user=job.created_by)  # the admin action / POST .../retry
    assert retry.gpu_pricing_tier == "on_demand" and retry.parent_id == job.pk


def test_with_in_process_tasks_the_poll_launches_the_retry_once_its_wait_is_over(api, pod_job, settings,
                                                                                 enqueued):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default: no countdown tasks
    job = pod_job("spot")
    api.no_capacity = True
    launching.launch_attempt(job.pk)
    polling.poll_attempt(job.pk)
    assert enqueued["launch_job"] == []  # still waiting out the backoff
    job.refresh_from_db()
    update_attempt(job, retry_at=timezone.now() - timedelta(seconds=1))
    polling.poll_attempt(job.pk)
    assert enqueued["launch_job"] == [str(job.pk)]


def test_after_n_spot_interruptions_the_next_attempt_runs_on_demand(api, pod_job, settings, enqueued,
                                                                    django_capture_on_commit_callbacks):
    settings.SPOT_FALLBACK_AFTER_INTERRUPTIONS = 2
    job = pod_job("spot")
    tiers = []
    for _ in range(3):
        launching.launch_attempt(job.pk)
        pod = pod_of(api, job)
        tiers.append(pod.interruptible)
        if len(tiers) < 3:
            api.preempt(pod.id)
            with django_capture_on_commit_callbacks(execute=True):
                polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert tiers == [True, True, False]
    assert job.gpu_pricing_tier == "on_demand" and job.attempt == 3
    fallback = job.events.get(event_type=JobEvent.Type.FALLBACK)
    assert fallback.payload["interruptions"] == 2 and "on-demand" in fallback.payload["message"]


@pytest.mark.parametrize("phase", ["pulling the image", "created", "loading the model"])
def test_a_pod_still_starting_with_no_heartbeat_is_not_relaunched(api, pod_job, enqueued, settings, phase,
                                                                  django_capture_on_commit_callbacks):
    """Five minutes after launch, nothing from the worker yet (default 30 s heartbeats: stale
    after 90 s): a pod pulling its image or loading a 70B model is starting, not interrupted.
    Relaunching it would pay for a second pod and start over."""
    settings.HEARTBEAT_INTERVAL_SECONDS, settings.HEARTBEAT_STALE_FACTOR = 30, 3
    settings.WORKER_STARTUP_GRACE_SECONDS, settings.HEARTBEAT_HARD_LIMIT_SECONDS = 600, 1800
    api.slow_start_seconds = 0 if phase == "loading the model" else 3600
    job = pod_job("spot")
    launching.launch_attempt(job.pk)
    pod = pod_of(api, job)
    if phase == "created":
        pod.desired_status = "CREATED"
    TrainingJob.objects.filter(pk=job.pk).update(attempt_started_at=timezone.now() - timedelta(minutes=5))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempt, job.checkpoint_recovery_count) == (Status.PROVISIONING, 1, 0)
    assert enqueued["launch_job"] == [] and api.calls("podTerminate") == []
    assert list(api.pods) == [pod.id]
    expected = "running" if phase == "loading the model" else "starting"
    assert job.events.filter(event_type=JobEvent.Type.POD_STATE).get().payload["state"] == expected
    assert not job.events.filter(event_type=JobEvent.Type.ANOMALY).exists()  # within the grace


def test_a_pod_silent_past_the_startup_grace_and_the_hard_limit_is_terminated_and_relaunched(
        api, pod_job, enqueued, settings, django_capture_on_commit_callbacks):
    settings.WORKER_STARTUP_GRACE_SECONDS, settings.HEARTBEAT_HARD_LIMIT_SECONDS = 600, 1800
    api.slow_start_seconds = 24 * 3600  # stuck "starting" for good
    job = pod_job("spot")
    launching.launch_attempt(job.pk)
    pod = pod_of(api, job)
    TrainingJob.objects.filter(pk=job.pk).update(attempt_started_at=timezone.now() - timedelta(seconds=700))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert job.status == Status.PROVISIONING and pod.id in api.pods  # late: a warning only
    [warning] = job.events.filter(event_type=JobEvent.Type.ANOMALY).values_list("payload", flat=True)
    assert (warning["kind"], warning["executor_state"]) == ("heartbeat_stale", "starting")

    TrainingJob.objects.filter(pk=job.pk).update(attempt_started_at=timezone.now() - timedelta(seconds=600 + 1800 + 5))
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert job.status == Status.RECOVERING and enqueued["launch_job"] == [str(job.pk)]
    assert pod.id not in api.pods  # stopped, so it does not run beside its successor


def test_a_pod_reclaimed_while_starting_is_relaunched_at_once(api, pod_job, enqueued,
                                                             django_capture_on_commit_callbacks):
    api.slow_start_seconds = 3600
    job = pod_job("spot")
    launching.launch_attempt(job.pk)
    api.preempt(pod_of(api, job).id)
    with django_capture_on_commit_callbacks(execute=True):
        polling.poll_attempt(job.pk)
    job.refresh_from_db()
    assert job.status == Status.RECOVERING and enqueued["launch_job"] == [str(job.pk)]


@given(st.integers(0, 100), st.integers(1, 120), st.integers(1, 3600))
def test_launch_backoff_doubles_from_the_base_up_to_the_cap(retry, base, cap):
    delay = launching.launch_backoff_seconds(retry, base, cap)
    assert min(base, cap) <= delay <= cap
    assert delay == min(cap, base * 2 ** retry)
    assert launching.launch_backoff_seconds(retry + 1, base, cap) >= delay
