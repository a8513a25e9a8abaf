"""The whole path on both backends: the real worker (`python -m gpu_worker`) trains the tiny model
and stores checkpoints, adapter and reports through this API with nothing but its secret; the
control plane registers the artifact, builds the deployment package, and the package runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from django.test import Client
from rest_framework.test import APIClient

from artifacts import services
from artifacts.models import DownloadAudit
from core import storage
from tests.worker.conftest import run_worker, write_chat_dataset
from tests.worker.receiver import Receiver
from training.lifecycle import Status
from training.models import TrainingJob
from training.worker_storage import worker_store_spec

from .conftest import set_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_worker_to_customer(backend, live_server, make_job, owner, tiny_model, tmp_path):
    job = make_job(owner, secret="e2e-secret")
    with Receiver(tmp_path / "events", secret=job.secret) as events:
        config = {
            "job_id": str(job.pk), "attempt": 1,
            "dataset": str(write_chat_dataset(tmp_path / "chat.jsonl")),
            "base_model": str(tiny_model), "output_dir": str(tmp_path / "out"), "device": "cpu",
            "max_steps": 12, "per_device_batch_size": 4, "learning_rate": 1e-3,
            "checkpoint_interval": 5, "eval_interval": 5, "heartbeat_interval": 0.5,
            "metrics_flush_interval": 0.2, "webhook_url": events.events_url,
            "webhook_secret": job.secret,
            "store": worker_store_spec(job.pk, base_url=live_server.url),
        }
        result = run_worker(config, tmp_path / "job.json")
        assert result.returncode == 0, result.stderr[-4000:]
        validation = next(e["data"] for e in events.events if e["type"] == "validation_results")

    # Only the newest keep_checkpoints (3) committed checkpoints are left, each with its manifest.
    checkpoints = storage.list_dirs(f"jobs/{job.pk}/checkpoints/")
    assert checkpoints == ["step-10", "step-12", "step-5"]
    assert all(storage.exists(f"jobs/{job.pk}/checkpoints/{c}/manifest.json") for c in checkpoints)

    # Ingestion would do this on `completed` (transaction.on_commit).
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED, results={"validation": validation})
    artifact = services.register_artifacts(job.pk)
    assert artifact.adapter_path.endswith("adapter/adapter_model.safetensors")
    assert artifact.adapter_size_bytes > 0 and "tokenizer.json" in artifact.adapter_files
    assert artifact.metrics_summary["steps"] == 12
    assert artifact.perplexity_trained == validation["evaluators"]["perplexity"]["trained"]

    set_review(job, "approved")  # QA's approval releases the package to the owner
    api = APIClient()
    api.force_authenticate(owner)
    link = api.get(f"/api/training/jobs/{job.pk}/download/deployment-package").json()["url"]
    response = Client().get(link.split("testserver", 1)[1])
    if backend == "s3":
        assert response.status_code == 302
        import requests

        package_bytes = requests.get(response["Location"], timeout=60).content
    else:
        assert response.status_code == 200
        package_bytes = b"".join(response.streaming_content)
    assert DownloadAudit.objects.filter(job=job, kind="deployment-package").count() == 1

    zipfile.ZipFile(io.BytesIO(package_bytes)).extractall(tmp_path / "customer")
    package = tmp_path / "customer" / "deployment-package"
    env = {**os.environ, "BASE_MODEL_PATH": str(tiny_model), "MAX_NEW_TOKENS": "5", "DEVICE": "cpu",
           "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "inference.py"], cwd=package, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    prompts = json.loads((package / "example_prompts.json").read_text())
    assert run.stdout.count("### Answer ") == len(prompts) == 3


def test_a_resumed_attempt_takes_the_newest_committed_checkpoint_never_a_cut_off_one(
        backend, live_server, make_job, owner, tiny_model, tmp_path):
    """Attempt 1 commits checkpoints 4, 8 and 12 through the signed-URL store. Then an upload is
    cut off: checkpoint 16's weights are stored, its manifest never is. Attempt 2, a fresh
    process with an empty disk and only the job's secret, resumes from 12 (the newest committed
    one, fetched through the store), not from the half-written 16, which it later replaces with
    its own committed checkpoint."""
    job = make_job(owner, secret="resume-secret")
    dataset = str(write_chat_dataset(tmp_path / "chat.jsonl"))

    def attempt(n: int, max_steps: int) -> list[dict]:
        TrainingJob.objects.filter(pk=job.pk).update(attempt=n)
        with Receiver(tmp_path / f"events-{n}", secret=job.secret) as events:
            config = {
                "job_id": str(job.pk), "attempt": n, "dataset": dataset, "base_model": str(tiny_model),
                "output_dir": str(tmp_path / f"out-{n}"), "device": "cpu", "max_steps": max_steps,
                "per_device_batch_size": 4, "learning_rate": 1e-3, "checkpoint_interval": 4, "eval_interval": 0,
                "keep_checkpoints": 5, "heartbeat_interval": 0.5, "metrics_flush_interval": 0.2,
                "webhook_url": events.events_url, "webhook_secret": job.secret, "resume_from": "latest",
                "store": worker_store_spec(job.pk, base_url=live_server.url),
            }
            result = run_worker(config, tmp_path / f"job-{n}.json")
            assert result.returncode == 0, result.stderr[-4000:]
            return list(events.events)

    first = attempt(1, 12)
    assert not any(e["type"] == "resumed" for e in first)
    prefix = f"jobs/{job.pk}/checkpoints/"
    assert sorted(storage.list_dirs(prefix)) == ["step-12", "step-4", "step-8"]
    # The cut-off upload: the files of a newer checkpoint, and no manifest.
    for name in ("adapter_model.safetensors", "optimizer.pt", "trainer_state.json"):
        storage.save_bytes(f"{prefix}step-16/{name}", b"partial upload")
    assert not storage.exists(f"{prefix}step-16/manifest.json")

    second = attempt(2, 20)
    resumed = [e["data"] for e in second if e["type"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["resumed_from_step"] == 12
    steps = [p["step"] for e in second if e["type"] == "metrics" for p in e["data"]["points"]]
    assert min(steps) == 13 and max(steps) == 20  # no step before 13 trained again
    manifest = json.loads(storage.read_bytes(f"{prefix}step-16/manifest.json"))
    assert manifest["step"] == 16 and manifest["attempt"] == 2
    assert storage.read_bytes(f"{prefix}step-16/adapter_model.safetensors") != b"partial upload"
