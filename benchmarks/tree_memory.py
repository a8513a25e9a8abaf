"""Run a command and report the peak resident memory of its whole process tree, and its wall time.

    python benchmarks/tree_memory.py -- bash scripts/demo.sh

`/usr/bin/time -v` reports the largest single process's peak (ru_maxrss of the biggest child),
not what the tree holds at once: the demo is the `manage.py train` process (Django, the
embedded webhook server) plus the worker subprocess it supervises. This samples the sum of the
tree's RSS from /proc every `--interval` seconds (Linux only) and prints, last, the peak sum, when
it came and which processes made it. A sample can miss a peak shorter than the interval; the
per-process high-water marks (VmHWM) are printed beside it, and their sum bounds the tree's peak
from above.

A sum of RSS counts twice the pages two processes share (the same torch and Python libraries
mapped by both): it is the conservative figure. The peak sum of PSS (each shared page divided
among the processes that map it, from /proc/PID/smaps_rollup) is what the tree takes from the
machine, and is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended between the listing and the read
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children(pid)
    return pids


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    started = time.monotonic()
    process = subprocess.Popen(command)
    peak_kb, peak_at, peak_parts, peak_pss, peak_pss_at, hwm = 0, 0.0, [], 0, 0.0, {}
    while process.poll() is None:
        parts, pss = [], 0
        for pid in tree(process.pid):
            rss = status_kb(pid, "VmRSS")
            if rss:
                parts.append((pid, rss))
                pss += pss_kb(pid)
                hwm[pid] = (max(hwm.get(pid, (0, ""))[0], status_kb(pid, "VmHWM")), command_line(pid))
        total = sum(rss for _, rss in parts)
        now = time.monotonic() - started
        if total > peak_kb:
            peak_kb, peak_at, peak_parts = total, now, [(pid, rss, command_line(pid)) for pid, rss in parts]
        if pss > peak_pss:
            peak_pss, peak_pss_at = pss, now
        time.sleep(args.interval)
    wall = time.monotonic() - started
    print("\n--- process tree memory ---", file=sys.stderr)
    for pid, rss, cmd in sorted(peak_parts, key=lambda p: -p[1]):
        print(f"  at the peak: pid {pid} {rss / 1024:8.1f} MiB  {cmd}", file=sys.stderr)
    for pid, (kb, cmd) in sorted(hwm.items(), key=lambda p: -p[1][0])[:6]:
        print(f"  high-water:  pid {pid} {kb / 1024:8.1f} MiB  {cmd}", file=sys.stderr)
    print(f"exit code {process.returncode}; wall {clock(wall)}; sum of high-water marks "
          f"{sum(kb for kb, _ in hwm.values()) / 1024:.0f} MiB", file=sys.stderr)
    print(f"peak tree PSS {peak_pss / 1024:.0f} MiB ({peak_pss / 1024 / 1024:.2f} GiB) at {clock(peak_pss_at)}",
          file=sys.stderr)
    print(f"peak tree RSS {peak_kb / 1024:.0f} MiB ({peak_kb / 1024 / 1024:.2f} GiB) at {clock(peak_at)}",
          file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
