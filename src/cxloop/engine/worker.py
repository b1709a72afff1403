"""What a worker does with a batch key: wait a moment for company, claim, execute, record.

Under load, ready task runs pile up while a batch is in flight, so the next claim takes up to
200 of them: batches fill by themselves. When traffic is light a record waits at most
`batch_linger_s` for others to share its call, then goes alone.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from cxloop.db.base import utcnow
from cxloop.engine import directory_task, email_task, ledger, salesforce_batch
from cxloop.services import runs

if TYPE_CHECKING:
    from cxloop.bootstrap import Container

log = structlog.get_logger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
MAX_ROUNDS = 20  # batches one message may take before leaving the rest to other messages

_BUSY_WINDOW_S = 2.0  # a key that sent a batch this recently counts as busy
_POLL_S = 0.05
_last_batch_at: dict[str, float] = {}
_lingering: set[str] = set()
_lingering_lock = threading.Lock()


def process(container: Container, batch_key: str) -> None:
    """Handle one dispatch message for `batch_key`: batches until nothing of it is ready."""
    is_salesforce = batch_key.startswith("sf|")
    if is_salesforce and _held_back(container, batch_key):
        return
    worker = f"{WORKER_ID}:{threading.get_ident()}"
    for _ in range(MAX_ROUNDS):
        if is_salesforce and not _wait_for_company(container, batch_key):
            return
        claimed = ledger.claim_batch(
            container.db,
            batch_key,
            limit=container.settings.batch_size,
            lease_s=container.settings.lease_s,
            worker=worker,
        )
        if not claimed:
            return
        started_at = utcnow()
        _last_batch_at[batch_key] = time.monotonic()
        task_runs = ledger.task_runs_by_id(container.db, claimed)
        try:
            if batch_key.startswith("sf|"):
                outcomes = salesforce_batch.execute(container, task_runs)
            elif batch_key.startswith("directory|"):
                outcomes = [directory_task.execute(container, t) for t in task_runs]
            else:
                outcomes = [email_task.execute(container, t) for t in task_runs]
        except Exception:
            # A bug must not strand the rows: their lease runs out and the sweeper retries.
            log.exception("worker.batch_crashed", batch_key=batch_key, size=len(task_runs))
            return
        settled = ledger.record_outcomes(
            container.db, outcomes, started_at=started_at, worker=worker
        )
        runs.dispatch(settled.ready_keys)
        for key, at in settled.retries:
            schedule(container, key, at)


def _held_back(container: Container, batch_key: str) -> bool:
    """Whether the batch's org is being held back (API limit); if so, come back later."""
    key = runs.SalesforceBatchKey.parse(batch_key)
    org_id = ledger.org_of_owner_connection(container.db, key.owner_id, key.connection)
    held_until = ledger.throttled_until(container.db, org_id) if org_id else None
    if held_until is None:
        return False
    schedule(container, batch_key, held_until)
    return True


def _wait_for_company(container: Container, batch_key: str) -> bool:
    """Wait while a batch is filling; False when another message of this process already waits.

    A record goes at once when traffic is light (nothing else ready, no batch of this key in
    the last moments). Under load it waits, up to `batch_linger_s`, until a full batch is ready,
    so that records share Collections calls instead of spending one call each.
    """
    settings = container.settings
    count, oldest = ledger.ready_summary(container.db, batch_key)
    if count == 0:
        return False
    if count >= settings.batch_size or oldest is None or settings.batch_linger_s <= 0:
        return True
    recently_busy = time.monotonic() - _last_batch_at.get(batch_key, -1e9) < _BUSY_WINDOW_S
    if count == 1 and not recently_busy:
        return True
    with _lingering_lock:
        if batch_key in _lingering:
            return False  # the waiting message will take these rows too
        _lingering.add(batch_key)
    try:
        while True:
            waited = (utcnow() - oldest).total_seconds()
            if waited >= settings.batch_linger_s:
                break
            time.sleep(min(_POLL_S, settings.batch_linger_s - waited))
            count, oldest = ledger.ready_summary(container.db, batch_key)
            if count >= settings.batch_size or oldest is None:
                break
    finally:
        # Cleared before claiming: a message arriving from now on claims for itself.
        with _lingering_lock:
            _lingering.discard(batch_key)
    return True


def schedule(container: Container, batch_key: str, at: datetime) -> None:
    """Dispatch `batch_key` again at `at` (the sweeper is the safety net if this is lost)."""
    delay = max((at - utcnow()).total_seconds(), 0.0)
    container.tasks.dispatch.schedule(args=(batch_key,), delay=delay)


def sweep(container: Container) -> None:
    """Re-queue what is stuck: expired leases, ready rows nobody took, paused work that may
    resume. Runs periodically in the scheduler's rhythm."""
    keys = set(ledger.expire_leases(container.db))
    keys |= set(ledger.resume_paused(container.db))
    keys |= set(ledger.overdue_keys(container.db, grace_s=1.0))
    if keys:
        log.info("sweeper.requeued", batch_keys=len(keys))
        runs.dispatch(keys)
