"""CoalescedRead: one read in a thread per wave of callers, each given a value read after it
asked, and the event loop free meanwhile."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cxloop.coalescing import CoalescedRead


class SlowCounter:
    """A read that takes a while and says which read it was (and on which thread it ran)."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.reads = 0
        self.threads: set[int] = set()
        self.release = threading.Event()

    def __call__(self) -> int:
        self.threads.add(threading.get_ident())
        self.release.wait(self.seconds)
        self.reads += 1
        return self.reads


def test_callers_that_ask_together_share_one_read() -> None:
    counter = SlowCounter()
    read = CoalescedRead(counter)

    async def main() -> list[int]:
        return await asyncio.gather(*(read() for _ in range(50)))

    assert asyncio.run(main()) == [1] * 50
    assert counter.reads == 1


def test_a_caller_that_asks_during_a_read_gets_the_next_one() -> None:
    """The value must be read after the caller asked: a read already running may have begun
    before a change the caller must see (a revocation committed just before its request)."""
    counter = SlowCounter(seconds=0.2)
    read = CoalescedRead(counter)

    async def main() -> tuple[int, list[int]]:
        first = asyncio.ensure_future(read())
        await asyncio.sleep(0.05)  # the first read is running now
        later = await asyncio.gather(*(read() for _ in range(10)))
        return await first, later

    first, later = asyncio.run(main())
    assert first == 1
    assert later == [2] * 10
    assert counter.reads == 2


def test_the_read_runs_in_a_thread_and_the_loop_goes_on() -> None:
    counter = SlowCounter(seconds=5)
    read = CoalescedRead(counter)
    ticks: list[int] = []

    async def main() -> int:
        pending = asyncio.ensure_future(read())
        for tick in range(5):  # the loop runs while the read waits
            await asyncio.sleep(0.01)
            ticks.append(tick)
        counter.release.set()
        return await pending

    assert asyncio.run(main()) == 1
    assert ticks == [0, 1, 2, 3, 4]
    assert threading.get_ident() not in counter.threads


def test_a_failed_read_fails_its_wave_and_the_next_wave_reads_again() -> None:
    calls = [0]

    def flaky() -> int:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionError("database gone")
        return 7

    read = CoalescedRead(flaky)

    async def main() -> int:
        with pytest.raises(ConnectionError):
            await read()
        return await read()

    assert asyncio.run(main()) == 7


def test_a_new_event_loop_starts_afresh() -> None:
    counter = SlowCounter(seconds=0)
    read = CoalescedRead(counter)
    assert asyncio.run(read()) == 1
    assert asyncio.run(read()) == 2


def test_a_caller_that_gives_up_does_not_cancel_the_read_of_the_others() -> None:
    counter = SlowCounter(seconds=0.1)
    read = CoalescedRead(counter)

    async def main() -> int:
        quitter = asyncio.ensure_future(read())
        stayer = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        quitter.cancel()
        return await stayer

    assert asyncio.run(main()) == 1
