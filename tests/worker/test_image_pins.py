"""The GPU image runs the training stack the tests run (issue 18, item 11).

There is no Docker engine here to build docker/worker.Dockerfile and train inside it, so this
compares pins: the worker image's requirements, the control plane's requirements.txt and the
versions installed in the environment the test suite runs must agree for every package whose
version changes what training does, and the image must not bring a torch of its own (a PyTorch
base image) under them.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINING_STACK = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "gguf"]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            found[match[1].lower()] = match[2]
    return found


def installed(name: str) -> str:
    return version(name).split("+")[0]  # 2.13.0+cpu here; the image's CUDA build is 2.13.0


@pytest.mark.parametrize("package", TRAINING_STACK)
def test_the_gpu_image_pins_the_tested_version(package):
    worker, control_plane = pins(ROOT / "docker/worker-requirements.txt"), pins(ROOT / "requirements.txt")
    assert package in worker, f"{package} is not pinned in docker/worker-requirements.txt"
    assert worker[package] == control_plane[package] == installed(package), (
        f"{package}: image {worker[package]}, requirements.txt {control_plane.get(package)}, "
        f"tested {installed(package)}")


def test_the_gpu_image_has_no_torch_of_its_own_and_the_tested_python():
    dockerfile = (ROOT / "docker/worker.Dockerfile").read_text()
    base = re.search(r"(?m)^FROM\s+(\S+)", dockerfile)[1]
    assert "pytorch" not in base.lower(), f"{base} brings its own torch"
    assert base.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}-"), base
    assert "-r worker-requirements.txt" in dockerfile


def test_the_web_image_installs_the_pinned_torch():
    web = (ROOT / "docker/web.Dockerfile").read_text()
    assert f'"torch=={pins(ROOT / "requirements.txt")["torch"]}"' in web


def test_the_gpu_image_has_the_nvml_bindings():
    assert "nvidia-ml-py" in pins(ROOT / "docker/worker-requirements.txt")
