"""Dataset validation: time and peak memory of validating an upload, streaming against the old path.

    python benchmarks/upload_validation.py                       # 300 MB JSONL + 5 MB one-record file
    python benchmarks/upload_validation.py --size-mb 30 --compare-mb 10     # quicker
    python benchmarks/upload_validation.py --baseline-on-big --baseline-timeout 240

What is measured is what the `validate_dataset` task does with the stored bytes: every record
checked and normalised to chat (gpu_worker.data), token statistics with the embedded
SmolLM2-135M-Instruct tokenizer, and the warnings for records the maximum sequence length (2048)
cuts. The database writes (progress every 2 s, one final row) are left out; they are constant.

- ours: `gpu_worker.data.scan_dataset` over the file (records one at a time) feeding
  `training.services.datasets.TokenCounter` (a histogram of lengths), as validate_stored_file runs it.
- baseline: the code this replaced, copied below: the whole file read and decoded, every record
  parsed into a list, every conversation kept, then token statistics over that list (one
  tokenizer call per rendering) with every length kept and sorted.

Both run on the one-record file and on a --compare-mb file (30 MB: the baseline takes minutes
per 100 MB); ours alone on the --size-mb file for the targets (--baseline-on-big adds the
baseline there, stopped at --baseline-timeout).

Each run is a fresh child process (so one run's memory is not another's); peak memory is the
child's ru_maxrss (resource.getrusage in the child, os.wait4 in the parent for a child killed at
the timeout). "work" memory is the peak minus the child's RSS after imports and tokenizer load.
The files are synthetic chat records generated here (seeded): multi-turn support conversations
of about 1.6 KB, and one record whose assistant answer is 5 MB.

Targets (issue 18): the 300 MB file validated in under 5 minutes with peak memory under 500 MB;
the 5 MB one-record file under 100 MB. The ratios (baseline / ours) are printed last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_SECONDS = 300.0
TARGET_PEAK_MB = 500.0
TARGET_HUGE_PEAK_MB = 100.0
SUPPORT_TEXT = ("the order arrived late and the box was damaged so I would like a refund or a replacement please "
                "tell me which one is faster and whether I need to send anything back first thanks of course I "
                "am sorry about that we can ship a replacement today at no cost or refund you")
WORDS = tuple(SUPPORT_TEXT.split())


# --- Synthetic data --------------------------------------------------------------------------


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_chat_jsonl(path: Path, size_mb: float, seed: int = 0) -> int:
    rng, target, written, records = random.Random(seed), int(size_mb * 1024 * 1024), 0, 0
    with path.open("w") as out:
        while written < target:
            messages = [{"role": "system", "content": "You are a patient support agent for an online shop."}]
            for _ in range(rng.choice((1, 1, 2, 3))):
                messages.append({"role": "user", "content": sentence(rng, rng.randint(15, 60))})
                messages.append({"role": "assistant", "content": sentence(rng, rng.randint(30, 120))})
            line = json.dumps({"messages": messages}) + "\n"
            out.write(line)
            written += len(line)
            records += 1
    return records


def write_huge_record(path: Path, size_mb: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    words, target = [], int(size_mb * 1024 * 1024)
    length = 0
    while length < target:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    record = {"messages": [{"role": "user", "content": "Summarise everything you know."},
                           {"role": "assistant", "content": " ".join(words)}]}
    path.write_text(json.dumps(record) + "\n")


# --- The two implementations -----------------------------------------------------------------


def run_ours(path: Path) -> dict:
    from gpu_worker import data
    from training.services.datasets import STATS_MAX_SEQ_LENGTH, TokenCounter

    counter = TokenCounter(STATS_MAX_SEQ_LENGTH)
    with path.open("rb") as handle:
        scan = data.scan_dataset(handle, name=path.name, on_conversation=counter.add)
    stats, model = counter.result()
    return {"records": scan.records, "problems": scan.problem_count, "warnings": counter.warning_count,
            "total_tokens": stats.get("total_tokens"), "trainable_tokens": stats.get("trainable_tokens"),
            "p95_length": stats.get("p95_length"), "model": model}


def _old_render(tokenizer, messages, generation_prompt):
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _old_common_prefix(a, b):
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def old_assistant_spans(tokenizer, messages, trainable_turns=None):
    """gpu_worker.data.assistant_spans as it was (one tokenizer call per rendering)."""
    full = _old_render(tokenizer, messages, False)
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    turns = assistant if trainable_turns is None else sorted(set(trainable_turns) & set(assistant))
    spans = []
    for i in turns:
        start = _old_common_prefix(full, _old_render(tokenizer, messages[:i], True)) if i > 0 else 0
        emptied = [*messages[:i], {"role": "assistant", "content": ""}]
        start = max(start, _old_common_prefix(full, _old_render(tokenizer, emptied, False)))
        end = len(full) if i == len(messages) - 1 else _old_common_prefix(full, _old_render(tokenizer, messages[: i + 1], False))
        eos = getattr(tokenizer, "eos_token_id", None)
        if end <= start and eos is not None:
            end = next((j + 1 for j in range(start, len(full)) if full[j] == eos), len(full))
        while end > start and not tokenizer.decode([full[end - 1]]).strip():
            end -= 1
        spans.append((start, end))
    return full, spans


def run_baseline(path: Path) -> dict:
    """The previous control-plane path (load_dataset_file + count_tokens), copied."""
    from gpu_worker import data
    from training.services.datasets import STATS_MAX_SEQ_LENGTH, embedded_tokenizer

    text = path.read_bytes().decode("utf-8-sig")  # old _read_text
    records = []
    for number, line in enumerate(text.splitlines(), start=1):  # old _parse_jsonl
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            value = data._InvalidJSON(f"not valid JSON ({exc.msg} at column {exc.colno})")
        records.append(data._Record(value, number, None))
    objects = [r for r in records if isinstance(r.value, dict)]  # old _detect_format: all records
    votes = Counter(f for f in (data._record_format(r.value) for r in objects) if f is not None)
    fmt = next(f for f in data.FORMATS if votes[f] == max(votes.values()))
    problems = data._Problems()
    conversations = [c for r in records if (c := data._normalise(r, fmt, problems)) is not None]
    tokenizer = embedded_tokenizer()  # old token_statistics: every length kept, then sorted
    lengths, total, trainable = [], 0, 0
    for conversation in conversations:
        full, spans = old_assistant_spans(tokenizer, conversation.messages, conversation.trainable_turns)
        lengths.append(len(full))
        total += min(len(full), STATS_MAX_SEQ_LENGTH)
        trainable += sum(max(0, min(end, STATS_MAX_SEQ_LENGTH) - start) for start, end in spans)
    ordered = sorted(lengths)
    p95 = ordered[max(math.ceil(0.95 * len(ordered)), 1) - 1] if ordered else 0
    return {"records": len(records), "problems": problems.count,
            "warnings": sum(n > STATS_MAX_SEQ_LENGTH for n in lengths), "total_tokens": total,
            "trainable_tokens": trainable, "p95_length": p95}


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(which: str, path: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from training.services.datasets import embedded_tokenizer

    embedded_tokenizer()  # loaded once per worker process; not part of a validation
    ready = rss_mb()
    start = time.perf_counter()
    result = (run_ours if which == "ours" else run_baseline)(path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "ready_mb": ready, **result}), flush=True)


def measure(which: str, path: Path, timeout: float) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--child", which, "--file", str(path)],
                            stdout=subprocess.PIPE, env=env, cwd=REPO, text=True)
    start = time.monotonic()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            os.kill(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            return {"timed_out": True, "seconds": time.monotonic() - start, "peak_mb": usage.ru_maxrss / 1024}
        time.sleep(0.5)
    out = proc.stdout.read().strip().splitlines()
    if os.waitstatus_to_exitcode(status) != 0 or not out:
        raise SystemExit(f"{which} on {path.name} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"timed_out": False, **json.loads(out[-1])}


def show(label: str, which: str, result: dict) -> None:
    if result["timed_out"]:
        print(f"  {label:<10} {which:<9} did not finish in {result['seconds']:.0f} s; peak {result['peak_mb']:.0f} MB when stopped")
        return
    work = result["peak_mb"] - result["ready_mb"]
    print(f"  {label:<10} {which:<9} {result['seconds']:7.1f} s   peak {result['peak_mb']:6.0f} MB "
          f"(work +{work:5.0f} MB over {result['ready_mb']:.0f} MB after imports)   "
          f"{result['records']:,} records, {result['total_tokens']:,} tokens ({result['trainable_tokens']:,} trained), "
          f"p95 {result['p95_length']}, "
          f"{result['warnings']} cut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=300.0, help="size of the valid JSONL file")
    parser.add_argument("--huge-mb", type=float, default=5.0, help="size of the one-record file")
    parser.add_argument("--compare-mb", type=float, default=30.0,
                        help="size of the file both implementations validate, for the ratio")
    parser.add_argument("--baseline-on-big", action="store_true",
                        help="also run the baseline on the big file (slow: stopped at --baseline-timeout)")
    parser.add_argument("--baseline-timeout", type=float, default=600.0,
                        help="stop a baseline run after this many seconds (reported as a lower bound)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file)
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="upload-validation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    big, huge = workdir / "chats.jsonl", workdir / "one-huge-record.jsonl"
    compare = workdir / "chats-compare.jsonl"
    records = write_chat_jsonl(big, args.size_mb)
    write_chat_jsonl(compare, args.compare_mb)
    write_huge_record(huge, args.huge_mb)
    print(f"files: {big.name} {big.stat().st_size / 2**20:.0f} MB ({records:,} records); "
          f"{huge.name} {huge.stat().st_size / 2**20:.1f} MB (1 record); cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")

    results = {}
    runs = [("huge", huge, True), (f"{args.compare_mb:g} MB", compare, True), ("big", big, args.baseline_on_big)]
    for label, path, with_baseline in runs:
        results[(label, "ours")] = measure("ours", path, 1800.0)
        show(label, "ours", results[(label, "ours")])
        if with_baseline:
            results[(label, "baseline")] = measure("baseline", path, args.baseline_timeout)
            show(label, "baseline", results[(label, "baseline")])

    ours_big, ours_huge = results[("big", "ours")], results[("huge", "ours")]
    huge_work = ours_huge["peak_mb"] - ours_huge["ready_mb"]
    print()
    print(f"targets: {args.size_mb:g} MB file {ours_big['seconds']:.0f} s (< {TARGET_SECONDS:.0f}: "
          f"{'met' if ours_big['seconds'] < TARGET_SECONDS else 'MISSED'}), peak {ours_big['peak_mb']:.0f} MB "
          f"(< {TARGET_PEAK_MB:.0f}: {'met' if ours_big['peak_mb'] < TARGET_PEAK_MB else 'MISSED'}); "
          f"one-record file peak {ours_huge['peak_mb']:.0f} MB, work +{huge_work:.0f} MB "
          f"(< {TARGET_HUGE_PEAK_MB:.0f}: {'met' if huge_work < TARGET_HUGE_PEAK_MB else 'MISSED'})")
    for label, _, _ in runs:
        if (label, "baseline") not in results:
            continue
        base, ours = results[(label, "baseline")], results[(label, "ours")]
        bound = ">" if base["timed_out"] else ""
        base_work = base["peak_mb"] - base.get("ready_mb", ours["ready_mb"])
        print(f"ratio {label} (baseline / ours): time {bound}{base['seconds'] / ours['seconds']:.2f}x, "
              f"peak memory {bound}{base['peak_mb'] / ours['peak_mb']:.2f}x, "
              f"work memory {bound}{base_work / max(ours['peak_mb'] - ours['ready_mb'], 1):.1f}x")


if __name__ == "__main__":
    main()
