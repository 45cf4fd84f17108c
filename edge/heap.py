"""Keep the node's heap from holding on to freed image buffers.

A decoded camera-trap still is 5-15 MB. glibc serves such blocks with mmap at first, but after
the first one is freed it raises its mmap threshold (up to 32 MB) and serves the next ones from
the heap, where freed blocks stay mapped and fragment: peak RSS then creeps up with the number
of images seen. Fixing the threshold at 1 MB (which also stops the dynamic adjustment) hands
every large buffer back to the kernel when it is freed. This is what `MALLOC_MMAP_THRESHOLD_`
does from the environment; done here so `edge scan` from a shell gets it too.

Measured with `python -m benchmarks.memory` (README): see the "Measured" table.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
TRIM_THRESHOLD_BYTES = 4 << 20


def limit_heap_growth() -> bool:
    """Set glibc's mmap and trim thresholds; False (and nothing done) off glibc or when the
    environment already chose (`MALLOC_MMAP_THRESHOLD_`)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and done
    log.debug(
        "mallopt mmap threshold %d, trim threshold %d: %s",
        MMAP_THRESHOLD_BYTES,
        TRIM_THRESHOLD_BYTES,
        done,
    )
    return done
