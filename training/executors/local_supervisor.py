"""Runs one worker command and records its exit code:
`python local_supervisor.py EXIT_FILE [--grace SECONDS] -- CMD...`.

The local executor starts this script (by file path, stdlib only, no Django) as the leader of a
new session, so the worker shares its process group and `killpg` reaches both. The worker
itself writes no exit status anywhere, and only a process's parent can read it; the launcher
(a Celery worker, the `train` command) may be gone or be a different process from the one that
polls, so this supervisor waits for the worker and writes its exit code to EXIT_FILE (tmp +
rename, so a reader never sees a partial file). A negative code is the signal that killed the
worker (Popen's convention). If the supervisor itself is SIGKILLed, no file appears and the
executor reports the worker as gone.

Stopping: the executor sends SIGTERM to the process group and returns at once (a cancel must
not wait on the worker). The supervisor, which gets the same signal, ignores it for itself and
owns the escalation: if the worker is still running `--grace` seconds later (default 30) it is
sent SIGKILL, and once the worker has ended, whatever else is left of the group (a data-loader
child) is killed too. So a worker that ignores SIGTERM is stopped whether or not anyone is still
watching, and its exit code (-9) is still recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

DEFAULT_GRACE_SECONDS = 30.0


def parse(argv: list[str]) -> tuple[str, float, list[str]] | None:
    if "--" not in argv:
        return None
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1:]
    if not command or not head:
        return None
    grace = DEFAULT_GRACE_SECONDS
    if len(head) == 3 and head[1] == "--grace":
        try:
            grace = float(head[2])
        except ValueError:
            return None
    elif len(head) != 1:
        return None
    return head[0], grace, command


def others_in_group() -> list[int]:
    """Live members of this process group other than this process."""
    me, group, members = os.getpid(), os.getpgrp(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        print("usage: local_supervisor.py EXIT_FILE [--grace SECONDS] -- CMD [ARGS...]", file=sys.stderr)
        return 64
    exit_file, grace, command = parsed
    stop_requested = threading.Event()
    child: subprocess.Popen | None = None

    def escalate() -> None:
        if child is not None and child.returncode is None:
            # SIGKILL to a worker that has just exited but not yet been collected is harmless:
            # its pid cannot be reused before this process (its parent) waits for it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)

    def stay(signum: int, frame: object) -> None:
        # Stop requests go to the whole process group (LocalExecutor.cancel), so the worker
        # already has this signal; forwarding it would deliver it twice, and a second SIGTERM
        # that lands while the worker's interpreter shuts down kills it with -15 instead of
        # its own exit code. The supervisor outlives the worker to record the code, and arms
        # the SIGKILL that follows the grace period (once, however many signals arrive).
        # A Python handler, not SIG_IGN: ignored dispositions would be inherited at exec.
        if signum == signal.SIGHUP or stop_requested.is_set():
            return
        stop_requested.set()
        timer = threading.Timer(grace, escalate)
        timer.daemon = True
        timer.start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stay)
    child = subprocess.Popen(command)

    code = child.wait()
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{code}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, exit_file)
    if stop_requested.is_set():
        # The worker is gone; a child it left behind (it had the SIGTERM too) must not linger.
        for pid in others_in_group():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
