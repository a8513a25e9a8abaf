"""The deployment package runs: unzip it, `python inference.py`, answers to the example prompts.

A tiny random Llama (tests/tiny_model.py) with a real PEFT LoRA adapter stands in for the base
model, through the BASE_MODEL_PATH override the package's README documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from artifacts import packaging, services
from core import storage
from training.lifecycle import Status

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_base_and_adapter(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    base = build_tiny_model(root / "base")
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    adapter = root / "adapter"
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    return base, adapter


def test_the_package_answers_its_example_prompts(filesystem, make_job, owner, tiny_base_and_adapter, tmp_path):
    base, adapter = tiny_base_and_adapter
    job = make_job(owner, status=Status.COMPLETED)
    for path in adapter.iterdir():
        storage.save_file(storage.job_key(job.pk, f"adapter/{path.name}"), path)
    artifact = services.register_artifacts(job.pk)
    export = packaging.export_for(artifact, "deployment-package")

    with storage.open_read(export.key) as handle:
        zipfile.ZipFile(handle).extractall(tmp_path)
    package = tmp_path / "deployment-package"
    prompts = json.loads((package / "example_prompts.json").read_text())
    env = {**os.environ, "BASE_MODEL_PATH": str(base), "MAX_NEW_TOKENS": "6", "DEVICE": "cpu",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "inference.py"], cwd=package, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for number, item in enumerate(prompts, 1):
        assert f"### Prompt {number}: {item['prompt']}" in result.stdout
        assert f"### Answer {number}:" in result.stdout

    single = subprocess.run([sys.executable, "inference.py", "--prompt", "How do I save money?"],
                            cwd=package, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "### Prompt 1: How do I save money?" in single.stdout
