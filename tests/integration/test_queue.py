"""The queue on SQLite and Redis: commit-then-enqueue delivery and exactly-once periods."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cxloop.bootstrap import Container, build_container
from cxloop.db.models import PeriodicSlot
from cxloop.engine.scheduler import Scheduler
from cxloop.web.app import EmbeddedWorker
from tests.conftest import make_settings


@pytest.fixture
def queued(tmp_path: Path, database_url: str, queue_url: str) -> Iterator[Container]:
    built = build_container(make_settings(tmp_path, database_url, queue_url, periodic_tick_s=0.1))
    built.huey.flush()
    yield built
    built.huey.flush()
    built.close()


def slots(container: Container) -> list[PeriodicSlot]:
    with container.db.reader() as uow:
        return list(uow.session.scalars(select(PeriodicSlot).order_by(PeriodicSlot.slot)))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_two_schedulers_in_the_same_period_enqueue_once(queued: Container) -> None:
    now = time.time()
    first, second = queued.scheduler(), queued.scheduler()
    enqueued = first.tick(now)
    assert ("heartbeat", int(now // 60)) in enqueued
    assert len(enqueued) == len(queued.jobs)
    assert second.tick(now) == []
    assert queued.huey.pending_count() == len(queued.jobs)


def test_enqueued_work_waits_for_a_worker_and_runs_once(queued: Container) -> None:
    enqueued = set(queued.scheduler().tick(time.time()))
    assert queued.huey.pending_count() == len(queued.jobs)

    def executions() -> dict[tuple[str, int], int]:
        return {(s.job, s.slot): s.executions for s in slots(queued)}

    worker = EmbeddedWorker(queued)
    worker.start()
    try:
        wait_for(lambda: all(executions().get(e) == 1 for e in enqueued))
    finally:
        worker.stop()
    # The worker's own scheduler may start the next period meanwhile (a minute boundary
    # passed): what the first tick enqueued ran exactly once, and nothing ran twice.
    ran = executions()
    assert {e: ran[e] for e in enqueued} == dict.fromkeys(enqueued, 1)
    assert max(ran.values()) == 1


def test_scheduler_survives_a_failing_enqueue(queued: Container) -> None:
    def broken_enqueue(_name: str, _slot: int) -> None:
        raise ConnectionError("queue down")

    scheduler = Scheduler(queued.db, queued.jobs, broken_enqueue)
    assert scheduler.tick(time.time()) == []  # logged, not raised
