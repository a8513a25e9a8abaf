"""What runs beside the training loop: heartbeats, metric batches, checkpoint uploads, and the
Trainer callback that connects them to the loop.

Nothing here does I/O on the training thread except the Trainer's own local checkpoint save:
metric points go to an in-memory list and a buffered file, and the ticker thread turns them into
`metrics` events; checkpoint folders are committed to the store by the uploader thread.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from gpu_worker.contract import DIVERGENCE_STOP_FACTOR, DIVERGENCE_STOP_PATIENCE, EventType
from gpu_worker.errors import DivergenceError

logger = logging.getLogger("gpu_worker.callbacks")

# Divergence: a non-finite loss at any step, or a logged loss above DIVERGENCE_FACTOR x the
# reference loss (the first logged loss once warmup is over) for DIVERGENCE_PATIENCE logged
# points in a row. One spike is tolerated; a run that stays an order of magnitude worse than
# where it started is wasting the GPU. The rule is part of the worker contract
# (gpu_worker.contract; docs/worker-contract.md, "Divergence").
DIVERGENCE_FACTOR = DIVERGENCE_STOP_FACTOR
DIVERGENCE_PATIENCE = DIVERGENCE_STOP_PATIENCE


class JobState:
    """Shared between the main thread, the ticker and the callbacks (plain attribute writes)."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.step: int | None = None
        self.total_steps: int | None = None
        self.signal_name: str | None = None  # set by the SIGTERM/SIGINT handler
        self.raise_on_signal = False  # outside the training loop a signal stops the job at once
        self.interrupted_during_training = False
        self.stopped_by_control_plane = False
        # Stopping mid-step (install_step_abort): on while trainer.train() runs; the RNG state
        # as the last completed step left it (what a checkpoint saved then would hold); the
        # last step a checkpoint was saved (or resumed) at, which an emergency checkpoint need
        # not repeat.
        self.abort_step_on_signal = False
        self.step_in_progress = False
        self.rng_after_last_step: dict[str, Any] | None = None
        self.last_saved_step: int | None = None
        self.last_train_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.first_train_loss: float | None = None
        self.last_committed_step: int | None = None
        self.tokens_trained = 0
        self.samples_trained = 0
        # Progress for the heartbeats (docs/worker-contract.md, "heartbeat"): the measured mean
        # time of a training step in this session, and the validation's samples done/total
        # with the measured time of one.
        self.seconds_per_step: float | None = None
        self.validation_done: int | None = None
        self.validation_total: int | None = None
        self.seconds_per_validation_sample: float | None = None
        # Set to send a heartbeat now rather than at the next interval: the moment the total
        # steps are known, the first step's time is measured, validation starts.
        self.heartbeat_wanted = threading.Event()

    def progress(self) -> dict[str, Any]:
        """The heartbeat's data: where the worker is and how fast it goes."""
        return {"stage": self.stage, "step": self.step, "total_steps": self.total_steps,
                "seconds_per_step": self.seconds_per_step,
                "validation_done": self.validation_done, "validation_total": self.validation_total,
                "seconds_per_validation_sample": self.seconds_per_validation_sample}


class MetricsSink:
    """Metric points: appended on the training thread, drained into events by the ticker."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._points: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        # Line-buffered: one small write per logged step, so a worker killed with SIGKILL still
        # leaves every step it logged on disk (post-mortems and the recovery tests read it).
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def add(self, point: dict[str, Any]) -> None:
        with self._lock:
            self._points.append(point)
            self._file.write(json.dumps(point) + "\n")

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            points, self._points = self._points, []
        return points

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class Ticker:
    """Background thread: a heartbeat every `heartbeat_interval` s, a metrics batch every
    `flush_interval` s; runs from start-up through model loading to the end."""

    def __init__(self, reporter: Any, state: JobState, sink: MetricsSink,
                 heartbeat_interval: float, flush_interval: float) -> None:
        self.reporter, self.state, self.sink = reporter, state, sink
        self.heartbeat_interval = heartbeat_interval
        self.flush_interval = flush_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-worker-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush_metrics(self) -> None:
        points = self.sink.drain()
        if points:
            self.reporter.emit(EventType.METRICS, {"points": points})

    def heartbeat(self) -> None:
        self.reporter.emit(EventType.HEARTBEAT, self.state.progress())

    def _run(self) -> None:
        now = time.monotonic()
        next_beat, next_flush = now + self.heartbeat_interval, now + self.flush_interval
        wanted = self.state.heartbeat_wanted
        while True:
            timeout = max(0.0, min(next_beat, next_flush) - time.monotonic())
            wanted.wait(timeout)  # stop() sets it too
            if self._stop.is_set():
                return
            try:
                now = time.monotonic()
                if now >= next_flush:
                    self.flush_metrics()
                    next_flush = now + self.flush_interval
                if wanted.is_set() or now >= next_beat:
                    wanted.clear()
                    self.heartbeat()
                    next_beat = now + self.heartbeat_interval
            except Exception:  # never let a reporting hiccup kill the ticker
                logger.exception("ticker failed")

    def stop(self) -> None:
        self._stop.set()
        self.state.heartbeat_wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush_metrics()


class CheckpointUploader:
    """Commits local Trainer checkpoint folders to the store in a background thread.

    Order per checkpoint: files, then manifest (stores.commit_checkpoint), then the
    `checkpoint_saved` event, then pruning the store to `keep` and deleting older local folders.
    The newest local folder stays (Trainer's resume source if the store is unreachable).
    """

    def __init__(self, store: Any, reporter: Any, state: JobState, attempt: int, keep: int) -> None:
        self.store, self.reporter, self.state = store, reporter, state
        self.attempt, self.keep = attempt, keep
        self._queue: queue.Queue[tuple[int, Path] | None] = queue.Queue()
        self._cancelled = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gpu-worker-uploader", daemon=True)
        self._thread.start()

    def submit(self, step: int, folder: Path) -> None:
        self._queue.put((step, folder))

    def cancel(self) -> None:
        """Save nothing more: drop queued uploads (the one in flight finishes)."""
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted checkpoint is committed; re-raise an upload failure."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        from gpu_worker import stores

        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._cancelled.is_set() or self.error is not None:
                continue
            step, folder = item
            try:
                manifest = stores.commit_checkpoint(self.store, folder, step, self.attempt)
                size = sum(int(f.get("size", 0)) for f in manifest.get("files", {}).values())
                self.state.last_committed_step = step
                self.reporter.emit(EventType.CHECKPOINT_SAVED, {"step": step, "key": f"checkpoints/step-{step}",
                                                        "size_bytes": size})
                stores.prune_checkpoints(self.store, self.keep)
                for old in folder.parent.glob("checkpoint-*"):
                    if old != folder and _checkpoint_step(old) is not None and _checkpoint_step(old) < step:
                        shutil.rmtree(old, ignore_errors=True)
            except BaseException as exc:  # surfaced to the main thread by wait()
                logger.exception("checkpoint upload failed")
                self.error = exc


class ProgressCallback(TrainerCallback):
    """Measures the training steps' mean time for the heartbeats (the control plane's ETA) and
    asks for a heartbeat as soon as the first step's time is known (a slow machine may take
    minutes per step: waiting for the next interval would leave the ETA blank that long)."""

    def __init__(self, state: JobState) -> None:
        self.state = state
        self._start = time.monotonic()
        self._start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start, self._start_step = time.monotonic(), state.global_step
        self.state.seconds_per_step = None
        self.state.total_steps = state.max_steps
        self.state.heartbeat_wanted.set()

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self._start_step
        if done > 0:
            first = self.state.seconds_per_step is None
            # The session's mean (evaluations and checkpoint saves included): what the
            # remaining steps will cost, on average, on this machine.
            self.state.seconds_per_step = (time.monotonic() - self._start) / done
            if first:
                self.state.heartbeat_wanted.set()


class StepAborted(Exception):  # noqa: N818 - a control-flow signal, not an error condition
    """Raised at a decoder layer's boundary once a stop was asked for, to abandon the training
    step in flight: its forward and backward only touch activations and gradients, so the
    weights, optimizer and scheduler stay at the end of the last completed step."""


def decoder_layers(model: Any) -> list[Any]:
    """The model's repeated transformer blocks: the classes it names in `_no_split_modules`
    (every transformers model does, for device maps), else modules called `layers.<n>`."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        layers = [m for n, m in model.named_modules() if n.rsplit(".", 2)[-2:-1] == ["layers"]]
    return layers


def install_step_abort(model: Any, should_abort: Any) -> Any:
    """Make a training step stoppable between decoder layers, forward and backward.

    A forward pre-hook on every decoder layer raises StepAborted when `should_abort()` holds;
    the layer's output gets a gradient hook that does the same during backward. A stop is then
    noticed within one layer's forward or backward, not at the end of the step (minutes on a slow
    CPU). What cannot be interrupted: one layer's own computation (a big matmul inside it), the
    LM head and loss, the optimizer step, and a checkpoint being written. Returns a function that
    removes the hooks.
    """

    def check(*_: Any) -> None:
        if should_abort():
            raise StepAborted

    def watch_backward(module: Any, inputs: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        if getattr(tensor, "requires_grad", False):
            tensor.register_hook(lambda grad: check() or grad)

    handles = []
    for layer in decoder_layers(model):
        handles.append(layer.register_forward_pre_hook(lambda module, args: check()))
        handles.append(layer.register_forward_hook(watch_backward))

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return remove


def capture_rng_state() -> dict[str, Any]:
    """The generators a training step draws from (dropout, sampling), as Trainer saves them."""
    import random

    import numpy as np
    import torch

    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.random.get_rng_state()
    return states


def restore_rng_state(states: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.random.set_rng_state(states["cpu"])
    if "cuda" in states:
        torch.cuda.random.set_rng_state(states["cuda"])


def _checkpoint_step(folder: Path) -> int | None:
    try:
        return int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class WorkerCallback(TrainerCallback):
    """Connects the Trainer loop to the job: metric points, divergence, stop requests, uploads."""

    def __init__(self, *, state: JobState, sink: MetricsSink, reporter: Any,
                 uploader: CheckpointUploader, warmup_steps: int, gpu_stats: Any = None,
                 token_counter: Any = None) -> None:
        self.state, self.sink, self.reporter, self.uploader = state, sink, reporter, uploader
        self.warmup_steps = warmup_steps
        self.gpu_stats = gpu_stats
        self.token_counter = token_counter  # () -> (tokens, samples) since the last call
        self._reference_loss: float | None = None
        self._over = 0
        self._session_start_step = 0
        self._session_start = time.monotonic()
        self._last_log_time = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.state.total_steps = state.max_steps
        self.state.step = state.global_step
        self._session_start_step = state.global_step
        self._session_start = self._last_log_time = time.monotonic()
        if self.token_counter is not None:
            self.token_counter()  # reset

    def on_step_begin(self, args, state, control, **kwargs):
        self.state.step_in_progress = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        # The RNG as this step left it, which an emergency checkpoint of it (taken when the
        # next step is abandoned) must carry: what the Trainer's own checkpoint here would
        # save. Not the state as the next step begins: at an epoch's first step the new data
        # loader has drawn its seed from the global RNG by then, and the resume, which loads
        # the RNG before it starts the epoch, would draw it again (a 0.002 loss drift).
        self.state.rng_after_last_step = capture_rng_state()
        self.state.step_in_progress = False
        self.state.step = state.global_step
        if self.reporter.cancelled and self.state.signal_name is None:
            # Cancelled (410), the cancel's SIGTERM not here yet: stop exactly as on SIGTERM.
            self.state.signal_name = "cancel"
        if self.reporter.stop_requested and not self.reporter.cancelled:
            # Finished or superseded: the control plane wants nothing more from this attempt.
            self.state.stopped_by_control_plane = True
            self.uploader.cancel()
            control.should_save = False
            control.should_evaluate = False
            control.should_training_stop = True
        elif self.state.signal_name is not None:
            # SIGTERM/SIGINT: the Trainer saves a checkpoint right after this step, then stops.
            self.state.interrupted_during_training = True
            control.should_save = True
            control.should_evaluate = False
            control.should_training_stop = True
        return control

    def on_evaluate(self, args, state, control, **kwargs):
        # Held-out loss runs after on_step_end and its data loader draws from the global RNG;
        # the uninterrupted run goes on from here, and a checkpoint of this step saves this.
        self.state.rng_after_last_step = capture_rng_state()
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.state.stopped_by_control_plane:
            return control
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.uploader.submit(state.global_step, folder)
        self.state.last_saved_step = state.global_step
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs and "eval_loss" not in logs:
            return control  # end-of-train summary, runtime stats
        now = time.monotonic()
        elapsed = max(now - self._last_log_time, 1e-9)
        self._last_log_time = now
        step = state.global_step
        point: dict[str, Any] = {
            "step": step,
            "time": time.time(),  # when the step was logged (wall clock): reports may arrive much later
            "epoch": _finite(logs.get("epoch", state.epoch)),
            "train_loss": None, "eval_loss": None, "learning_rate": None, "grad_norm": None,
            "tokens_per_second": None, "samples_per_second": None,
            "gpu_memory_used_mb": None, "gpu_memory_total_mb": None, "gpu_utilization_pct": None,
            "eta_seconds": None, "total_steps": state.max_steps,
        }
        if "loss" in logs:
            loss = float(logs["loss"])
            self._check_divergence(loss, step)
            self.state.last_train_loss = loss
            if self.state.first_train_loss is None:
                self.state.first_train_loss = loss
            point["train_loss"] = loss
            point["learning_rate"] = _finite(logs.get("learning_rate"))
            point["grad_norm"] = _finite(logs.get("grad_norm"))
            if self.token_counter is not None:
                tokens, samples = self.token_counter()
                self.state.tokens_trained += tokens
                self.state.samples_trained += samples
                point["tokens_per_second"] = tokens / elapsed
                point["samples_per_second"] = samples / elapsed
            done = step - self._session_start_step
            if done > 0:
                per_step = (now - self._session_start) / done
                point["eta_seconds"] = max(0.0, (state.max_steps - step) * per_step)
        if "eval_loss" in logs:
            point["eval_loss"] = _finite(logs["eval_loss"])
            self.state.last_eval_loss = point["eval_loss"]
        if self.gpu_stats is not None:
            point.update(self.gpu_stats())
        self.sink.add(point)
        return control

    def _check_divergence(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            raise DivergenceError(f"training loss became {loss} at step {step}", step=step, loss=loss)
        if self._reference_loss is None:
            if step > self.warmup_steps:
                self._reference_loss = loss
            return
        if loss > DIVERGENCE_FACTOR * self._reference_loss:
            self._over += 1
            if self._over >= DIVERGENCE_PATIENCE:
                raise DivergenceError(
                    f"training loss {loss:.4g} at step {step} has stayed above {DIVERGENCE_FACTOR:g}x "
                    f"the post-warmup loss {self._reference_loss:.4g} for {self._over} logged steps",
                    step=step, loss=loss)
        else:
            self._over = 0


def cuda_stats() -> dict[str, Any]:
    import torch

    free, total = torch.cuda.mem_get_info()
    stats: dict[str, Any] = {"gpu_memory_used_mb": (total - free) / 2**20,
                             "gpu_memory_total_mb": total / 2**20}
    device = torch.cuda.current_device()
    try:
        # NVML numbers every GPU of the host and ignores CUDA_VISIBLE_DEVICES; torch maps its
        # device to NVML's index (the same mapping torch.cuda.utilization uses).
        index = torch.cuda._get_nvml_device_index(device)
    except Exception:
        index = device
    stats["gpu_utilization_pct"] = gpu_utilization_pct(index)
    return stats


_nvml_ready = False


def gpu_utilization_pct(nvml_index: int = 0, nvml: Any = None) -> int | None:
    """The utilisation (percent, over NVML's last sample period) of NVML device `nvml_index`.

    NVML comes from nvidia-ml-py (the `pynvml` module, installed in the GPU image) and the host
    driver's libnvidia-ml. None where either is missing (CPU runs, an image without it) or NVML
    fails: a metric point never fails for want of it.
    """
    global _nvml_ready
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None
    try:
        if not _nvml_ready:
            nvml.nvmlInit()  # once per process; it is reference-counted, never shut down here
            _nvml_ready = True
        handle = nvml.nvmlDeviceGetHandleByIndex(nvml_index)
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # NVMLError (no driver, lost device) and its many subclasses
        return None
