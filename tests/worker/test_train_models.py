"""Base-model resolution, the shared conversion cache, and device/quantization placement."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from gpu_worker import model_loading
from gpu_worker.errors import CudaUnavailableError


def fake_convert(gguf_path: Path, dest: Path) -> None:
    """Stands in for the ~20 s GGUF conversion: slow enough for two processes to overlap."""
    log = Path(os.environ["FAKE_CONVERT_LOG"])
    with log.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(1.0)
    (dest / "config.json").write_text(json.dumps({"converted_by": os.getpid()}))
    (dest / "model.safetensors").write_bytes(b"x" * 1000)


def _convert_in_child(gguf: str, target: str, log: str, results) -> None:
    os.environ["FAKE_CONVERT_LOG"] = log
    path = model_loading.ensure_converted(Path(gguf), Path(target), fake_convert)
    results.put((os.getpid(), (path / "config.json").read_text()))


def test_two_processes_converting_at_once_share_one_conversion(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    target, log = tmp_path / "cache" / "model", tmp_path / "convert.log"
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_convert_in_child, args=(str(gguf), str(target), str(log), results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    outputs = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert len(log.read_text().split()) == 1  # converted once
    assert outputs[0][1] == outputs[1][1]  # both see the same finished folder
    assert (target / model_loading.COMPLETE_MARKER).is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == [".model.lock", "model"]  # no temp folder left


def test_a_failed_conversion_leaves_nothing_half_written(tmp_path):
    def broken(gguf_path: Path, dest: Path) -> None:
        (dest / "config.json").write_text("{}")
        raise OSError("disk trouble")

    target = tmp_path / "cache" / "model"
    with pytest.raises(OSError):
        model_loading.ensure_converted(tmp_path / "x.gguf", target, broken)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".model.lock"]
    calls = []
    model_loading.ensure_converted(tmp_path / "x.gguf", target, lambda g, d: calls.append(d))
    model_loading.ensure_converted(tmp_path / "x.gguf", target, lambda g, d: calls.append(d))
    assert len(calls) == 1  # the finished copy is reused


def test_embedded_model_resolves_to_the_cached_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv(model_loading.CACHE_ENV_VAR, str(tmp_path / "cache"))
    seen = []
    path = model_loading.resolve_base_model("embedded:smollm2-135m-instruct", convert=lambda g, d: seen.append(g))
    assert Path(path) == tmp_path / "cache" / "smollm2-135m-instruct"
    assert seen[0].name == "SmolLM2-135M-Instruct.Q4_1.gguf" and seen[0].is_file()


def test_base_model_forms(tmp_path, tiny_model_dir):
    assert model_loading.resolve_base_model(str(tiny_model_dir)) == str(tiny_model_dir)
    assert model_loading.resolve_base_model("meta-llama/Meta-Llama-3-70B-Instruct") == "meta-llama/Meta-Llama-3-70B-Instruct"
    with pytest.raises(model_loading.ModelResolutionError, match="unknown embedded model"):
        model_loading.resolve_base_model("embedded:gpt-5")
    with pytest.raises(model_loading.ModelResolutionError, match="does not exist"):
        model_loading.resolve_base_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(model_loading.ModelResolutionError, match="no config.json"):
        model_loading.resolve_base_model(str(tmp_path / "empty"))


@pytest.mark.parametrize("device, quantization, checkpointing, cuda, expected", [
    ("auto", "auto", None, True, model_loading.Placement("cuda", "4bit", True)),
    ("auto", "auto", None, False, model_loading.Placement("cpu", "none", False)),
    ("cuda", "none", None, True, model_loading.Placement("cuda", "none", False)),
    ("auto", "auto", False, True, model_loading.Placement("cuda", "4bit", False)),
    ("cpu", "auto", True, True, model_loading.Placement("cpu", "none", True)),
])
def test_placement(device, quantization, checkpointing, cuda, expected):
    # The precision is chosen from the hardware (tests/worker/test_precision.py); fp32 here.
    assert model_loading.choose_placement(device, quantization, checkpointing, cuda_available=cuda,
                                          precision="fp32") == expected


@pytest.mark.parametrize("device, quantization", [("cuda", "auto"), ("auto", "4bit"), ("cpu", "4bit")])
def test_cuda_required_but_absent(device, quantization):
    with pytest.raises(CudaUnavailableError):
        model_loading.choose_placement(device, quantization, cuda_available=False)
