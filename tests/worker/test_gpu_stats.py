"""GPU utilisation comes from NVML (pynvml, from nvidia-ml-py in the GPU image) (issue 18, item 11).

No GPU here: NVML is a fake module object with the few functions the worker calls, the one part
that cannot run for real on this machine. Without pynvml (CPU, or an image without it) the value
is None, never an error.
"""

from __future__ import annotations

import sys
import types

import pytest

from gpu_worker import callbacks


class FakeNVMLError(Exception):
    pass


def fake_nvml(utilisation: int = 87, fail: str | None = None) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    calls: list[tuple] = []

    def call(name, *args):
        calls.append((name, *args))
        if fail == name:
            raise FakeNVMLError(name)

    module.NVMLError = FakeNVMLError
    module.nvmlInit = lambda: call("nvmlInit")
    module.nvmlDeviceGetHandleByIndex = lambda i: call("by_index", i) or f"handle:{i}"
    module.nvmlDeviceGetUtilizationRates = lambda h: call("rates", h) or types.SimpleNamespace(gpu=utilisation,
                                                                                            memory=40)
    module.calls = calls
    return module


@pytest.fixture(autouse=True)
def fresh_nvml_state(monkeypatch):
    monkeypatch.setattr(callbacks, "_nvml_ready", False)


def test_without_pynvml_utilisation_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert callbacks.gpu_utilization_pct() is None


def test_with_nvml_utilisation_is_the_device_reading():
    nvml = fake_nvml(87)
    assert callbacks.gpu_utilization_pct(2, nvml=nvml) == 87
    assert ("by_index", 2) in nvml.calls
    callbacks.gpu_utilization_pct(2, nvml=nvml)
    assert [c for c in nvml.calls if c[0] == "nvmlInit"] == [("nvmlInit",)]  # initialised once


@pytest.mark.parametrize("failing", ["nvmlInit", "by_index", "rates"])
def test_an_nvml_error_is_none_not_a_crash(failing):
    assert callbacks.gpu_utilization_pct(0, nvml=fake_nvml(fail=failing)) is None


def test_cuda_stats_reports_nvml_utilisation(monkeypatch):
    import torch

    nvml = fake_nvml(63)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (6 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    # CUDA_VISIBLE_DEVICES=3: torch's device 0 is NVML's device 3.
    monkeypatch.setattr(torch.cuda, "_get_nvml_device_index", lambda device: 3, raising=False)
    stats = callbacks.cuda_stats()
    assert stats == {"gpu_memory_used_mb": 74 * 1024.0, "gpu_memory_total_mb": 80 * 1024.0,
                     "gpu_utilization_pct": 63}
    assert ("by_index", 3) in nvml.calls
