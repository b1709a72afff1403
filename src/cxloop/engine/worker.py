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
from cxloop.engine import email_task, ledger, salesforce_batch
from cxloop.services import runs

if TYPE_CHECKING:
    from cxloop.bootstrap import Container

log = structlog.get_logger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
MAX_ROUNDS = 20  # batches one message may take before leaving the rest to other messages

_lingering: set[str] = set()
_lingering_lock = threading.Lock()


def process(container: Container, batch_key: str) -> None:
    """Handle one dispatch message for `batch_key`."""
    if batch_key.startswith("sf|") and not _wait_for_company(container, batch_key):
        return
    if batch_key.startswith("sf|"):
        org_id = ledger.org_of_connection(container.db, batch_key.split("|")[1])
        held_until = ledger.throttled_until(container.db, org_id) if org_id else None
        if held_until is not None:
            schedule(container, batch_key, held_until)
            return
    worker = f"{WORKER_ID}:{threading.get_ident()}"
    for _ in range(MAX_ROUNDS):
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
        task_runs = ledger.task_runs_by_id(container.db, claimed)
        try:
            if batch_key.startswith("sf|"):
                outcomes = salesforce_batch.execute(container, task_runs)
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
        if len(claimed) < container.settings.batch_size:
            return


def _wait_for_company(container: Container, batch_key: str) -> bool:
    """Linger briefly when few records are ready; False when another message already does."""
    linger = container.settings.batch_linger_s
    count, oldest = ledger.ready_summary(container.db, batch_key)
    if count == 0:
        return False
    if linger <= 0 or count >= container.settings.batch_size or oldest is None:
        return True
    waited = (utcnow() - oldest).total_seconds()
    if waited >= linger:
        return True
    with _lingering_lock:
        if batch_key in _lingering:
            return False  # the lingering message will take these rows too
        _lingering.add(batch_key)
    try:
        time.sleep(linger - waited)
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
    keys |= set(ledger.overdue_keys(container.db, grace_s=container.settings.sweeper_period_s))
    if keys:
        log.info("sweeper.requeued", batch_keys=len(keys))
        runs.dispatch(keys)
