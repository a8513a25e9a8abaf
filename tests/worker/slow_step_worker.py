"""`python -m gpu_worker`, with training steps made slow on demand: `slow_step_worker.py --config FILE`.

Once the file named by $SLOW_STEP_TRIGGER exists, every decoder layer's forward in training mode
first sleeps $SLOW_STEP_SECONDS (a step on a slow CPU: minutes); the first such layer writes
"mid-step" to $SLOW_STEP_TRACE, so a test knows a step is in flight before it sends SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> int:
    from transformers.models.llama import modeling_llama

    trigger, trace = Path(os.environ["SLOW_STEP_TRIGGER"]), Path(os.environ["SLOW_STEP_TRACE"])
    seconds = float(os.environ.get("SLOW_STEP_SECONDS", "3"))
    original = modeling_llama.LlamaDecoderLayer.forward

    def slow_forward(self, *args, **kwargs):
        if self.training and trigger.exists():
            if not trace.exists():
                trace.write_text("mid-step\n")
            time.sleep(seconds)
        return original(self, *args, **kwargs)

    modeling_llama.LlamaDecoderLayer.forward = slow_forward
    from gpu_worker.__main__ import main as worker_main

    return worker_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
