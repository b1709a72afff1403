"""One blocking read shared by the callers of an event loop that asked while it waited.

The API's async path must check a value in the database on every request (the API tokens'
revocation generation) without blocking the event loop on a round trip: on PostgreSQL, under
load, that wait was most of the loop's time. `CoalescedRead` runs the read in a thread and
hands its value to every caller that asked before the read started; callers that ask while it
runs share the next read. Each caller still gets a value read after it asked, as fresh as a
read of its own, for one round trip per wave of callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class CoalescedRead(Generic[T]):
    """`await read()` gives the value of `read_now()` as read after the call began.

    Belongs to one event loop at a time (a server process's); a call from another loop (a new
    test client's) starts afresh there.
    """

    def __init__(self, read_now: Callable[[], T]) -> None:
        self._read_now = read_now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Future[T] | None = None  # the wave waiting for the next read
        self._reader: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._next, self._reader = loop, None, None
        if self._next is None:
            self._next = loop.create_future()
        wave = self._next
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_waves(loop))
        # Shielded: a caller that gives up (a client gone) must not cancel its wave's read.
        return await asyncio.shield(wave)

    async def _read_waves(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read for each wave in turn until no caller waits."""
        while self._next is not None:
            wave, self._next = self._next, None
            try:
                value = await loop.run_in_executor(None, self._read_now)
            except Exception as exc:
                wave.set_exception(exc)
            else:
                wave.set_result(value)
