"""Periodic jobs, each run exactly once per period however many schedulers and workers run.

Every tick the scheduler computes the current period (slot) of each job and tries to insert
(job, slot) into `periodic_slots`. The primary key lets exactly one insert win; only the winner
enqueues the job. So a second scheduler started by mistake, or a restart inside a period, never
runs a job twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cxloop.db.base import utcnow
from cxloop.db.models import PeriodicSlot
from cxloop.db.uow import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job to run every `period_s` seconds."""

    name: str
    period_s: float
    run: Callable[[], None]


def current_slot(period_s: float, now: float) -> int:
    return math.floor(now / period_s)


def claim_slot(db: Database, job: str, slot: int) -> bool:
    """Try to claim one period of a job; True for the one caller that wins it."""
    with db.uow() as uow:
        existing = uow.session.scalar(
            select(PeriodicSlot.slot).where(PeriodicSlot.job == job, PeriodicSlot.slot == slot)
        )
        if existing is not None:
            return False
        uow.session.add(PeriodicSlot(job=job, slot=slot))
        try:
            uow.commit()
        except IntegrityError:
            return False
    return True


def record_execution(db: Database, job: str, slot: int) -> None:
    """Count one execution of a claimed period (tests and `/readyz` read it)."""
    with db.uow() as uow:
        uow.session.execute(
            update(PeriodicSlot)
            .where(PeriodicSlot.job == job, PeriodicSlot.slot == slot)
            .values(executions=PeriodicSlot.executions + 1, last_run_at=utcnow())
        )
        uow.commit()


class Scheduler:
    """Claims periods and hands the won ones to `enqueue(job_name, slot)`."""

    def __init__(
        self,
        db: Database,
        jobs: list[PeriodicJob],
        enqueue: Callable[[str, int], None],
        *,
        tick_s: float = 1.0,
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._enqueue = enqueue
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> list[tuple[str, int]]:
        """Claim and enqueue the current period of every job; return what was enqueued."""
        now = time.time() if now is None else now
        enqueued = []
        for job in self._jobs:
            slot = current_slot(job.period_s, now)
            try:
                if claim_slot(self._db, job.name, slot):
                    self._enqueue(job.name, slot)
                    enqueued.append((job.name, slot))
            except Exception:  # a database or queue hiccup must not kill the scheduler
                log.exception("scheduler.tick_failed", job=job.name)
        return enqueued

    def run_forever(self) -> None:
        log.info("scheduler.started", jobs=[j.name for j in self._jobs], tick_s=self._tick_s)
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._tick_s)
        log.info("scheduler.stopped")

    def start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, name="cxloop-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
