"""Keep glibc's malloc to what the worker really holds (docs/performance.md, Memory).

Two habits of glibc's allocator made the CPU worker's resident memory grow with every
micro-batch run, with nothing live in the growth:

- a block of at least M_MMAP_THRESHOLD bytes gets its own mapping, given back on free; the
  threshold starts at 128 KiB and by default rises to the size of each mapped block freed (up to
  32 MiB), so once the first micro-batch's activations are freed the next ones come from the heap,
  which fragments (3,445 MB over two balanced steps, 2,896 MB with a fixed 4 MiB threshold, at the
  same speed): `fix_malloc_mmap_threshold`, at worker start;
- the heap shrinks only from its top, so one live block there keeps everything freed below it
  resident (about 1 GB over ten balanced steps; trimmed from outside with gdb, 2,969 MB before and
  2,007 after): `release_free_heap`, after each CPU micro-batch.

Stdlib only: imported by `python -m gpu_worker` before anything heavy. Elsewhere than glibc both
do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 4 << 20
# Resident memory may grow this far past what the last trim left before the next trim.
TRIM_SLACK_MB = 256
_resident_after_trim_kb = 0


@functools.cache
def _glibc(name: str, argtypes: tuple[Any, ...]) -> Any:
    """glibc's function `name` (int result), or None where the C library has none (not glibc)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


def fix_malloc_mmap_threshold(size: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `size` for this process (which also stops its rise), unless
    MALLOC_MMAP_THRESHOLD_ in the environment already chose one; False where that is so or there
    is no mallopt. Small tensors and Python objects stay on the heap."""
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or mallopt is None:
        return False
    return mallopt(M_MMAP_THRESHOLD, size) == 1


def resident_kb() -> int | None:
    """This process's resident memory in kB, or None without /proc."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return None


def release_free_heap(slack_mb: int = TRIM_SLACK_MB) -> bool:
    """Give the pages of freed heap memory back to the system (glibc's malloc_trim(0)) once
    resident memory has grown `slack_mb` past what the last trim left; True if it trimmed.

    The blocks over the fixed mmap threshold already go back on free; this covers the smaller
    ones. It costs page faults: each trim hands back pages that the next micro-batch faults in
    again, and on the fresh-clone demo trimming made the job about 20 % slower (17m12s against
    13m56s, the same losses) for a 3,331 MiB peak instead of 4,162. The slack spares
    micro-batches that freed little; on the demo most free more than it, so it trims about as
    often (16m47s).
    """
    global _resident_after_trim_kb
    malloc_trim = _glibc("malloc_trim", (ctypes.c_size_t,))
    if malloc_trim is None:
        return False
    now = resident_kb()
    if now is not None and now - _resident_after_trim_kb < slack_mb * 1024:
        return False
    malloc_trim(0)  # without /proc to read, every time
    _resident_after_trim_kb = resident_kb() or 0
    return True
