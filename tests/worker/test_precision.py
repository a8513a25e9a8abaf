"""The compute precision follows the hardware: bf16 mixed precision where bf16 matrix multiplies
are fast (CUDA with bf16; CPUs with AMX or AVX-512-BF16), fp32 elsewhere; an explicit choice is
kept. A bf16 run learns what an fp32 run learns (within a stated tolerance), records its
precision, and resumes exactly within itself.

The hardware is replaced at one boundary only: the /proc/cpuinfo text that cpu_bf16_flags reads
(a pure function, tested with Hypothesis) or fast_bf16_available, the one probe behind `auto`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_worker import model_loading
from gpu_worker.config import ConfigError
from gpu_worker.contract import ExitCode
from tests.worker.conftest import (
    metric_points,
    read_metrics_file,
    run_worker,
    start_worker,
    train_losses,
)

# Flags a real x86 /proc/cpuinfo carries around the two that matter (AVX2-only EPYCs, AVX-512
# Xeons without bf16, ...): none of them means fast bf16.
OTHER_FLAGS = ["fpu", "sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
               "amx_tile", "amx_int8", "avx512_fp16", "bf16", "amx", "avx512bf16", "amx-bf16"]
FAST_FLAGS = sorted(model_loading.FAST_BF16_CPU_FLAGS)


def cpuinfo_text(cpus: list[list[str]]) -> str:
    """A /proc/cpuinfo-shaped text: one block per CPU, each with its `flags` line."""
    blocks = [f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\n"
              f"flags\t\t: {' '.join(flags)}\nbugs\t\t: spectre_v1\n" for i, flags in enumerate(cpus)]
    return "\n".join(blocks)


@given(st.lists(st.lists(st.sampled_from(OTHER_FLAGS + FAST_FLAGS), max_size=12), min_size=1, max_size=4))
def test_the_fast_bf16_flags_are_exactly_those_on_the_flags_lines(cpus):
    found = model_loading.cpu_bf16_flags(cpuinfo_text(cpus))
    assert found == {flag for flags in cpus for flag in flags} & model_loading.FAST_BF16_CPU_FLAGS


def test_a_flag_name_outside_a_flags_line_does_not_count():
    text = "model name\t: amx_bf16 avx512_bf16 marketing name\nflags\t\t: fpu avx2\n"
    assert model_loading.cpu_bf16_flags(text) == set()
    assert model_loading.cpu_bf16_flags("") == set()


def test_this_machines_answer_is_what_its_cpuinfo_says():
    # The real probe on the real file: no replacement at all.
    expected = bool(model_loading.cpu_bf16_flags(Path("/proc/cpuinfo").read_text()))
    assert model_loading.fast_bf16_available("cpu") is expected
    assert model_loading.choose_placement("cpu", cuda_available=False).precision == ("bf16" if expected else "fp32")


@pytest.mark.parametrize(("fast", "expected"), [(True, "bf16"), (False, "fp32")])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_follows_the_hardware(monkeypatch, device, fast, expected):
    asked = []

    def probe(dev: str) -> bool:
        asked.append(dev)
        return fast

    monkeypatch.setattr(model_loading, "fast_bf16_available", probe)
    placement = model_loading.choose_placement(device, "none", cuda_available=True, precision="auto")
    assert placement.precision == expected and placement.bf16 is (expected == "bf16")
    assert asked == [device]  # the probe is asked about the device the job runs on


def test_the_default_is_auto(monkeypatch):
    monkeypatch.setattr(model_loading, "fast_bf16_available", lambda device: True)
    assert model_loading.choose_placement("cpu", cuda_available=False).precision == "bf16"
    monkeypatch.setattr(model_loading, "fast_bf16_available", lambda device: False)
    assert model_loading.choose_placement("cpu", cuda_available=False).precision == "fp32"


@pytest.mark.parametrize("fast", [True, False])
def test_an_explicit_choice_is_kept_on_cpu_whatever_the_hardware(monkeypatch, fast):
    monkeypatch.setattr(model_loading, "fast_bf16_available", lambda device: fast)
    # bf16 on a CPU without the flags is emulated: slow, but correct, so it is honoured.
    assert model_loading.choose_placement("cpu", cuda_available=False, precision="bf16").precision == "bf16"
    assert model_loading.choose_placement("cpu", cuda_available=False, precision="fp32").precision == "fp32"


def test_bf16_on_a_gpu_without_it_is_refused_naming_the_field(monkeypatch):
    monkeypatch.setattr(model_loading, "fast_bf16_available", lambda device: False)
    with pytest.raises(ConfigError, match=r"^precision: .*use auto or fp32"):
        model_loading.choose_placement("cuda", "none", cuda_available=True, precision="bf16")
    assert model_loading.choose_placement("cuda", "none", cuda_available=True, precision="fp32").precision == "fp32"


def test_an_unknown_precision_is_a_config_error(job_config, tmp_path):
    result = run_worker(job_config(precision="fp16"), tmp_path / "job.json", timeout=120)
    assert result.returncode == ExitCode.USER_ERROR, result.stderr
    assert "precision: must be auto, bf16 or fp32 (got 'fp16')" in result.stderr


# ----- real runs on the tiny model -----

# bf16 keeps 8 bits of mantissa (relative rounding 2^-9, 0.2 %) on each matmul's inputs; the
# products accumulate in fp32 and the loss, norms and AdamW update stay fp32, so the rounding
# averages out in the loss: on this tiny model one forward's loss moves by ~6e-6 relative under
# bf16 autocast, and 12 training steps stay within ~3e-5 of fp32 (measured on an AVX2 CPU; the
# assertion message prints it). 1e-3 leaves room for other kernels (oneDNN AMX) and is still
# far below what the 12 steps move the loss by (~2 %), which the test checks too.
BF16_LOSS_TOLERANCE = 1e-3


def test_a_bf16_run_learns_what_an_fp32_run_learns_and_records_its_precision(tmp_path, job_config, receiver):
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        config = job_config(job_id=f"precision-{precision}", output_dir=str(out), precision=precision,
                            max_steps=12, eval_interval=0, checkpoint_interval=0, lora_dropout=0.0,
                            evaluators=[], store={"kind": "local", "root": str(tmp_path / f"store-{precision}")},
                            webhook_url=receiver.events_url, webhook_secret=receiver.secret)
        result = run_worker(config, tmp_path / f"{precision}.json")
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        events = [e for e in receiver.events if e["job_id"] == f"precision-{precision}"]
        started = next(e["data"] for e in events if e["type"] == "started")
        assert summary["precision"] == precision and started["precision"] == precision
        runs[precision] = (train_losses(read_metrics_file(out / "metrics.jsonl")), summary)

    (fp32, fp32_summary), (bf16, bf16_summary) = runs["fp32"], runs["bf16"]
    assert sorted(fp32) == sorted(bf16) == list(range(1, 13))
    worst = max(abs(bf16[s] - fp32[s]) / fp32[s] for s in fp32)
    print(f"bf16 vs fp32 train loss, worst relative difference over 12 steps: {worst:.2e}")
    assert worst < BF16_LOSS_TOLERANCE, f"bf16 train loss strays {worst:.2%} from fp32's"
    assert any(bf16[s] != fp32[s] for s in fp32), "the bf16 run computed exactly fp32's numbers: autocast was off"
    learned = fp32[1] - fp32[12]
    assert learned > 10 * worst * fp32[1], f"training moved the loss by {learned}: too little to tell precisions apart"
    assert bf16[1] - bf16[12] > learned / 2, "the bf16 run did not learn as the fp32 one did"
    held = (bf16_summary["final_eval_loss"], fp32_summary["final_eval_loss"])  # the end-of-run held-out loss
    assert None not in held, held
    assert abs(held[0] - held[1]) / held[1] < BF16_LOSS_TOLERANCE, held


def test_a_bf16_run_resumes_exactly_where_an_uninterrupted_bf16_run_goes(tmp_path, job_config, receiver):
    steps = 12

    def config(name: str, attempt: int = 1, store: str = "store"):
        return job_config(job_id=f"bf16-resume-{store}", output_dir=str(tmp_path / name), attempt=attempt,
                          precision="bf16", max_steps=steps, checkpoint_interval=4, eval_interval=0,
                          lora_dropout=0.1, per_device_batch_size=2, evaluators=[],
                          store={"kind": "local", "root": str(tmp_path / store)},
                          webhook_url=receiver.events_url, webhook_secret=receiver.secret)

    reference = run_worker(config("reference", store="reference-store"), tmp_path / "reference.json")
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = train_losses(read_metrics_file(tmp_path / "reference" / "metrics.jsonl"))

    first = start_worker(config("attempt1"), tmp_path / "attempt1.json")
    try:
        assert receiver.wait_for(lambda: any(e["type"] == "checkpoint_saved" and e["job_id"] == "bf16-resume-store"
                                             for e in receiver.events), timeout=120)
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == ExitCode.INTERRUPTED, stderr[-3000:]

    second = run_worker(config("attempt2", attempt=2), tmp_path / "attempt2.json")
    assert second.returncode == 0, second.stderr[-3000:]
    attempt2 = [e for e in receiver.events if e["job_id"] == "bf16-resume-store" and e["attempt"] == 2]
    resumed_from = next(e["data"] for e in attempt2 if e["type"] == "resumed")["resumed_from_step"]
    assert 4 <= resumed_from < steps
    resumed = train_losses(metric_points(attempt2))
    assert sorted(resumed) == list(range(resumed_from + 1, steps + 1))
    worst = max(abs(resumed[s] - expected[s]) for s in resumed)
    assert worst < 1e-4, f"the resumed bf16 run drifted from the uninterrupted one by {worst}"
    assert json.loads((tmp_path / "attempt2" / "summary.json").read_text())["precision"] == "bf16"
