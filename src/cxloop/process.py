"""Process-wide settings of cxloop's long-running processes, made by their entry points.

What belongs to the process rather than to a container (the interpreter's garbage collector) is
set here, once, by the commands that run for long (`cxloop serve`, `cxloop worker`,
`cxloop scheduler`, `cxloop responses import`) and by the benchmarks, never by building a
container: tests and tools that build containers keep the interpreter's defaults.
"""

from __future__ import annotations

import gc

# The cycle collector's default first threshold (700 new objects) runs it hundreds of times per
# thousand responses taken in; fewer, larger collections cost a tenth less CPU per imported
# response (measured), and memory no more than a few thousand objects.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Collect cycles less often (see GC_THRESHOLDS): for processes that take in responses."""
    gc.set_threshold(*GC_THRESHOLDS)
