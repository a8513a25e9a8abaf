"""A whole job on the tiny model, reporting to the signed-HTTP receiver and storing through it."""

from __future__ import annotations

import json
import subprocess
import sys

from gpu_worker import signing
from tests.worker.conftest import (
    REPO_ROOT,
    metric_points,
    read_metrics_file,
    run_worker,
    worker_env,
)

STAGES = ["preprocessing", "model_loading", "training", "finalizing", "validating"]


def test_it_trains_reports_and_uploads_a_loadable_adapter(tmp_path, job_config, receiver):
    config = job_config(
        webhook_url=receiver.events_url, webhook_secret=receiver.secret,
        store={"kind": "http", "api_url": receiver.store_url},
    )
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no progress bars or log dicts: events carry everything

    events = receiver.events
    assert receiver.bad_signatures == 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["job_id"] == "job-test" and e["attempt"] == 1 for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed"
    assert events[0]["data"]["device"] == "cpu" and events[0]["data"]["quantization"] == "none"
    assert [e["data"]["stage"] for e in events if e["type"] == "stage_changed"] == STAGES
    assert types.index("validation_results") < types.index("completed")
    assert "heartbeat" in types

    saved = [e["data"] for e in events if e["type"] == "checkpoint_saved"]
    assert [s["step"] for s in saved] == [5, 10, 12]
    assert saved[0]["key"] == "checkpoints/step-5" and saved[0]["size_bytes"] > 0

    points = metric_points(events)
    train_points = [p for p in points if p["train_loss"] is not None]
    assert [p["step"] for p in train_points] == list(range(1, 13))
    assert all(p["total_steps"] == 12 and p["tokens_per_second"] > 0 for p in train_points)
    assert train_points[-1]["eta_seconds"] == 0
    assert [p["step"] for p in points if p["eval_loss"] is not None] == [5, 10, 12]
    assert read_metrics_file(tmp_path / "out" / "metrics.jsonl") == points

    perplexity = next(e for e in events if e["type"] == "validation_results")["data"]["evaluators"]["perplexity"]
    assert perplexity["base"] > 1 and perplexity["trained"] > 1 and perplexity["samples"] == 8
    assert abs(perplexity["improvement_pct"] - (perplexity["base"] - perplexity["trained"]) / perplexity["base"] * 100) < 1e-9

    completed = events[-1]["data"]
    assert completed["steps"] == 12 and completed["adapter_key"] == "adapter"
    assert completed["final_train_loss"] == train_points[-1]["train_loss"]
    assert completed["summary"]["validation"]["perplexity"] == perplexity

    # The store: adapter, reports, and only the newest keep_checkpoints (3) committed checkpoints.
    blobs = receiver.blob_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (blobs / "adapter" / name).is_file()
    summary = json.loads((blobs / "reports" / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["config"].get("webhook_secret") is None
    # What trained it, for the validation report's appendix.
    import peft
    import transformers
    assert summary["versions"]["python"] == sys.version.split()[0]
    assert (summary["versions"]["transformers"], summary["versions"]["peft"]) == (transformers.__version__, peft.__version__)
    assert (blobs / "reports" / "metrics.jsonl").read_text() == (tmp_path / "out" / "metrics.jsonl").read_text()
    checkpoint = blobs / "checkpoints" / "step-12"
    assert {"manifest.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt",
            "rng_state.pth", "trainer_state.json"} <= {p.name for p in checkpoint.iterdir()}
    assert not (checkpoint / "tokenizer.json").exists()  # checkpoints stay small
    # Locally only the newest checkpoint folder is kept.
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-12"]

    # The adapter loads with PEFT in a fresh process, from what the store holds.
    script = (
        "import sys, torch\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "base = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "model = PeftModel.from_pretrained(base, sys.argv[2])\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[2])\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'save money'}], add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=3, do_sample=False)\n"
        "print('LOADED', out.shape[1] > ids['input_ids'].shape[1])\n"
    )
    check = subprocess.run([sys.executable, "-c", script, config["base_model"], str(blobs / "adapter")],
                           cwd=REPO_ROOT, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "LOADED True" in check.stdout


def test_every_event_carries_a_valid_signature(tmp_path, job_config, receiver):
    receiver.fail_next(2, status=503)  # the worker retries; nothing is lost or re-signed wrongly
    config = job_config(webhook_url=receiver.events_url, webhook_secret=receiver.secret, max_steps=3,
                        checkpoint_interval=0, evaluators=[])
    result = run_worker(config, tmp_path / "job.json")
    assert result.returncode == 0, result.stderr
    assert receiver.bad_signatures == 0
    assert receiver.events[-1]["type"] == "completed"
    assert not [e for e in receiver.events if e["type"] == "checkpoint_saved"]
    # The receiver verified every delivery; check one by hand against the shared signer too.
    body = json.dumps(receiver.events[0], separators=(",", ":")).encode()
    headers = signing.signed_headers(receiver.secret, body, msg_id=receiver.events[0]["id"])
    assert signing.verify(receiver.secret, headers, body) == receiver.events[0]["id"]
