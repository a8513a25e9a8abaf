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

from artifacts import services, storage
from artifacts.models import DownloadAudit
from tests.worker.conftest import run_worker, write_chat_dataset
from tests.worker.receiver import Receiver
from training.lifecycle import Status
from training.models import TrainingJob

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
            "store": services.worker_store_spec(job.pk, base_url=live_server.url),
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
