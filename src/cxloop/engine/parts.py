"""What engine code needs of the process it runs in, and the engine's own per-container state.

Engine code takes an `EngineParts` (the container is one) instead of importing `bootstrap`, so
the composition root and the engine do not import each other. `EngineState` holds what the
engine keeps between batches (record plans, the shared HTTP pool, the worker's pacing); the
container builds one, so two containers in one process never share it.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from cxloop.caching import TtlCache
from cxloop.ledger.connection_health import ConnectionHealth

if TYPE_CHECKING:
    from cxloop.db.uow import Database
    from cxloop.engine.scheduler import PeriodicJob
    from cxloop.ledger import Ledger
    from cxloop.salesforce.client import DescribeCache
    from cxloop.settings import Settings

RECORD_PLAN_ENTRIES = 512  # describes expire and revisions pile up; memory only


class EngineParts(Protocol):
    """The parts of a container engine code uses (`bootstrap.Container` has them all)."""

    settings: Settings
    db: Database
    ledger: Ledger
    describe_cache: DescribeCache
    engine_state: EngineState
    jobs: list[PeriodicJob]

    @property
    def tasks(self) -> Any: ...


class BatchPacing:
    """The worker's view of its own batches: when each key last sent one, which keys a thread
    drives (fills, claims and hands to senders), how many batches of a key are being sent now.
    Per process by nature (it paces this process's threads; which process batches a key is
    in the database, `ledger.batch_owners`), per container by construction."""

    def __init__(self) -> None:
        self.last_batch_at: dict[str, float] = {}
        self.driving: set[str] = set()
        self.in_flight: dict[str, int] = {}
        self.bulk: set[str] = set()  # keys a thread is gathering or sending a Bulk job for
        # Orgs for which a driver waits for a slot now: more batches are ready than the org's
        # bound lets go, a reason to grow it.
        self.waiting_for_slot: dict[str, int] = {}
        # keys with a message scheduled for the end of their org's hold: when it is due
        self.held_messages: dict[str, float] = {}
        # Sender threads with a Collections call in flight; a driver that used its rounds
        # leaves them running (engine/worker.py), so a graceful stop waits for them here.
        self.senders: set[threading.Thread] = set()
        self.lock = threading.Lock()

    def wait_for_senders(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the batches in flight to be recorded (a graceful stop:
        the consumer has stopped taking messages). False when some were still in flight."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                running = [sender for sender in self.senders if sender.is_alive()]
            if not running:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            running[0].join(timeout=left)


class SharedHttp:
    """One pooled httpx client per timeout (httpx clients may be shared between threads; a
    forked child makes its own, never using its parent's connections)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[int, float], httpx.Client] = {}
        self._lock = threading.Lock()

    def client(self, timeout_s: float) -> httpx.Client:
        """The pooled client for this timeout in this process."""
        key = (os.getpid(), timeout_s)
        with self._lock:
            http = self._clients.get(key)
            if http is None or http.is_closed:
                http = self._clients[key] = httpx.Client(timeout=timeout_s, follow_redirects=False)
            return http

    def close(self) -> None:
        """Close this process's clients."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for http in clients:
            http.close()


class EngineState:
    """What the engine keeps between batches, for one container."""

    def __init__(self) -> None:
        self.record_plans: TtlCache[tuple[Any, ...], Any] = TtlCache(RECORD_PLAN_ENTRIES)
        self.http = SharedHttp()
        self.pacing = BatchPacing()
        # One Bulk job's rows (or results) in memory per process at a time: a job of 25,000
        # is ~100 MB while it is rendered or its results matched, and the threads of a worker
        # each holding one took it past 400 MB.
        self.bulk_job_in_memory = threading.Lock()
        # Each batch's outcome on its connection, written with the batch's outcomes.
        self.connection_health = ConnectionHealth()
        # Who this container is when it owns batch keys: two containers in one process (tests)
        # are two owners, as two processes are.
        self._owner_token = secrets.token_hex(3)

    @property
    def worker_id(self) -> str:
        """This container's name as a batch key owner: host, process id (read now, so that a
        forked child is another owner) and a token of its own."""
        return f"{socket.gethostname()[:40]}:{os.getpid()}:{self._owner_token}"
