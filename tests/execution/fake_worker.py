"""A stand-in for `python -m gpu_worker` in executor tests: `fake_worker.py --config FILE`.

Reads the configuration JSON and obeys its "fake" object: {"sleep": seconds, "exit": code,
"on_term": code or null (null: ignore SIGTERM), "spawn_child": bool, "print": [lines for
stdout]}. Writes "started <pid>"
and, on SIGTERM, "term" to `<dir of config>/fake.trace`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    config_path = Path(sys.argv[sys.argv.index("--config") + 1])
    fake = json.loads(config_path.read_text()).get("fake", {})
    trace = config_path.parent / "fake.trace"

    def note(line: str) -> None:
        with open(trace, "a") as fh:
            fh.write(line + "\n")

    def on_term(signum, frame):
        note("term")
        if fake.get("on_term", 4) is not None:
            sys.exit(fake.get("on_term", 4))

    signal.signal(signal.SIGTERM, on_term)
    if fake.get("spawn_child"):
        # A grandchild in the same process group, like a data-loader process.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    note(f"started {os.getpid()}")
    for line in fake.get("print", []):
        print(line, flush=True)
    deadline = time.monotonic() + float(fake.get("sleep", 0))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return int(fake.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
