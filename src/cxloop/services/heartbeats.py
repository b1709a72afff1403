"""Heartbeats of the workers and the scheduler, kept in the database.

Every worker (a `cxloop worker`, or the consumer embedded in `cxloop serve`) and every
scheduler notes every `process_heartbeat_s` that it is alive, in `process_heartbeats`. The
database is the one place every process of an installation reaches, with an SQLite queue as
with Redis, so `/readyz` of any web process can tell when no worker or no scheduler has been
heard from for `process_silent_after_s`, and since when.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, func, select, update

from cxloop.db.base import utcnow
from cxloop.db.operations_models import PROCESS_ROLES, ProcessHeartbeat
from cxloop.db.uow import Database

log = structlog.get_logger(__name__)

# Rows of processes gone this long are deleted by whichever process beats next.
FORGET_AFTER = timedelta(days=1)


class Heartbeat:
    """One process's heartbeat in one role, noted from a thread of its own."""

    def __init__(self, db: Database, role: str, period_s: float) -> None:
        if role not in PROCESS_ROLES:
            raise ValueError(f"unknown process role {role!r}")
        self._db = db
        self.role = role
        self._period_s = period_s
        self.id = f"{role}:{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Note now as this process's latest sign of life."""
        now = utcnow()
        with self._db.uow() as uow:
            updated = uow.session.execute(
                update(ProcessHeartbeat).where(ProcessHeartbeat.id == self.id).values(beat_at=now)
            ).rowcount
            if not updated:
                uow.session.add(
                    ProcessHeartbeat(
                        id=self.id, role=self.role, host=socket.gethostname()[:255],
                        pid=os.getpid(), started_at=now, beat_at=now,
                    )
                )  # fmt: skip
                uow.session.execute(
                    delete(ProcessHeartbeat).where(ProcessHeartbeat.beat_at < now - FORGET_AFTER)
                )
            uow.commit()

    def start(self) -> None:
        """Beat now (so a process that has started is seen at once), then every period."""
        self._beat_safely()
        self._thread = threading.Thread(
            target=self._beat_forever, name=f"cxloop-heartbeat-{self.role}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove this process's row: a process stopped on purpose is gone,
        not silent (one that dies leaves its row, which goes silent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            with self._db.uow() as uow:
                uow.session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.id == self.id))
                uow.commit()
        except Exception:
            log.warning("heartbeat.remove_failed", role=self.role, exc_info=True)

    def _beat_forever(self) -> None:
        while not self._stop.wait(self._period_s):
            self._beat_safely()

    def _beat_safely(self) -> None:
        try:
            self.beat()
        except Exception:  # a database hiccup must not kill the process; /readyz will tell
            log.warning("heartbeat.failed", role=self.role, exc_info=True)


@dataclass(frozen=True)
class RoleHealth:
    """What `/readyz` says of one role: `ok`, or why not and since when."""

    role: str
    last_beat_at: datetime | None
    is_silent: bool

    def describe(self, now: datetime) -> str:
        if not self.is_silent:
            return "ok"
        if self.last_beat_at is None:
            return f"no {self.role} has sent a heartbeat: is one running?"
        seconds = int((now - self.last_beat_at).total_seconds())
        return (
            f"silent: no {self.role} heartbeat since {self.last_beat_at.isoformat()} "
            f"({seconds} s ago)"
        )


def role_health(
    db: Database, silent_after_s: float, now: datetime | None = None
) -> list[RoleHealth]:
    """For each role (worker, scheduler): its latest heartbeat, and whether that is too old."""
    now = now or utcnow()
    with db.reader() as uow:
        latest = dict(
            uow.session.execute(
                select(ProcessHeartbeat.role, func.max(ProcessHeartbeat.beat_at)).group_by(
                    ProcessHeartbeat.role
                )
            ).all()
        )
    found = []
    for role in PROCESS_ROLES:
        beat_at = latest.get(role)
        if isinstance(beat_at, str):  # should a driver hand back max() as text
            beat_at = datetime.fromisoformat(beat_at)
        if beat_at is not None and beat_at.tzinfo is None:
            beat_at = beat_at.replace(tzinfo=now.tzinfo)
        silent = beat_at is None or (now - beat_at).total_seconds() > silent_after_s
        found.append(RoleHealth(role, beat_at, silent))
    return found
