"""Connection health: when the engine last used each connection, and its last error.

The engine notes every Salesforce batch's outcome on its connection (`ConnectionHealth.note`,
kept per container in the engine's state); the notes are written inside the transaction that
records the batch's outcomes (`claims.record_outcomes`), so health costs no transaction of its
own. A use without error is written at most once per connection every `interval_s` by each
process (the Accounts page shows minutes, not milliseconds); an error is always written, with
its time. The Accounts page, `/api/v1/connections` and `cxloop connections list` show both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Connection

# Connection.last_error is Text; a Salesforce message is short, a proxy's HTML page is not.
_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ConnectionUse:
    """One connection's latest use: when, and the error it ended with (None: it worked)."""

    connection_id: str
    used_at: datetime
    error: str | None = None


class ConnectionHealth:
    """The connection uses this process has noted and not written yet."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self._interval_s = interval_s
        self._pending: dict[str, ConnectionUse] = {}
        self._last_written: dict[str, float] = {}  # monotonic seconds, per connection
        self._lock = threading.Lock()

    def note(self, connection_id: str, error: str | None = None) -> None:
        """Note that a batch used the connection now, and the error it ended with, if any."""
        use = ConnectionUse(connection_id, utcnow(), error[:_ERROR_CHARS] if error else None)
        with self._lock:
            earlier = self._pending.get(connection_id)
            if earlier is not None and earlier.error and not use.error:
                # The error still has to be written; the later success only moves the time.
                use = ConnectionUse(connection_id, use.used_at, earlier.error)
            self._pending[connection_id] = use

    def take_due(self) -> list[ConnectionUse]:
        """The uses to write now: every error, and a success unless this process wrote one
        for that connection less than `interval_s` ago. They count as written."""
        now = time.monotonic()
        due = []
        with self._lock:
            for connection_id, use in list(self._pending.items()):
                last = self._last_written.get(connection_id)
                if use.error or last is None or now - last >= self._interval_s:
                    due.append(use)
                    del self._pending[connection_id]
                    self._last_written[connection_id] = now
        return due


_c = Connection.__table__.c


def write_uses(session: Session, uses: list[ConnectionUse]) -> None:
    """Write the uses on their connections, in the caller's transaction. Last used never
    moves back (another process may have written a later use)."""
    for use in sorted(uses, key=lambda u: u.connection_id):  # one lock order for every writer
        session.execute(
            update(Connection.__table__)
            .where(
                _c.id == use.connection_id,
                or_(_c.last_used_at.is_(None), _c.last_used_at < use.used_at),
            )
            .values(last_used_at=use.used_at)
        )
        if use.error:
            session.execute(
                update(Connection.__table__)
                .where(_c.id == use.connection_id)
                .values(last_error=use.error, last_error_at=use.used_at)
            )
