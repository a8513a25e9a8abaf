"""The RunPod executor: one pod per attempt, through the official `runpod` SDK.

Spot (`gpu_pricing_tier="spot"`) rents an interruptible pod with the `podRentInterruptable`
mutation, which the SDK has no function for: we build it here and send it with the SDK's own
`run_graphql_query`. On-demand calls `runpod.create_pod`. Either way the pod gets the worker's
whole configuration as JSON in `GPU_WORKER_CONFIG` (docs/worker-contract.md) and runs the
image's default command. docs/runpod.md describes the mapping, the settings and the errors.

Idempotent launch per (job, attempt): the pod is named `lora-<job id>-a<attempt>`, and launch
first lists the account's pods (`runpod.get_pods`) and returns the one with that name if it
exists, so a redelivered launch task finds the pod its first delivery started. Two launches of
the same attempt at the same instant could still both create one: the services' compare-and-set
on the job's status keeps that to redeliveries, which come long after the first launch.

Poll maps `runpod.get_pod` to PodState: no pod (terminated, or a spot pod reclaimed) is "gone",
EXITED is "exited" (RunPod does not report the container's exit code: exit_code is None, the
worker's own events say how it ended), RUNNING with no runtime yet is "starting".

Settings: RUNPOD_API_KEY (required), RUNPOD_API_BASE_URL (the SDK's RUNPOD_API_BASE_URL
variable; tests point it at tests/runpod_standin.py), RUNPOD_WORKER_IMAGE, GPU_TABLE (the
`runpod_gpu_type_id` and prices of job.gpu_type), and, optional, RUNPOD_CLOUD_TYPE,
RUNPOD_SPOT_BID_PER_GPU, RUNPOD_CONTAINER_DISK_GB, RUNPOD_VOLUME_GB, RUNPOD_VOLUME_MOUNT_PATH,
RUNPOD_NETWORK_VOLUME_ID.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.conf import settings

from gpu_worker.config import CONFIG_ENV_VAR

from .base import EXECUTORS, Executor, ExecutorError, LaunchResult, PodState

if TYPE_CHECKING:
    from training.models import TrainingJob

logger = logging.getLogger(__name__)

# gpu_worker.model_loading.CACHE_ENV_VAR (that module imports the training stack): where the worker
# keeps downloaded base models; set to the network volume when there is one.
CACHE_ENV_VAR = "GPU_WORKER_CACHE"

SPOT, ON_DEMAND = "spot", "on_demand"

# RunPod answers these as GraphQL error messages (HTTP 200); matched case-insensitively.
_NO_CAPACITY = re.compile(
    r"no longer any instances available|no instances? (are |is )?(currently )?available|"
    r"does not have the resources to deploy|not enough (free )?gpus|no gpus? available|"
    r"out of capacity|insufficient capacity", re.IGNORECASE)
_QUOTA = re.compile(r"insufficient (balance|funds|credit)|balance|quota|spend(ing)? limit|"
                    r"out of credit", re.IGNORECASE)
_AUTH = re.compile(r"unauthori[sz]ed|api key|forbidden|not authenticated|permission denied",
                   re.IGNORECASE)
_NOT_FOUND = re.compile(r"not found|does not exist|no pod", re.IGNORECASE)
# lastStatusChange reads like "Rented by User: Mon Nov 23 2026 20:15:03 GMT+0000 (...)".
_STATUS_DATE = re.compile(r"\w{3} (\w{3} \d{1,2} \d{4} \d{2}:\d{2}:\d{2}) GMT([+-]\d{4})")

AUTH_FIX = "Set RUNPOD_API_KEY to a valid key (RunPod console → Settings → API Keys)."


def pod_name(job: TrainingJob) -> str:
    """The pod of one attempt of one job; what makes launch idempotent."""
    return f"lora-{job.pk}-a{job.attempt}"


def graphql_string(value: str) -> str:
    """A GraphQL string literal: JSON's escapes (\\" \\\\ \\n \\uXXXX) are GraphQL's."""
    return json.dumps(value)


def spot_mutation(*, name: str, image_name: str, gpu_type_id: str, bid_per_gpu: float,
                  cloud_type: str, container_disk_in_gb: int, volume_in_gb: int,
                  volume_mount_path: str, env: dict[str, str], network_volume_id: str = "",
                  data_center_id: str = "") -> str:
    """The `podRentInterruptable` mutation (RunPod's PodRentInterruptableInput), every string
    escaped, unlike the SDK's own mutations (which interpolate values raw)."""
    q = graphql_string
    env_items = ", ".join(f"{{key: {q(k)}, value: {q(v)}}}" for k, v in env.items())
    fields = [
        f"bidPerGpu: {float(bid_per_gpu)!r}", "gpuCount: 1", f"gpuTypeId: {q(gpu_type_id)}",
        f"cloudType: {cloud_type}", f"name: {q(name)}", f"imageName: {q(image_name)}",
        f"containerDiskInGb: {int(container_disk_in_gb)}", f"volumeInGb: {int(volume_in_gb)}",
        f"volumeMountPath: {q(volume_mount_path)}", 'dockerArgs: ""', "startSsh: true",
        "supportPublicIp: true", f"env: [{env_items}]",
    ]
    if network_volume_id:
        fields.append(f"networkVolumeId: {q(network_volume_id)}")
    if data_center_id:
        fields.append(f"dataCenterId: {q(data_center_id)}")
    return (
        "mutation {\n"
        f"  podRentInterruptable(input: {{{', '.join(fields)}}}) {{\n"
        "    id desiredStatus imageName costPerHr machineId machine { podHostId }\n"
        "  }\n"
        "}"
    )


def parse_status_change(text: str | None) -> datetime | None:
    match = _STATUS_DATE.search(text or "")
    if not match:
        return None
    try:
        return datetime.strptime(f"{match[1]} {match[2]}", "%b %d %Y %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def pod_state(pod: dict | None, pod_id: str) -> PodState:
    """PodState for what runpod.get_pod answered (None: there is no such pod)."""
    if pod is None:
        return PodState("gone", detail=f"pod {pod_id} no longer exists (terminated, or a spot pod reclaimed)")
    status = pod.get("desiredStatus") or ""
    change = pod.get("lastStatusChange") or ""
    raw = {k: v for k, v in pod.items() if k != "env"}  # env holds the job's secret
    common = {"last_status_change": parse_status_change(change), "raw": raw}
    detail = f"pod {pod.get('id', pod_id)} {status}" + (f" ({change})" if change else "")
    if status == "RUNNING":
        if pod.get("runtime") is None:
            return PodState("starting", detail=detail + ": pulling the image or booting", **common)
        return PodState("running", runtime_seconds=float(pod.get("uptimeSeconds") or 0), detail=detail, **common)
    if status in ("CREATED", "RESTARTING"):
        return PodState("starting", detail=detail, **common)
    if status == "EXITED":
        return PodState("exited", detail=detail, **common)
    if status in ("TERMINATED", "DEAD"):
        return PodState("gone", detail=detail, **common)
    return PodState("unknown", detail=f"{detail}: a status this executor does not know", **common)


@EXECUTORS.register("runpod", label="RunPod (a cloud GPU pod)")
class RunPodExecutor(Executor):

    # --- launch ---------------------------------------------------------------------------

    def launch(self, job: TrainingJob, worker_config: dict) -> LaunchResult:
        gpu_key, gpu = gpu_row(job)
        sdk = configured_sdk()
        name = pod_name(job)
        spot = job.gpu_pricing_tier == SPOT
        failure = {"gpu": gpu, "spot": spot}
        existing = find_pod(sdk, name, **failure)
        if existing is not None:
            logger.info("job %s attempt %s already has pod %s (%s); not creating another",
                        job.pk, job.attempt, existing["id"], name)
            return self._result(existing, gpu, spot, name, reused=True)

        env = {CONFIG_ENV_VAR: json.dumps(worker_config)}
        volume_id = getattr(settings, "RUNPOD_NETWORK_VOLUME_ID", "")
        mount = getattr(settings, "RUNPOD_VOLUME_MOUNT_PATH", "") or "/runpod-volume"
        if volume_id:
            env[CACHE_ENV_VAR] = f"{mount.rstrip('/')}/model-cache"
        data_center = network_volume_data_center(sdk, volume_id, **failure) if volume_id else ""
        options = {
            "name": name, "image_name": worker_image(), "gpu_type_id": gpu["runpod_gpu_type_id"],
            "cloud_type": getattr(settings, "RUNPOD_CLOUD_TYPE", "SECURE"),
            "container_disk_in_gb": getattr(settings, "RUNPOD_CONTAINER_DISK_GB", 200),
            "volume_in_gb": getattr(settings, "RUNPOD_VOLUME_GB", 0),
            "volume_mount_path": mount, "network_volume_id": volume_id, "data_center_id": data_center,
        }
        if spot:
            bid = spot_bid(gpu)
            query = spot_mutation(**options, bid_per_gpu=bid, env=env)
            pod = call(lambda: sdk.api.graphql.run_graphql_query(query)["data"]["podRentInterruptable"],
                       **failure)
        else:
            # create_pod puts each env value between quotes as is; pre-escape it (JSON's
            # escapes without the outer quotes) so the config's quotes and newlines survive.
            options.update(env={k: graphql_string(v)[1:-1] for k, v in env.items()}, gpu_count=1,
                           network_volume_id=volume_id or None, data_center_id=data_center or None)
            pod = call(lambda: sdk.create_pod(**options), **failure)
        if not pod or not pod.get("id"):
            raise ExecutorError("runpod_api", f"RunPod accepted the {gpu_key} pod request but returned no pod.",
                                "It is retried automatically; check the RunPod console for a stray pod "
                                f"named {name}.", transient=True)
        logger.info("job %s attempt %s: started %s pod %s (%s)", job.pk, job.attempt,
                    "spot" if spot else "on-demand", pod["id"], name)
        return self._result(pod, gpu, spot, name, reused=False)

    @staticmethod
    def _result(pod: dict, gpu: dict, spot: bool, name: str, *, reused: bool) -> LaunchResult:
        ref = {
            "pod_id": pod["id"], "name": name, "gpu_type_id": gpu["runpod_gpu_type_id"],
            "pricing_tier": SPOT if spot else ON_DEMAND, "machine_id": pod.get("machineId"),
            "pod_host_id": (pod.get("machine") or {}).get("podHostId"),
        }
        if spot:
            ref["bid_per_gpu"] = spot_bid(gpu)
        if reused:
            ref["reused"] = True
        table_rate = gpu["spot_per_hour" if spot else "on_demand_per_hour"]
        rate = pod.get("costPerHr") or table_rate
        return LaunchResult(ref=ref, hourly_rate=Decimal(str(rate)))

    # --- poll -----------------------------------------------------------------------------

    def poll(self, job: TrainingJob) -> PodState:
        sdk = configured_sdk()
        pod_id = job.attempt_ref.get("pod_id")
        if not pod_id:
            pod = find_pod(sdk, pod_name(job))
            return pod_state(pod, pod_name(job))
        try:
            pod = call(lambda: sdk.get_pod(pod_id), pod_request=True)
        except PodNotFound:
            pod = None
        return pod_state(pod, pod_id)

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, job: TrainingJob) -> None:
        """Terminate the pod. RunPod stops the container first (SIGTERM, then SIGKILL after its
        grace period), so the worker gets its chance to write an emergency checkpoint."""
        sdk = configured_sdk()
        pod_id = job.attempt_ref.get("pod_id")
        if not pod_id:
            pod = find_pod(sdk, pod_name(job))
            if pod is None:
                return
            pod_id = pod["id"]
        try:
            call(lambda: sdk.terminate_pod(pod_id), pod_request=True)
        except PodNotFound:
            logger.info("pod %s of job %s was already gone", pod_id, job.pk)


# --- The SDK, and its failures as ExecutorError --------------------------------------------------


class PodNotFound(Exception):
    """RunPod answered that the pod does not exist."""


def configured_sdk() -> ModuleType:
    """The `runpod` module with our key and base URL. Imported here, not at module load: it
    takes about two seconds, and get_executor imports this module for every executor kind."""
    key = settings.RUNPOD_API_KEY
    if not key:
        raise ExecutorError("configuration", "RUNPOD_API_KEY is not set, so jobs cannot run on RunPod.", AUTH_FIX)
    import runpod
    import runpod.api.graphql  # noqa: F401 (spot sends its mutation through it)

    # The SDK reads both per call: the module attribute and the environment variable.
    runpod.api_key = key
    if settings.RUNPOD_API_BASE_URL:
        os.environ["RUNPOD_API_BASE_URL"] = settings.RUNPOD_API_BASE_URL.rstrip("/")
    return runpod


def call(request, *, gpu: dict | None = None, spot: bool = False, pod_request: bool = False) -> Any:
    """Run one SDK request, turning its exceptions into ExecutorError; with `pod_request` (a
    request about one pod), RunPod's "not found" raises PodNotFound instead."""
    import requests
    from runpod import error as runpod_error

    try:
        return request()
    except runpod_error.AuthenticationError as exc:
        raise ExecutorError("runpod_auth", f"RunPod refused the API key: {exc}", AUTH_FIX) from exc
    except runpod_error.QueryError as exc:
        if pod_request and _NOT_FOUND.search(str(exc)):
            raise PodNotFound(str(exc)) from exc
        raise classify(str(exc), gpu=gpu, spot=spot) from exc
    except requests.RequestException as exc:  # includes an answer that is not JSON (a proxy's 502)
        raise ExecutorError("network", f"Could not reach the RunPod API: {exc}",
                            "It is retried automatically; check https://uptime.runpod.io if it persists.",
                            transient=True) from exc
    except ValueError as exc:  # create_pod's own check: the GPU type does not exist
        raise ExecutorError("configuration", f"RunPod rejected the pod request: {exc}",
                            "Set GPU_TABLE[...].runpod_gpu_type_id to an id listed by runpod.get_gpus().") from exc
    except (KeyError, TypeError) as exc:  # an answer without the data the SDK indexes into
        raise ExecutorError("runpod_api", f"RunPod answered in an unexpected shape ({exc!r}).",
                            "It is retried automatically.", transient=True) from exc


def classify(message: str, *, gpu: dict | None, spot: bool) -> ExecutorError:
    if _NO_CAPACITY.search(message):
        label = (gpu or {}).get("label", "GPU").removeprefix("NVIDIA ")
        if spot:
            return ExecutorError(
                "gpu_provisioning", f"No {label} capacity available right now.",
                "Retry in a few minutes, or switch to on-demand (retry with gpu_pricing_tier=on_demand).",
                transient=True, suggested_config={"gpu_pricing_tier": ON_DEMAND})
        return ExecutorError("gpu_provisioning", f"No {label} capacity available right now.",
                             "Retry in a few minutes.", transient=True)
    if _AUTH.search(message):
        return ExecutorError("runpod_auth", f"RunPod refused the request: {message}", AUTH_FIX)
    if _QUOTA.search(message):
        return ExecutorError("runpod_quota", f"RunPod refused the pod for the account's balance or quota: {message}",
                             "Add credit or raise the spend limit (RunPod console → Billing), then retry.")
    return ExecutorError("runpod_api", f"RunPod answered an error: {message}",
                         "Check the request in the RunPod console; if RunPod is degraded, retry later.")


# --- Helpers -----------------------------------------------------------------------------------


def gpu_row(job: TrainingJob) -> tuple[str, dict]:
    key = job.gpu_type or settings.DEFAULT_GPU_TYPE
    row = settings.GPU_TABLE.get(key)
    if not row or not row.get("runpod_gpu_type_id"):
        runpod_gpus = sorted(k for k, v in settings.GPU_TABLE.items() if v.get("runpod_gpu_type_id"))
        raise ExecutorError("configuration", f"GPU type {key!r} cannot run on RunPod: GPU_TABLE has no "
                            "runpod_gpu_type_id for it.", f"Choose one of: {', '.join(runpod_gpus)}.")
    return key, row


def spot_bid(gpu: dict) -> float:
    bid = getattr(settings, "RUNPOD_SPOT_BID_PER_GPU", None)
    return float(bid if bid is not None else gpu["spot_per_hour"])


def worker_image() -> str:
    image = settings.RUNPOD_WORKER_IMAGE
    # create_pod interpolates the image into its mutation unescaped.
    if not image or re.search(r'[\s"\\]', image):
        raise ExecutorError("configuration", f"RUNPOD_WORKER_IMAGE={image!r} is not an image reference.",
                            "Set RUNPOD_WORKER_IMAGE to the gpu_worker image, e.g. ghcr.io/org/lora-gpu-worker:1.2.")
    return image


def find_pod(sdk: ModuleType, name: str, **failure) -> dict | None:
    pods = call(sdk.get_pods, **failure) or []
    return next((p for p in pods if p.get("name") == name and p.get("desiredStatus") != "TERMINATED"), None)


def network_volume_data_center(sdk: ModuleType, volume_id: str, **failure) -> str:
    """A pod with a network volume must run in the volume's data center."""
    user = call(sdk.get_user, **failure) or {}
    for volume in user.get("networkVolumes") or []:
        if volume.get("id") == volume_id:
            return volume.get("dataCenterId") or ""
    raise ExecutorError("configuration", f"RUNPOD_NETWORK_VOLUME_ID={volume_id!r} is not a network volume of this "
                        "RunPod account.", "Set it to an id from RunPod console → Storage, or leave it empty.")
