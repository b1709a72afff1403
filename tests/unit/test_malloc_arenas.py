"""`limit_malloc_arenas`: a long-running process's threads share at most MALLOC_ARENAS of the C
allocator's arenas (glibc), unless the operator set MALLOC_ARENA_MAX. Each case runs in a fresh
interpreter, as the setting belongs to the process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from cxloop.process import MALLOC_ARENAS

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="arenas are glibc's; other C libraries differ"
)

# Eight threads allocate at once; glibc's malloc_info then lists one <heap> per arena.
PROBE = """
import ctypes, ctypes.util, json, re, sys, tempfile, threading
from cxloop.process import limit_malloc_arenas

limited = limit_malloc_arenas() if sys.argv[1] == "limit" else None
start = threading.Barrier(8)

def allocate():
    start.wait()
    kept = [bytearray(2048) for _ in range(2000)]
    del kept

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    handle = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    heaps = len(re.findall(r'<heap nr="', open(report.name).read()))
print(json.dumps({"limited": limited, "heaps": heaps}))
"""


def _arenas(mode: str, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True, text=True, timeout=120, env=environment, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_threads_share_at_most_the_limit_of_arenas() -> None:
    assert _arenas("limit") == {"limited": True, "heaps": MALLOC_ARENAS}


def test_without_the_limit_each_thread_takes_an_arena_of_its_own() -> None:
    # What the limit is for: the same eight threads, glibc's default.
    assert _arenas("default")["heaps"] > MALLOC_ARENAS


def test_an_operators_malloc_arena_max_wins() -> None:
    assert _arenas("limit", MALLOC_ARENA_MAX="3") == {"limited": False, "heaps": 3}
