"""Lease heartbeats: a living worker keeps the task runs it holds, a dead one loses them fast.

A claim holds its rows for `lease_s` (`claims.claim_task_runs`). Every process that executes
task runs (`cxloop worker`, the worker embedded in `cxloop serve`) owns a `LeaseKeeper`: a
thread that renews, every `lease_heartbeat_s`, the lease of every row the process holds, with
one UPDATE by the process's worker id (`engine.worker.WORKER_ID`, which every claim of the
process starts with). So a Salesforce call may take longer than the lease while the process
lives, and the lease itself can be short: a process that dies stops renewing, and the sweeper
(`claims.expire_leases`) takes its rows back `lease_s` after the last beat, recording the
interrupted attempt. The same beat renews the process's slots of its orgs' bounds
(`org_batches_in_flight`, taken for `lease_s`): a dead process's slots free themselves as soon,
so that its org's next batches need not wait for a call's whole timeout.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog
from sqlalchemy import select, update

from cxloop.db.base import utcnow
from cxloop.db.batching_models import OrgBatchInFlight
from cxloop.db.run_models import TaskRun
from cxloop.db.uow import Database
from cxloop.domain.statuses import TaskRunStatus
from cxloop.engine.worker import WORKER_ID

log = structlog.get_logger(__name__)

_t = TaskRun.__table__.c
_slots = OrgBatchInFlight.__table__.c


class LeaseKeeper:
    """Renews the leases of the task runs and org slots this process holds, from a thread of
    its own."""

    def __init__(
        self, db: Database, *, lease_s: float, period_s: float, holder: str = WORKER_ID
    ) -> None:
        self._db = db
        self._lease = timedelta(seconds=lease_s)
        self._period_s = period_s
        # Claims are `holder:thread`; the colon keeps `host:1` from matching `host:12`'s rows.
        self._held = (_t.status == TaskRunStatus.RUNNING) & _t.claimed_by.startswith(
            f"{holder}:", autoescape=True
        )
        self._slots_held = _slots.worker.startswith(f"{holder}:", autoescape=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> int:
        """Extend the lease of every row this process holds to `lease_s` from now; returns how
        many rows that was.

        A read first, and the UPDATE only when the process holds something: an idle worker
        takes no write lock (on SQLite the one writer's lock, which the response API waits
        for). A row the sweeper already took back is `claimed_by` nobody, so it stays taken.
        """
        with self._db.reader() as uow:
            holds = uow.session.execute(select(_t.id).where(self._held).limit(1)).first()
            slots = uow.session.execute(select(_slots.id).where(self._slots_held).limit(1)).first()
        if holds is None and slots is None:
            return 0
        until = utcnow() + self._lease
        renewed = 0
        with self._db.uow() as uow:
            if holds is not None:
                renewed = uow.session.execute(
                    update(TaskRun.__table__).where(self._held).values(lease_expires_at=until)
                ).rowcount
            if slots is not None:
                uow.session.execute(
                    update(OrgBatchInFlight.__table__).where(self._slots_held).values(until=until)
                )
            uow.commit()
        return int(renewed or 0)

    def start(self) -> None:
        """Renew every period from now on, until `stop`."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_forever, name="cxloop-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (after the worker has finished what it was doing: rows still held
        then are taken back by the sweeper once their lease runs out)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.renew()
            except Exception:  # a database hiccup must not end the heartbeat; the next may work
                log.warning("leases.renew_failed", exc_info=True)
