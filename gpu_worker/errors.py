"""Failure classification: turn any exception into the `error` event's type, fix and exit code.

``classify_error`` is pure and never raises: it runs in the worker's last-chance handler, where
a second failure would lose the report. It walks the ``__cause__``/``__context__`` chain from
the outermost exception inward and classifies by the first one it recognises, so an OOM wrapped
in a RuntimeError("training step failed") is still an OOM.

Third-party exception types (torch, huggingface_hub, requests, urllib3, httpx) are recognised
by class name along the MRO, so classifying never imports those libraries.
"""

from __future__ import annotations

import errno
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gpu_worker.config import ConfigError
from gpu_worker.contract import ExitCode
from gpu_worker.data import DatasetError

MAX_MESSAGE_CHARS = 1000
TRACE_TAIL_LINES = 20
MAX_CHAIN = 20


class CudaUnavailableError(RuntimeError):
    """CUDA was asked for (device="cuda" or 4-bit quantization) but torch.cuda.is_available()
    is false. Raised where the device is chosen."""


class DivergenceError(RuntimeError):
    """Training diverged: the loss became NaN/inf or exploded. Raised by the training loop."""

    def __init__(self, message: str, step: int | None = None, loss: float | None = None, learning_rate: float | None = None):
        super().__init__(message)
        self.step = step
        self.loss = loss
        self.learning_rate = learning_rate


@dataclass(frozen=True)
class ClassifiedError:
    error_type: str
    message: str
    suggested_fix: str
    exit_code: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_event_data(self) -> dict[str, Any]:
        """The `error` event's data (docs/worker-contract.md)."""
        return {
            "error_type": self.error_type,
            "message": self.message,
            "suggested_fix": self.suggested_fix,
            "details": self.details,
            "exit_code": self.exit_code,
        }


EXIT_CODES = {
    "dataset_format": ExitCode.USER_ERROR,
    "model_access": ExitCode.USER_ERROR,
    "out_of_memory": ExitCode.USER_ERROR,
    "divergence": ExitCode.USER_ERROR,
    "configuration": ExitCode.USER_ERROR,
    "network": ExitCode.INFRASTRUCTURE_ERROR,
    "disk_full": ExitCode.INFRASTRUCTURE_ERROR,
    "cuda_unavailable": ExitCode.INFRASTRUCTURE_ERROR,
    "unknown": ExitCode.UNKNOWN_ERROR,
}

_OOM_TYPES = {"OutOfMemoryError"}  # torch.OutOfMemoryError is torch.cuda.OutOfMemoryError
_OOM_TEXT = re.compile(
    r"out of memory|can't allocate memory|cannot allocate memory|CUBLAS_STATUS_ALLOC_FAILED", re.I
)
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_TEXT = re.compile(r"no space left on device|disk quota exceeded", re.I)
_CUDA_TEXT = re.compile(
    r"found no nvidia driver|cuda driver version is insufficient|torch not compiled with cuda"
    r"|no cuda gpus are available|cuda-capable device|cuda unavailable|cuda is not available"
    r"|nvidia driver on your system is too old",
    re.I,
)
_HUB_ACCESS_TYPES = {"GatedRepoError", "RepositoryNotFoundError", "RevisionNotFoundError", "DisabledRepoError"}
_HUB_ACCESS_TEXT = re.compile(
    r"gated repo|access to model .* is restricted|repository not found"
    r"|is not a valid model identifier|invalid user token",
    re.I,
)
# 401/403 mean "no access to the model" only when the Hub said it; from the control plane they
# mean a bad signature, which is not the user's licence to fix.
_HUB_DENIED_TEXT = re.compile(r"\b40[13] client error.*huggingface|huggingface.*\b40[13] client error", re.I | re.S)
_NETWORK_TYPES = {
    # requests
    "ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "ChunkedEncodingError", "SSLError",
    # urllib3
    "NewConnectionError", "MaxRetryError", "ProtocolError", "ReadTimeoutError", "ConnectTimeoutError",
    "NameResolutionError", "IncompleteRead",
    # httpx (huggingface_hub's transport)
    "TransportError", "ConnectError", "TimeoutException", "NetworkError", "RemoteProtocolError",
    # huggingface_hub: offline and not cached
    "LocalEntryNotFoundError",
    # stdlib
    "TimeoutError", "gaierror", "herror", "URLError", "RemoteDisconnected",
}
_NETWORK_TEXT = re.compile(
    r"temporary failure in name resolution|name or service not known|nodename nor servname"
    r"|connection refused|connection reset|connection aborted|max retries exceeded"
    r"|network is unreachable|timed out|couldn't connect to|failed to establish a new connection",
    re.I,
)
_ALLOCATION = re.compile(r"tried to allocate ([\d.]+ ?[KMGT]i?B)", re.I)


def classify_error(exc: BaseException, context: dict[str, Any] | None = None) -> ClassifiedError:
    """Classify ``exc``. ``context`` is the job configuration (WorkerConfig.to_dict()) or any
    dict with the fields the fixes quote; missing fields make the fix less specific, never fail.
    """
    context = context or {}
    try:
        for link in _chain(exc):
            for classify in _CLASSIFIERS:
                result = classify(link, context)
                if result is not None:
                    return result
        return _unknown(exc)
    except Exception as failure:  # classifying must not become the failure
        return _unknown(exc, note=f"(classification itself failed: {failure!r})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it (explicit cause first, else the implicit context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < MAX_CHAIN:
        seen.add(id(current))
        yield current
        for inner in getattr(current, "exceptions", None) or ():  # ExceptionGroup members
            if isinstance(inner, BaseException):
                yield from _chain(inner)
        current = current.__cause__ or current.__context__


def _type_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the error
        return repr(exc)


def _short(exc: BaseException) -> str:
    text = _text(exc).strip()
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    for line in _text(exc).splitlines():
        if line.strip():
            return line.strip()[:MAX_MESSAGE_CHARS]
    return type(exc).__name__


def _make(error_type: str, message: str, fix: str, exc: BaseException, **details: Any) -> ClassifiedError:
    details = {"exception": _short(exc), **details}
    return ClassifiedError(error_type, message, fix, EXIT_CODES[error_type], details)


def _int(context: dict[str, Any], key: str) -> int | None:
    value = context.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


# One function per error type, each recognising its exception types and then its message
# patterns, tried in _CLASSIFIERS order on each exception of the chain. The order settles
# overlaps: our own exception types first (a DatasetError quoting a record that says "timed
# out" stays a dataset error), model access before network (hub errors are OSErrors and HTTP
# errors), out of memory before CUDA (a "CUDA error: out of memory" is an OOM).


def _divergence(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    if not isinstance(exc, DivergenceError):
        return None
    lr = context.get("learning_rate", exc.learning_rate)
    details: dict[str, Any] = {"step": exc.step, "loss": _json_float(exc.loss)}
    if isinstance(lr, (int, float)) and lr > 0:
        fix = (
            f"Halve learning_rate from {lr:g} to {lr / 2:g}; if it still diverges, halve it "
            "again or raise warmup_ratio."
        )
        details["suggested_config"] = {"learning_rate": lr / 2}
    else:
        fix = "Halve learning_rate; if it still diverges, halve it again or raise warmup_ratio."
        details["suggested_config"] = {}
    where = f" at step {exc.step}" if exc.step is not None else ""
    return _make("divergence", f"Training diverged{where}: {_first_line(exc)}", fix, exc, **details)


def _json_float(value: float | None) -> float | str | None:
    # NaN and inf are not JSON; keep them readable in the event.
    if value is None or value == value and abs(value) != float("inf"):
        return value
    return str(value)


def _cuda_unavailable_type(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    return _cuda_unavailable(exc, context) if isinstance(exc, CudaUnavailableError) else None


def _cuda_unavailable(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    if not isinstance(exc, CudaUnavailableError) and not _CUDA_TEXT.search(_text(exc)):
        return None
    return _make(
        "cuda_unavailable",
        f"CUDA is not available on this worker: {_first_line(exc)}",
        "Run the job on a machine with an NVIDIA GPU and a working driver (check nvidia-smi), "
        "or set device to 'cpu' and quantization to 'none' (much slower, small models only).",
        exc,
        suggested_config={"device": "cpu", "quantization": "none"},
    )


def _dataset_format(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    if not isinstance(exc, DatasetError):
        return None
    problems = exc.problems
    if problems:
        first = problems[0]
        message = f"The dataset has {exc.problem_count} problem{'s' if exc.problem_count != 1 else ''}; first: {first}"
        first_problem = {"line": first.line, "field": first.field, "reason": first.reason, "record": first.record}
    else:
        message, first_problem = f"Dataset problem: {exc.message}", None
    return _make(
        "dataset_format",
        message[:MAX_MESSAGE_CHARS],
        "Fix the records listed (line numbers are in the dataset file) and resubmit. Each record "
        "needs 'messages' (chat), or 'current_user_input' and 'target_response', or 'prompt' "
        "and 'completion', with non-empty strings.",
        exc,
        problem_count=exc.problem_count,
        first_problem=first_problem,
        problems=[str(p) for p in problems[:20]],
    )


def _configuration(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    if not isinstance(exc, ConfigError):
        return None
    return _make(
        "configuration",
        f"Invalid configuration: {_first_line(exc)}",
        "Correct the field named in the message; docs/worker-config.md lists every field.",
        exc,
    )


def _out_of_memory(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    names = _type_names(exc)
    if not (names & _OOM_TYPES or isinstance(exc, MemoryError) or _OOM_TEXT.search(_text(exc))):
        return None
    fix, suggested = _oom_fix(context)
    details: dict[str, Any] = {"suggested_config": suggested}
    allocation = _ALLOCATION.search(_text(exc))
    if allocation:
        details["tried_to_allocate"] = allocation.group(1)
    return _make("out_of_memory", f"Out of memory: {_first_line(exc)}", fix, exc, **details)


def _oom_fix(context: dict[str, Any]) -> tuple[str, dict[str, int]]:
    batch = _int(context, "per_device_batch_size")
    accumulation = _int(context, "gradient_accumulation_steps") or 1
    length = _int(context, "max_seq_length")
    if batch is not None and batch > 1:
        new_batch = batch // 2
        effective = batch * accumulation
        # Ceil keeps the effective batch at least as large when the batch size is odd.
        new_accumulation = -(-effective // new_batch)
        fix = (
            f"Halve per_device_batch_size from {batch} to {new_batch} and raise "
            f"gradient_accumulation_steps from {accumulation} to {new_accumulation}, which keeps "
            f"the effective batch at {new_batch * new_accumulation} sequences per step."
        )
        return fix, {"per_device_batch_size": new_batch, "gradient_accumulation_steps": new_accumulation}
    if batch == 1 and length is not None and length > 1:
        fix = (
            f"per_device_batch_size is already 1: halve max_seq_length from {length} to "
            f"{length // 2} (longer conversations get truncated; the preprocessing report says "
            "how many), or enable gradient_checkpointing, or use a GPU with more memory."
        )
        return fix, {"max_seq_length": length // 2}
    fix = (
        "Halve per_device_batch_size and double gradient_accumulation_steps to keep the "
        "effective batch; if the batch is already 1, halve max_seq_length or enable "
        "gradient_checkpointing."
    )
    return fix, {}


def _disk_full(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    is_disk = isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS
    if not is_disk and not _DISK_TEXT.search(_text(exc)):
        return None
    path = getattr(exc, "filename", None)
    where = f" writing {path}" if path else ""
    return _make(
        "disk_full",
        f"Disk full{where}: {_first_line(exc)}",
        "Give the worker a larger disk or volume, or free space in its output_dir; lowering "
        "keep_checkpoints keeps fewer checkpoints on disk.",
        exc,
        path=str(path) if path else None,
    )


def _model_access(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    names = _type_names(exc)
    model = context.get("base_model")
    if "LocalEntryNotFoundError" in names:
        return None  # offline and not cached: a network problem, not an access one
    status = _http_status(exc)
    text = _text(exc)
    hub = bool(names & _HUB_ACCESS_TYPES) or ("HfHubHTTPError" in names and status in (401, 403))
    by_text = bool(_HUB_ACCESS_TEXT.search(text) or _HUB_DENIED_TEXT.search(text))
    missing_local = _missing_local_model(exc, model) or "HFValidationError" in names
    if not (hub or by_text or missing_local):
        return None
    page = f"https://huggingface.co/{model}" if isinstance(model, str) and model else "the model's Hugging Face page"
    if missing_local:
        fix = (
            f"base_model {model!r} is neither an existing local folder on the worker nor a Hub "
            f"id; check the path or the id's spelling. For a gated Hub model, accept the licence "
            f"on {page} and set HF_TOKEN."
        )
    else:
        fix = (
            f"Accept the licence on {page} while signed in, then set HF_TOKEN on the worker to "
            "a token of that account with read access (huggingface.co/settings/tokens). If the "
            "id is misspelt the Hub answers the same way, so check it too."
        )
    return _make(
        "model_access", f"Cannot access the model: {_first_line(exc)}", fix, exc,
        base_model=model, http_status=status,
    )


def _missing_local_model(exc: BaseException, model: Any) -> bool:
    if not isinstance(model, str) or not model:
        return False
    if "HFValidationError" in _type_names(exc) and model in _text(exc):
        return True
    return isinstance(exc, FileNotFoundError) and model in f"{exc.filename or ''} {_text(exc)}"


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _network(exc: BaseException, context: dict[str, Any]) -> ClassifiedError | None:
    names = _type_names(exc)
    status = _http_status(exc)
    retryable_status = status is not None and (status >= 500 or status == 429)
    if not (
        names & _NETWORK_TYPES
        or isinstance(exc, (ConnectionError, TimeoutError))
        or retryable_status
        or _NETWORK_TEXT.search(_text(exc))
    ):
        return None
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    return _make(
        "network",
        f"Network failure: {_first_line(exc)}",
        "Check the worker's network access to the control plane and to huggingface.co, then "
        "retry the job; it resumes from its newest committed checkpoint.",
        exc,
        url=str(url) if url else None,
        http_status=status,
    )


_CLASSIFIERS: tuple[Callable[[BaseException, dict[str, Any]], ClassifiedError | None], ...] = (
    _divergence,
    _dataset_format,
    _configuration,
    _cuda_unavailable_type,
    _model_access,
    _out_of_memory,
    _disk_full,
    _cuda_unavailable,
    _network,
)


def _unknown(exc: BaseException, note: str = "") -> ClassifiedError:
    try:
        lines = "".join(traceback.format_exception(exc)).splitlines()
    except Exception:
        lines = [_short(exc)]
    message = f"Unexpected error: {_short(exc)}" + (f" {note}" if note else "")
    return ClassifiedError(
        "unknown",
        message,
        "This failure is not one the worker recognises; the trace tail in the details shows "
        "where it happened. Retry once; if it repeats, report it with the job id.",
        EXIT_CODES["unknown"],
        {"exception": _short(exc), "trace_tail": "\n".join(lines[-TRACE_TAIL_LINES:])},
    )
