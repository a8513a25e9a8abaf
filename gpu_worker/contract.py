"""The names the worker and the control plane share (docs/worker-contract.md).

The worker writes them (exit codes, stage names, event types, headers) and the control plane
reads them: both sides import this module instead of restating its literals, so a renamed
stage or a new exit code is one edit here. It is pure data and must stay free of heavy imports
(the control plane imports it, and it never imports Django).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from types import MappingProxyType


class ExitCode(IntEnum):
    """The worker process's exit status; the executors read it (docs/worker-contract.md)."""

    SUCCESS = 0  # adapter, metrics.jsonl and summary.json written and uploaded
    UNKNOWN_ERROR = 1  # classified `unknown`; the last trace lines are in the `error` event
    USER_ERROR = 2  # configuration, dataset format, model access, out of memory, divergence
    INFRASTRUCTURE_ERROR = 3  # network, disk full, CUDA unavailable
    INTERRUPTED = 4  # SIGTERM/SIGINT received, emergency checkpoint committed
    STOPPED_BY_CONTROL_PLANE = 5  # a report was answered 409/410 (cancelled or superseded)


class Stage(StrEnum):
    """The stages a worker reports in `stage_changed`, declared in the order they happen."""

    PREPROCESSING = "preprocessing"
    MODEL_LOADING = "model_loading"
    TRAINING = "training"
    FINALIZING = "finalizing"
    VALIDATING = "validating"


# The stage names in order; the control plane's job states for them are derived from this.
STAGES: tuple[str, ...] = tuple(stage.value for stage in Stage)


class EventType(StrEnum):
    """The `type` of every event the worker POSTs to the webhook."""

    STARTED = "started"
    STAGE_CHANGED = "stage_changed"
    METRICS = "metrics"
    HEARTBEAT = "heartbeat"
    CHECKPOINT_SAVED = "checkpoint_saved"
    RESUMED = "resumed"
    INTERRUPTED = "interrupted"
    ERROR = "error"
    VALIDATION_RESULTS = "validation_results"
    COMPLETED = "completed"


EVENT_TYPES: frozenset[str] = frozenset(event.value for event in EventType)

# Per event type, the integer `data` field that the control plane stores in a column: required
# (the event means nothing without it) or checked only when present.
REQUIRED_STEP_FIELDS: MappingProxyType[str, str] = MappingProxyType({
    EventType.CHECKPOINT_SAVED.value: "step",
    EventType.RESUMED.value: "resumed_from_step",
})
OPTIONAL_STEP_FIELDS: MappingProxyType[str, str] = MappingProxyType({
    EventType.INTERRUPTED.value: "last_checkpoint_step",
    EventType.COMPLETED.value: "steps",
})

# Standard Webhooks signature headers (gpu_worker.signing), lower-case as both sides read them.
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
# Every storage control call carries the worker's attempt, so a superseded attempt is fenced off.
ATTEMPT_HEADER = "x-worker-attempt"
# How a RunPod pod receives its configuration: the whole WorkerConfig as JSON.
CONFIG_ENV_VAR = "GPU_WORKER_CONFIG"

# The worker's divergence stop (gpu_worker.callbacks.WorkerCallback): a non-finite training loss at
# any step, or a logged training loss above DIVERGENCE_STOP_FACTOR x the reference loss (the
# first one logged once warmup is over) for DIVERGENCE_STOP_PATIENCE logged points in a row ends
# the attempt with an `error` event (error_type "divergence") and ExitCode.USER_ERROR.
# The control plane's trend analysis flags divergence earlier and more softly (3x the recent
# minimum, median of 3 points) without stopping anything; docs/worker-contract.md, "Divergence",
# sets the two rules side by side and says why they differ.
DIVERGENCE_STOP_FACTOR = 10.0
DIVERGENCE_STOP_PATIENCE = 3
