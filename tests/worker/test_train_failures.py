"""How the worker ends when something is wrong: configuration, dataset, the control plane's 409,
divergence, out of memory, missing CUDA. Always one short stderr message and the contract's
exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpu_worker.contract import ExitCode
from tests.worker.conftest import REPO_ROOT, run_worker, start_worker, worker_env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpu_worker", *args], cwd=REPO_ROOT,
                          env=worker_env(**(env or {})), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("content, expected", [
    ("{not json", "invalid JSON at line 1"),
    ('{"job_id": "j"}', "missing required field(s): dataset"),
    ('{"job_id": "j", "dataset": "d.jsonl", "learning_rat": 1}', "unknown configuration field(s): learning_rat"),
    ('{"job_id": "j", "dataset": "d.jsonl", "lora_r": 0}', "lora_r: must be an integer >= 1"),
    ('{"job_id": "j", "dataset": "d.jsonl", "lora_r": "big"}', "lora_r"),
    ('{"job_id": "j", "dataset": "d.jsonl", "store": []}', "store"),
    ("[1, 2]", "configuration must be a JSON object"),
])
def test_a_bad_configuration_is_one_line_and_exit_2(tmp_path, content, expected):
    path = tmp_path / "job.json"
    path.write_text(content)
    result = run_cli("--config", str(path))
    assert result.returncode == ExitCode.USER_ERROR
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr


def test_no_configuration_at_all_says_how_to_give_one():
    result = run_cli()
    assert result.returncode == ExitCode.USER_ERROR
    assert "pass --config FILE or set GPU_WORKER_CONFIG" in result.stderr


def test_help_documents_every_field_and_the_doc_is_current():
    from gpu_worker.config import WorkerConfig

    result = run_cli("--help")
    assert result.returncode == 0
    for name in WorkerConfig.__dataclass_fields__:
        assert name in result.stdout
    doc = run_cli("--print-schema-doc").stdout
    assert doc == (REPO_ROOT / "docs" / "worker-config.md").read_text(), \
        "regenerate: python -m gpu_worker --print-schema-doc > docs/worker-config.md"


def test_a_bad_dataset_exits_2_with_the_line_report_before_any_model_loads(tmp_path, job_config, receiver):
    dataset = tmp_path / "bad.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    dataset.write_text("\n".join([
        json.dumps(good),
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}),
        json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}),
    ]) + "\n")
    config = job_config(dataset=str(dataset), base_model=str(tmp_path / "no-such-model"),
                        webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == ExitCode.USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    assert "line 2" in result.stderr and "line 3" in result.stderr
    types = [e["type"] for e in receiver.events]
    stages = [e["data"]["stage"] for e in receiver.events if e["type"] == "stage_changed"]
    assert stages == ["preprocessing"]  # the (missing) model was never looked at
    assert types[-1] == "error"
    error = receiver.events[-1]["data"]
    assert error["error_type"] == "dataset_format" and error["exit_code"] == ExitCode.USER_ERROR
    assert any("line 2" in p for p in error["details"]["problems"])


def test_409_stops_at_the_next_step_and_saves_nothing_more(tmp_path, job_config, receiver):
    config = job_config(max_steps=200, checkpoint_interval=5, eval_interval=0,
                        webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    proc = start_worker(config, tmp_path / "job.json")
    try:
        assert receiver.wait_for(lambda: any(e["type"] == "checkpoint_saved" for e in receiver.events), timeout=120)
        receiver.answer = 409  # finished or superseded: every report from now on is refused
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.STOPPED_BY_CONTROL_PLANE, stderr
    assert "stopped by the control plane" in stderr and "Traceback" not in stderr
    store = tmp_path / "store"
    assert not (store / "adapter").exists() and not (store / "reports").exists()
    assert not (tmp_path / "out" / "adapter").exists()
    committed = sorted(int(p.parent.name.split("-")[1]) for p in (store / "checkpoints").glob("step-*/manifest.json"))
    steps_run = max(json.loads(line)["step"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines())
    assert steps_run < 200
    # At most the checkpoint that was already being written when the 409 arrived.
    assert committed and committed[-1] >= steps_run - 5


def test_a_diverging_run_is_classified_and_exits_2(tmp_path, job_config, receiver, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A base model whose final norm is NaN: the very first loss is NaN.
    broken = tmp_path / "broken-model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(broken)
    config = job_config(base_model=str(broken), checkpoint_interval=0, eval_interval=0,
                        webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == ExitCode.USER_ERROR, result.stderr
    error = receiver.events[-1]["data"]
    assert error["error_type"] == "divergence", error
    assert "learning_rate" in error["suggested_fix"]
    assert error["details"]["step"] == 1


@pytest.mark.parametrize("losses, warmup, diverges_at", [
    ([6.0, 5.0, 4.0, 3.0], 0, None),
    ([6.0, 61.0, 5.0, 61.0, 61.0], 0, None),  # isolated spikes are tolerated
    ([6.0, 61.0, 62.0, 63.0], 0, 4),  # three logged points in a row above 10x the reference
    ([600.0, 6.0, 61.0, 61.0, 61.0], 1, 5),  # the reference is taken after warmup
    ([6.0, float("nan")], 0, 2),
    ([6.0, float("inf")], 0, 2),
])
def test_the_divergence_rule(losses, warmup, diverges_at):
    from gpu_worker.callbacks import WorkerCallback
    from gpu_worker.errors import DivergenceError

    callback = WorkerCallback(state=None, sink=None, reporter=None, uploader=None, warmup_steps=warmup)
    for step, loss in enumerate(losses, start=1):
        if step == diverges_at:
            with pytest.raises(DivergenceError):
                callback._check_divergence(loss, step)
            return
        callback._check_divergence(loss, step)
    assert diverges_at is None


def test_memory_limit_gives_a_real_out_of_memory_error(tmp_path, job_config, receiver):
    config = job_config(memory_limit_mb=64, webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == ExitCode.USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    error = receiver.events[-1]["data"]
    assert error["error_type"] == "out_of_memory", error


def test_asking_for_cuda_without_it_is_an_infrastructure_error(tmp_path, job_config, receiver):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = job_config(device="cuda", webhook_url=receiver.events_url, webhook_secret=receiver.secret)
    result = run_worker(config, tmp_path / "job.json", GPU_WORKER_DEBUG="0")
    assert result.returncode == ExitCode.INFRASTRUCTURE_ERROR, result.stderr
    assert receiver.events[-1]["data"]["error_type"] == "cuda_unavailable"


def test_the_configuration_can_come_from_the_environment():
    result = run_cli(env={"GPU_WORKER_CONFIG": '{"job_id": "j", "dataset": "d.jsonl", "device": "tpu"}'})
    assert result.returncode == ExitCode.USER_ERROR
    assert "device: must be auto, cpu or cuda" in result.stderr
