"""The RunPod executor, through the real `runpod` SDK pointed at tests/runpod_standin.py."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from decimal import Decimal

import pytest
import runpod
from hypothesis import given
from hypothesis import strategies as st

from tests.runpod_standin import RunPodStandIn, parse
from training.executors import ExecutorError, get_executor
from training.executors.runpod_executor import RunPodExecutor, pod_name, spot_mutation
from training.models import JobAttempt, TrainingJob

KEY = "rp-test-key"
H100 = "NVIDIA H100 PCIe"


@pytest.fixture
def api(settings, monkeypatch):
    with RunPodStandIn(api_key=KEY, network_volumes=[
        {"id": "vol-cache", "name": "model-cache", "size": 500, "dataCenterId": "EU-RO-1"},
    ]) as standin:
        settings.RUNPOD_API_KEY = KEY
        settings.RUNPOD_API_BASE_URL = standin.base_url
        settings.RUNPOD_WORKER_IMAGE = "ghcr.io/example/lora-gpu-worker:1.0"
        settings.RUNPOD_SPOT_BID_PER_GPU = None
        settings.RUNPOD_NETWORK_VOLUME_ID = ""
        # The executor writes both; these restore them after the test.
        monkeypatch.setenv("RUNPOD_API_BASE_URL", standin.base_url)
        monkeypatch.setattr(runpod, "api_key", None)
        yield standin


def make_job(tier: str = "spot", attempt: int = 1) -> TrainingJob:
    return TrainingJob(name="support-bot", gpu_type="H100_PCIE_80GB", gpu_pricing_tier=tier,
                       attempt=attempt, secret="per-job-secret-0123456789", executor="runpod")


def set_ref(job: TrainingJob, ref: dict) -> None:
    """What the services do once a launch returns: the ref becomes the current attempt's."""
    job.current_attempt = JobAttempt(job=job, number=job.attempt, ref=ref)


def worker_config(job: TrainingJob, **extra) -> dict:
    return {"job_id": str(job.pk), "attempt": job.attempt, "base_model": "meta-llama/Meta-Llama-3-70B",
            "dataset": "https://storage.example.com/d.jsonl?sig=a%2Fb&x=1", "webhook_secret": job.secret,
            "webhook_url": "https://lora.example.com/api/training/webhook", **extra}


def pod_env(api: RunPodStandIn, pod_id: str) -> dict[str, str]:
    return api.pods[pod_id].env


executor = RunPodExecutor()


def test_it_is_registered_as_runpod():
    assert isinstance(get_executor("runpod"), RunPodExecutor)


def test_spot_launch_rents_an_interruptible_pod_at_the_table_bid(api):
    job = make_job("spot")
    config = worker_config(job)

    result = executor.launch(job, config)

    assert [r.fields for r in api.requests] == [["myself"], ["podRentInterruptable"]]
    sent = api.calls("podRentInterruptable")[0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    args = sent.args["podRentInterruptable"]["input"]
    assert args["bidPerGpu"] == 2.49
    assert (args["gpuCount"], args["gpuTypeId"], args["cloudType"]) == (1, H100, "SECURE")
    assert args["name"] == pod_name(job) == f"lora-{job.pk}-a1"
    assert args["imageName"] == "ghcr.io/example/lora-gpu-worker:1.0"
    assert args["containerDiskInGb"] == 200
    pod = api.pods[result.ref["pod_id"]]
    assert pod.interruptible
    env = pod_env(api, pod.id)
    assert json.loads(env["GPU_WORKER_CONFIG"]) == config
    assert json.loads(env["GPU_WORKER_CONFIG"])["webhook_secret"] == "per-job-secret-0123456789"
    assert result.ref["pricing_tier"] == "spot"
    assert result.ref["bid_per_gpu"] == 2.49
    assert result.hourly_rate == Decimal("2.49")


def test_spot_bid_comes_from_settings_when_set(api, settings):
    settings.RUNPOD_SPOT_BID_PER_GPU = 3.1
    result = executor.launch(make_job("spot"), {"job_id": "x"})
    assert api.calls("podRentInterruptable")[0].args["podRentInterruptable"]["input"]["bidPerGpu"] == 3.1
    assert result.hourly_rate == Decimal("3.1")  # the pod's costPerHr: what RunPod bills


def test_on_demand_launch_goes_through_create_pod(api):
    job = make_job("on_demand")
    config = worker_config(job)

    result = executor.launch(job, config)

    # create_pod checks the GPU type exists before deploying.
    assert [r.fields for r in api.requests] == [["myself"], ["gpuTypes"], ["podFindAndDeployOnDemand"]]
    args = api.calls("podFindAndDeployOnDemand")[0].args["podFindAndDeployOnDemand"]["input"]
    assert (args["gpuCount"], args["gpuTypeId"], args["cloudType"]) == (1, H100, "SECURE")
    assert args["name"] == pod_name(job)
    pod = api.pods[result.ref["pod_id"]]
    assert not pod.interruptible
    assert json.loads(pod.env["GPU_WORKER_CONFIG"]) == config
    assert result.ref["pricing_tier"] == "on_demand"
    assert "bid_per_gpu" not in result.ref
    assert result.hourly_rate == Decimal("7.99")


@pytest.mark.parametrize("tier", ["spot", "on_demand"])
def test_relaunching_the_same_attempt_returns_the_same_pod(api, tier):
    job = make_job(tier)
    first = executor.launch(job, worker_config(job))
    again = executor.launch(job, worker_config(job))

    assert again.ref["pod_id"] == first.ref["pod_id"]
    assert again.ref["reused"] is True
    assert again.hourly_rate == first.hourly_rate
    assert len(api.pods) == 1

    job.attempt = 2
    next_attempt = executor.launch(job, worker_config(job))
    assert next_attempt.ref["pod_id"] != first.ref["pod_id"]
    assert len(api.pods) == 2


@pytest.mark.parametrize("tier", ["spot", "on_demand"])
def test_a_config_with_quotes_newlines_and_backslashes_arrives_byte_for_byte(api, tier):
    job = make_job(tier)
    awkward = 'say "hi"\n\ttab \\ backslash \\" escaped quote } { ] ) $var #hash é ü 😀 \u2028 \x01'
    config = worker_config(job, system_prompt=awkward, path="C:\\data\\new\\n")

    result = executor.launch(job, config)

    sent = pod_env(api, result.ref["pod_id"])["GPU_WORKER_CONFIG"]
    assert sent == json.dumps(config)
    assert json.loads(sent)["system_prompt"] == awkward


def test_poll_reports_starting_then_running_then_exited(api):
    api.slow_start_seconds = 60
    job = make_job("spot")
    set_ref(job, executor.launch(job, worker_config(job)).ref)

    starting = executor.poll(job)
    assert starting.state == "starting"
    assert starting.runtime_seconds is None
    assert "env" not in starting.raw  # the pod's env carries the job's secret

    api.advance(90)
    running = executor.poll(job)
    assert running.state == "running"
    assert 29 <= running.runtime_seconds <= 32
    assert isinstance(running.last_status_change, datetime)

    api.exit(job.attempt_ref["pod_id"])
    exited = executor.poll(job)
    assert exited.state == "exited"
    assert exited.exit_code is None  # RunPod does not report it; the worker's events do
    assert "Exited by user" in exited.detail
    assert exited.last_status_change.tzinfo is not None


def test_a_preempted_pod_is_gone(api):
    job = make_job("spot")
    set_ref(job, executor.launch(job, worker_config(job)).ref)
    api.preempt(job.attempt_ref["pod_id"])

    state = executor.poll(job)

    assert state.state == "gone"
    assert job.attempt_ref["pod_id"] in state.detail


def test_poll_without_a_recorded_pod_finds_it_by_name(api):
    job = make_job("spot")
    pod_id = executor.launch(job, worker_config(job)).ref["pod_id"]
    set_ref(job, {})
    assert executor.poll(job).raw["id"] == pod_id
    api.preempt(pod_id)
    assert executor.poll(job).state == "gone"


def test_cancel_terminates_the_pod_and_then_is_a_no_op(api):
    job = make_job("on_demand")
    set_ref(job, executor.launch(job, worker_config(job)).ref)

    executor.cancel(job)
    assert api.pods == {}
    assert api.calls("podTerminate")[0].args["podTerminate"]["input"] == {"podId": job.attempt_ref["pod_id"]}

    executor.cancel(job)  # already gone: RunPod answers "pod not found"
    assert len(api.calls("podTerminate")) == 2
    assert executor.poll(job).state == "gone"


def test_cancel_with_no_pod_at_all_does_nothing(api):
    executor.cancel(make_job("spot"))
    assert api.calls("podTerminate") == []


def test_no_spot_capacity_is_transient_and_suggests_on_demand(api):
    api.no_capacity = True
    with pytest.raises(ExecutorError) as raised:
        executor.launch(make_job("spot"), {"job_id": "x"})
    error = raised.value
    assert error.error_type == "gpu_provisioning"
    assert error.transient
    assert error.message == "No H100 PCIe 80GB capacity available right now."
    assert error.suggested_fix == ("Retry in a few minutes, or switch to on-demand "
                                   "(retry with gpu_pricing_tier=on_demand).")
    assert error.suggested_config == {"gpu_pricing_tier": "on_demand"}
    assert api.pods == {}


def test_no_on_demand_capacity_is_transient_without_a_suggested_tier(api):
    api.no_capacity = True
    with pytest.raises(ExecutorError) as raised:
        executor.launch(make_job("on_demand"), {"job_id": "x"})
    assert (raised.value.error_type, raised.value.transient) == ("gpu_provisioning", True)
    assert raised.value.suggested_config == {}


def test_a_wrong_key_is_runpod_auth(api, settings):
    settings.RUNPOD_API_KEY = "not-the-key"
    with pytest.raises(ExecutorError) as raised:
        executor.launch(make_job("spot"), {"job_id": "x"})
    assert raised.value.error_type == "runpod_auth"
    assert not raised.value.transient
    assert "RUNPOD_API_KEY" in raised.value.suggested_fix
    assert [r.status for r in api.requests] == [401]


def test_a_missing_key_is_a_configuration_error_before_any_request(api, settings):
    settings.RUNPOD_API_KEY = ""
    for call in (lambda job: executor.launch(job, {}), executor.poll, executor.cancel):
        with pytest.raises(ExecutorError) as raised:
            call(make_job("spot"))
        assert raised.value.error_type == "configuration"
    assert api.requests == []


def test_an_exhausted_balance_is_runpod_quota(api):
    api.fail_next("Insufficient balance. Please add funds to your account.")
    with pytest.raises(ExecutorError) as raised:
        executor.launch(make_job("spot"), {"job_id": "x"})
    assert raised.value.error_type == "runpod_quota"
    assert not raised.value.transient


def test_an_unreachable_api_is_a_transient_network_error(api, settings, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.RUNPOD_API_BASE_URL = closed
    job = make_job("spot")
    set_ref(job, {"pod_id": "abc"})
    for call in (lambda job: executor.launch(job, {}), executor.poll):
        with pytest.raises(ExecutorError) as raised:
            call(job)
        assert (raised.value.error_type, raised.value.transient) == ("network", True)


def test_the_network_volume_pins_the_data_center_and_holds_the_model_cache(api, settings):
    settings.RUNPOD_NETWORK_VOLUME_ID = "vol-cache"
    for tier, mutation in (("spot", "podRentInterruptable"), ("on_demand", "podFindAndDeployOnDemand")):
        result = executor.launch(make_job(tier), {"job_id": "x"})
        args = api.calls(mutation)[0].args[mutation]["input"]
        assert (args["networkVolumeId"], args["dataCenterId"]) == ("vol-cache", "EU-RO-1")
        assert pod_env(api, result.ref["pod_id"])["GPU_WORKER_CACHE"] == "/runpod-volume/model-cache"


def test_an_unknown_network_volume_is_a_configuration_error(api, settings):
    settings.RUNPOD_NETWORK_VOLUME_ID = "vol-typo"
    with pytest.raises(ExecutorError) as raised:
        executor.launch(make_job("spot"), {"job_id": "x"})
    assert raised.value.error_type == "configuration"
    assert api.pods == {}


def test_a_gpu_without_a_runpod_id_is_a_configuration_error(api):
    job = make_job("spot")
    job.gpu_type = "CPU_LOCAL"
    with pytest.raises(ExecutorError) as raised:
        executor.launch(job, {})
    assert raised.value.error_type == "configuration"
    assert "H100_PCIE_80GB" in raised.value.suggested_fix
    assert api.requests == []


def test_the_spot_mutation_escapes_every_string():
    text = spot_mutation(name='a"b', image_name="img", gpu_type_id=H100, bid_per_gpu=2.49,
                         cloud_type="SECURE", container_disk_in_gb=200, volume_in_gb=0,
                         volume_mount_path="/runpod-volume", env={"K": 'v"\n\\'})
    assert 'name: "a\\"b"' in text
    assert '{key: "K", value: "v\\"\\n\\\\"}' in text


@given(st.text(), st.text(min_size=1))
def test_any_env_value_survives_the_spot_mutation(value, name):
    text = spot_mutation(name=name, image_name="img", gpu_type_id=H100, bid_per_gpu=2.49,
                         cloud_type="SECURE", container_disk_in_gb=200, volume_in_gb=0,
                         volume_mount_path="/runpod-volume", env={"GPU_WORKER_CONFIG": value})
    args = parse(text).selection[0].args["input"]
    assert args["env"] == [{"key": "GPU_WORKER_CONFIG", "value": value}]
    assert args["name"] == name
