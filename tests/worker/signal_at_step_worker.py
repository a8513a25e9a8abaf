"""`python -m gpu_worker`, sending itself SIGTERM at an exact point of training:
`signal_at_step_worker.py --config FILE` with $SIGNAL_AT set to `begin:N` or `end:N`.

`begin:N`: as step N begins (its batches fetched, before its first forward), so step N is in
flight and abandoned, and the emergency checkpoint is of step N-1. `end:N`: as step N ends (after
its optimizer step), so the Trainer saves step N itself. A real signal to the real worker, through
its own handler; only the moment is fixed, where a test sending it from outside races the steps.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    from gpu_worker.callbacks import WorkerCallback

    when, step = os.environ["SIGNAL_AT"].split(":")
    at = int(step)

    def wrap(name: str, fires: object) -> None:
        original = getattr(WorkerCallback, name)

        def hooked(self, args, state, control, **kwargs):
            if fires(state.global_step):
                os.kill(os.getpid(), signal.SIGTERM)  # handled before the next bytecode
            return original(self, args, state, control, **kwargs)

        setattr(WorkerCallback, name, hooked)

    if when == "begin":  # global_step is the last completed step until step N ends
        wrap("on_step_begin", lambda done: done == at - 1)
    elif when == "end":  # the Trainer has counted step N already
        wrap("on_step_end", lambda done: done == at)
    else:
        raise SystemExit(f"SIGNAL_AT must be begin:N or end:N, not {os.environ['SIGNAL_AT']!r}")
    from gpu_worker.__main__ import main as worker_main

    return worker_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
