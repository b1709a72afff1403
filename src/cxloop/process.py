"""Process-wide settings of cxloop's long-running processes, made by their entry points.

What belongs to the process rather than to a container (the interpreter's garbage collector,
the C allocator's arenas) is set here, once, by the commands that run for long (`cxloop serve`,
`cxloop worker`, `cxloop scheduler`, `cxloop responses import`) and by the benchmarks, never by
building a container: tests and tools that build containers keep the interpreter's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

# The cycle collector's default first threshold (700 new objects) runs it hundreds of times per
# thousand responses taken in; fewer, larger collections cost a tenth less CPU per imported
# response (measured), and memory no more than a few thousand objects.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Collect cycles less often (see GC_THRESHOLDS): for processes that take in responses."""
    gc.set_threshold(*GC_THRESHOLDS)


# glibc gives each thread that allocates an arena of its own, up to 8 per core; memory freed in
# one stays with it. A worker's threads each rendering or matching a Bulk job left a 200,000
# backlog's drain at 310 MB of RSS; with two arenas, 248 MB (docs/performance.md).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def limit_malloc_arenas() -> bool:
    """Let the C allocator keep at most MALLOC_ARENAS arenas in this process (glibc only, and
    only where the operator has not set MALLOC_ARENA_MAX, which glibc reads itself). Call it
    before the process starts its threads. True when the limit was set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False  # not glibc (musl has no arenas to limit)
    return bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
