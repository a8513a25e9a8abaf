"""`manage.py train` as a user runs it: a subprocess with no services configured (SQLite in a tmp
dir, tasks in-process, the webhook served by the command itself)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_train(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER", "PUBLIC_BASE_URL", "CI")}
    env.update({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "var" / "media"),
        "WORKER_DEVICE": "cpu",
    })
    return subprocess.run([sys.executable, "manage.py", "train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_train_runs_a_job_to_completion_and_prints_a_summary(tmp_path, tiny_model, tiny_dataset):
    result = run_train(tmp_path, "--dataset", str(tiny_dataset), "--base-model", str(tiny_model),
                       "--max-steps", "4", "--set", "max_seq_length=128", "--set", "per_device_batch_size=2",
                       "--name", "cli test", "--wait")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "24 records" in out
    assert "Estimate:" in out
    assert "completed after" in out
    assert "Final loss: train" in out
    assert "Perplexity:" in out and "→" in out
    assert "Cost: $0.00" in out
    # The log lines the command quiets (the embedded server's django.setup() used to undo that).
    assert "Gone:" not in result.stderr and "refused heartbeat" not in result.stderr
    adapter_line = next(line for line in out.splitlines() if "Adapter:" in line)
    adapter = Path(adapter_line.split("Adapter:", 1)[1].strip())
    assert adapter.is_relative_to(tmp_path / "var" / "media" / "jobs")
    assert (adapter / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_cancels_at_once_and_says_which_checkpoint_was_saved(tmp_path, tiny_model, tiny_dataset):
    """Ctrl-C mid-training: the worker abandons its step, checkpoints the last completed one (no
    periodic checkpoint is due), the command exits 130 and its summary names that step."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER", "PUBLIC_BASE_URL", "CI")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
                "MEDIA_ROOT": str(tmp_path / "var" / "media"), "WORKER_DEVICE": "cpu"})
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "train", "--dataset", str(tiny_dataset), "--base-model", str(tiny_model),
         "--max-steps", "500", "--set", "max_seq_length=128", "--set", "per_device_batch_size=2",
         "--set", "checkpoint_interval=1000", "--name", "ctrl-c test", "--wait"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        step = 0
        while step < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "training never reached step 3"
            time.sleep(0.5)
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(tmp_path / "var" / "db.sqlite3") as db:
                row = db.execute("select max(current_step) from training_trainingjob").fetchone()
                step = (row[0] or 0) if row else 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "cancelled after" in out, out
    saved = next(line for line in out.splitlines() if "Checkpoint:" in line)
    assert "saved" in saved and "none" not in saved, out
    saved_step = int(saved.split("step", 1)[1].split()[0])
    assert 3 <= saved_step < 500
    # The checkpoint is really in the job's store.
    assert list((tmp_path / "var" / "media" / "jobs").rglob(f"step-{saved_step}/manifest.json")), out


def test_train_refuses_an_invalid_dataset_with_a_line_report_and_keeps_nothing(tmp_path, tiny_model):
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
                       '{"messages": [{"role": "user"}]}\n'
                       'not json\n')
    result = run_train(tmp_path, "--dataset", str(dataset), "--base-model", str(tiny_model), "--wait")
    assert result.returncode == 2
    assert "line 2" in result.stderr and "line 3" in result.stderr
    db = sqlite3.connect(tmp_path / "var" / "db.sqlite3")
    assert db.execute("select count(*) from training_trainingfile").fetchone() == (0,)
    assert db.execute("select count(*) from training_trainingjob").fetchone() == (0,)
    assert list((tmp_path / "var" / "media").rglob("*.jsonl")) == []


def test_train_explains_an_unknown_base_model(tmp_path, tiny_dataset):
    result = run_train(tmp_path, "--dataset", str(tiny_dataset), "--base-model", "no-such-model")
    assert result.returncode == 2
    assert "neither a model folder nor a catalogue slug" in result.stderr


def test_train_without_wait_prints_the_job_id_and_how_to_watch_it(tmp_path, tiny_model, tiny_dataset):
    # Without --wait the job starts (a detached worker) and the command returns at once.
    result = run_train(tmp_path, "--dataset", str(tiny_dataset), "--base-model", str(tiny_model),
                       "--max-steps", "1", "--set", "max_seq_length=128", "--set", "validation_max_samples=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Started job" in result.stdout and "Watch it:" in result.stdout
    _stop_background_workers(tmp_path)


def _stop_background_workers(tmp_path: Path) -> None:
    import json
    import signal

    for pid_file in (tmp_path / "var" / "media" / "work").rglob("worker.pid"):
        ref = json.loads(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ref["pgid"], signal.SIGKILL)
