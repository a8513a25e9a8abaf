"""The executor plug-in interface: one small base class and the registry of executor kinds.

`EXECUTORS` is the one list of kinds: settings validation (training.checks), configuration
resolution, the forms, the admin and the API all read it. Plug-ins register themselves with
`@EXECUTORS.register(kind, label=...)`; this module never imports them (the package's
__init__ does, so importing `training.executors` registers every kind).

Executors never write job state; services do, from what executors return or raise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from core.registry import Registry, UnknownKind

if TYPE_CHECKING:
    from training.models import TrainingJob


@dataclass(frozen=True)
class LaunchResult:
    """What a launch started: `ref` is stored on the job (host/pid, pod id) for poll/cancel."""

    ref: dict
    hourly_rate: Decimal = Decimal("0")


@dataclass(frozen=True)
class PodState:
    """The executor's view of the worker of the job's current attempt.

    state: "starting" (not running yet), "running", "exited" (process/pod ended; exit_code set
    when known), "gone" (vanished: preempted, terminated by someone else), "unknown" (could not
    ask: the executor's API failed; never treated as an interruption by itself).
    """

    state: str
    exit_code: int | None = None
    runtime_seconds: float | None = None
    last_status_change: datetime | None = None
    detail: str = ""
    raw: dict = field(default_factory=dict)


class ExecutorError(Exception):
    """A launch/poll/cancel failure, classified for the user.

    `transient` failures (no capacity, network) are retried automatically with backoff
    (services.launching.schedule_launch_retry).
    """

    def __init__(self, error_type: str, message: str, suggested_fix: str = "", *,
                 transient: bool = False, suggested_config: dict | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.suggested_fix = suggested_fix
        self.transient = transient
        self.suggested_config = suggested_config or {}


class Executor(ABC):
    @abstractmethod
    def launch(self, job: TrainingJob, worker_config: dict) -> LaunchResult:
        """Start the worker for job.attempt with `worker_config` (gpu_worker's JSON).

        Must be idempotent for a given (job, attempt): a redelivered task calling launch again
        must find and return the worker it already started instead of starting a second one.
        """

    @abstractmethod
    def poll(self, job: TrainingJob) -> PodState:
        """Report the state of the worker recorded in the current attempt's ref (job.attempt_ref)."""

    @abstractmethod
    def cancel(self, job: TrainingJob) -> None:
        """Ask the worker to stop (SIGTERM first, so it can save a checkpoint and stop cleanly) and
        return without waiting for it to exit: a user's cancel must not block on the worker.
        Forcing a worker that does not stop within the grace period is the executor's job, off
        the caller's path. A no-op if already gone."""

    def wait_stopped(self, job: TrainingJob, timeout: float | None = None) -> bool:
        """Wait (up to `timeout`, default the executor's grace period and a margin) until the
        worker cancelled by `cancel` is gone; whether it is. For callers that must not go on
        beside it (a new attempt replacing a hung one). The default trusts `cancel`."""
        return True

    def log_tail(self, job: TrainingJob, lines: int = 200) -> list[str] | None:
        """The last `lines` lines of the current attempt's worker output, or None where the
        executor cannot read it (the worker's own `error` event still carries its trace tail)."""
        return None


EXECUTORS = Registry["Executor"]("executor")


def get_executor(kind: str) -> Executor:
    """A new executor of `kind`; an unknown kind is a configuration error naming the known ones."""
    try:
        return EXECUTORS.build(kind)
    except UnknownKind:
        raise ExecutorError("configuration", f"Unknown executor '{kind}'.",
                            f"Use one of: {', '.join(EXECUTORS.kinds())}.") from None
