"""Runs one worker command and records its exit code: `python local_supervisor.py EXIT_FILE -- CMD...`.

The local executor starts this script (by file path, stdlib only, no Django) as the leader of a
new session, so the worker shares its process group and `killpg` reaches both. The worker
itself writes no exit status anywhere, and only a process's parent can read it; the launcher
(a Celery worker, the `train` command) may be gone or be a different process from the one that
polls, so this supervisor waits for the worker and writes its exit code to EXIT_FILE (tmp +
rename, so a reader never sees a partial file). A negative code is the signal that killed the
worker (Popen's convention). If the supervisor itself is SIGKILLed, no file appears and the
executor reports the worker as gone. Stop the worker by signalling the process group; the
supervisor ignores stop signals itself so that it outlives the worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: local_supervisor.py EXIT_FILE -- CMD [ARGS...]", file=sys.stderr)
        return 64
    exit_file, command = argv[0], argv[2:]

    def stay(signum: int, frame: object) -> None:
        # Stop requests go to the whole process group (LocalExecutor.cancel), so the worker
        # already has this signal; forwarding it would deliver it twice, and a second SIGTERM
        # that lands while the worker's interpreter shuts down kills it with -15 instead of
        # its own exit code. The supervisor only has to outlive the worker to record the code.
        # A Python handler, not SIG_IGN: ignored dispositions would be inherited at exec.
        pass

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
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
