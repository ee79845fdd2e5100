"""Keep freed host memory in the process, so that CPU steps stop paying page faults for it.

On the CPU backend XLA allocates every execution's buffers (the tiny-model training step
of `benchmarks/model_speed.py` needs ~690 MB of them) with `malloc` and frees them when the
execution ends. glibc serves every block above its mmap threshold (at most 32 MB) with a
fresh `mmap` and gives it back with `munmap` on free, so each step the kernel maps,
page-faults and zero-fills all of that memory again. Measured on 2 cores: ~176,000 minor
faults and ~350 ms of system CPU per tiny training step, about a fifth of the step.

`retain_freed_memory()` tells glibc (`mallopt`) to serve large blocks from its main heap
and never to trim that heap, with one arena for all threads so that blocks freed by one
XLA worker thread are found by the next. Steps then reuse the same pages: 0 faults per
step, and the tiny step runs ~15-20% faster (`benchmarks/model_speed.py`). The price is
that the process keeps its peak heap until it exits, which suits a training or sampling
job, and that the heap, fragmented by small blocks landing in freed big ones, grows in a
few one-off steps early on (measured, tiny training step with ~0.7 GB of buffers: 1.4 GB
resident after the first step, 2.7-3.3 GB after the growth, then flat over 40 more steps;
each growth step pays its new pages' first-touch faults once, 1-6 s of system CPU on this
VM). The same effect is available to any program from the environment, before start-up:
MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<larger than any heap>.

Call it first thing in a main, before JAX runs anything: threads that already hold an
arena keep it. It changes nothing (and returns False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import platform
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely" (glibc stores it
# as an unsigned size). The largest positive int, 2**31 - 1, is not enough: a codet5-small
# training step leaves more than 2 GiB free at the top of the heap, glibc then trimmed it
# after every step, and each step faulted ~1.5 GB back in (~380,000 faults, seconds of
# system CPU; measured, intermittently, depending on where the big buffers landed).
_NEVER_TRIM = -1

_applied = False


def retain_freed_memory() -> bool:
    """Configure glibc malloc to reuse freed large blocks; True if it is now in effect."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    # mallopt returns 1 on success, 0 on error; set the arena limit first so that threads
    # created from here on share the main heap.
    ok = (libc.mallopt(_M_ARENA_MAX, 1) == 1
          and libc.mallopt(_M_MMAP_MAX, 0) == 1
          and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1)
    _applied = ok
    return ok
