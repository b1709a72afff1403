"""What a worker does with a batch key: wait a moment for company, claim, execute, record.

Under load, ready task runs pile up while a batch is in flight, and one message per key waits
(up to `batch_linger_s`) for a full batch of 200: one Collections call carries them all. When
traffic is light a record goes at once, and a batch stops waiting when nothing joins it for
`batch_quiet_s`. One dispatch message works through batches while rows are ready, so the
queue carries a few messages a second per key, not one per record.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from cxloop.db.base import utcnow
from cxloop.engine import directory_task, email_task, salesforce_batch, salesforce_bulk
from cxloop.ledger import SalesforceBatchKey, bulk_jobs, claims

if TYPE_CHECKING:
    from cxloop.engine.parts import BatchPacing, EngineParts

log = structlog.get_logger(__name__)

# Unique to this start of the process: a worker restarted in the same container gets the same
# host name and pid, and its lease heartbeat (engine/leases.py, by this prefix) must not keep
# the dead one's rows. Claims add the thread: `host:pid:token:thread` (at most 80 characters).
WORKER_ID = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
MAX_ROUNDS = 20  # batches one message may take before leaving the rest to other messages

_BUSY_WINDOW_S = 2.0  # a key that sent a batch this recently counts as busy
_POLL_S = 0.05
_NEARLY_FULL = 2 / 3  # of a batch: ...
_NEARLY_FULL_LINGER = 1.5  # ... may wait this many times `batch_linger_s` to fill


def process(container: EngineParts, batch_key: str) -> None:
    """Handle one dispatch message for `batch_key`: batches until nothing of it is ready."""
    if batch_key.startswith("sf|"):
        _process_salesforce(container, batch_key)
        return
    worker = f"{WORKER_ID}:{threading.get_ident()}"
    if salesforce_bulk.is_check_key(batch_key):  # "bulk|<job id>": a Bulk job's check
        salesforce_bulk.check(container, batch_key.partition("|")[2], worker)
        return
    for _ in range(MAX_ROUNDS):
        claimed = claims.claim_batch(
            container.db,
            batch_key,
            limit=container.settings.batch_size,
            lease_s=container.settings.lease_s,
            worker=worker,
        )
        if not claimed:
            return
        started_at = utcnow()
        task_runs = claims.task_runs_by_id(container.db, claimed)
        try:
            if batch_key.startswith("directory|"):
                outcomes = [directory_task.execute(container, t) for t in task_runs]
            else:
                outcomes = [email_task.execute(container, t) for t in task_runs]
        except Exception:
            # A bug must not strand the rows: their lease runs out and the sweeper retries.
            log.exception("worker.batch_crashed", batch_key=batch_key, size=len(task_runs))
            return
        _record(container, outcomes, started_at, worker)


def _process_salesforce(container: EngineParts, batch_key: str) -> None:
    """Salesforce batches: each round looks up where the key's records go (the owner's
    connection, its org's hold) in one query, waits for company, claims up to a batch with
    one UPDATE that returns the rows, sends them in one Collections call and records every
    outcome in one transaction."""
    db, settings = container.db, container.settings
    key = SalesforceBatchKey.parse(batch_key)
    pacing = container.engine_state.pacing
    worker = f"{WORKER_ID}:{threading.get_ident()}"
    for _ in range(MAX_ROUNDS):
        target = claims.batch_target(db, key.owner_id, key.connection)
        if target.held_until is not None:
            come_back_when_held(container, batch_key, target.held_until)
            return
        if salesforce_bulk.send_if_large(container, batch_key, target, worker):
            return  # a backlog goes through a Bulk API 2.0 job (the rest is dispatched again)
        with batch_turn(container, batch_key) as waited:
            if waited is None:
                return
            if waited > _POLL_S:  # the org may have been held back meanwhile
                target = claims.batch_target(db, key.owner_id, key.connection)
                if target.held_until is not None:
                    come_back_when_held(container, batch_key, target.held_until)
                    return
            claimed = claims.claim_task_runs(
                db,
                batch_key,
                limit=settings.batch_size,
                lease_s=settings.lease_s,
                worker=worker,
                connection_id=target.connection_id,
            )
        if not claimed:
            return
        started_at = utcnow()
        pacing.last_batch_at[batch_key] = time.monotonic()
        with sending_batch(pacing, batch_key):
            try:
                outcomes = salesforce_batch.execute(container, claimed, target)
            except Exception:
                # A bug must not strand the rows: their lease runs out and the sweeper retries.
                log.exception("worker.batch_crashed", batch_key=batch_key, size=len(claimed))
                return
            _record(container, outcomes, started_at, worker)
        if target.strikes and target.org_id and any(o.status == "succeeded" for o in outcomes):
            claims.forgive_org(db, target.org_id)
    else:
        # Rows may still be ready (a backlog draining): this message leaves them to another
        # one rather than waiting for the sweeper's next round.
        container.ledger.dispatch([batch_key])


def _record(
    container: EngineParts, outcomes: list[claims.Outcome], started_at: datetime, worker: str
) -> None:
    settled = claims.record_outcomes(
        container.db,
        outcomes,
        started_at=started_at,
        worker=worker,
        connection_health=container.engine_state.connection_health,
    )
    container.ledger.dispatch(settled.ready_keys)
    for key, times in retry_messages(settled.retries).items():
        for at in times:
            schedule(container, key, at)


def retry_messages(retries: list[tuple[str, datetime]]) -> dict[str, list[datetime]]:
    """The messages that bring a batch's retries back: per key, one at the earliest retry and
    one at the latest, not one per row (a batch of 200 failed rows would otherwise put 200
    messages on the queue, and a backlog a million). The first message claims the rows ready
    by then; the last one every row left, each at most the jitter of its backoff late."""
    span: dict[str, list[datetime]] = {}
    for key, at in retries:
        times = span.setdefault(key, [at, at])
        times[0], times[1] = min(times[0], at), max(times[1], at)
    return {key: sorted(set(times)) for key, times in span.items()}


def come_back_when_held(container: EngineParts, batch_key: str, until: datetime) -> None:
    """Schedule `batch_key` for when its org's hold ends, unless this process has a message
    for it due before then already: that one finds the org still held and schedules again,
    or claims. (Every message that meets the hold used to schedule one more: an import of a
    million rows, 2,000 dispatch messages, became 2,000 messages waking at the same moment.)"""
    pacing = container.engine_state.pacing
    now, wanted = time.time(), until.timestamp()
    with pacing.lock:
        due = pacing.held_messages.get(batch_key)
        if due is not None and now <= due <= wanted:
            return
        for key, at in list(pacing.held_messages.items()):
            if at < now:  # already delivered
                del pacing.held_messages[key]
        pacing.held_messages[batch_key] = wanted
    schedule(container, batch_key, until)


@contextmanager
def batch_turn(container: EngineParts, batch_key: str) -> Iterator[float | None]:
    """Wait while a batch is filling, then claim inside the block; yields how long it waited,
    or None when this message should leave (nothing ready, or another message of this
    process is already waiting for this key and will take these rows).

    A record goes at once when traffic is light (nothing else ready, no batch of this key in
    the last moments). Under load one message per key and process waits, up to
    `batch_linger_s`, until a full batch is ready, so that records share Collections calls
    instead of spending one call each; it keeps that turn until its claim is made, so that two
    threads never split one batch between them. A message that finds two full batches ready
    claims the second one at once.

    A batch that is nearly full (two thirds) may wait half as long again to fill: under steady
    load a few more moments save a whole call, while a batch that is far from full at the
    linger's end goes then, so latency at moderate load stays as it was.

    The wait ends early once no record has joined for `batch_quiet_s` (the newest ready row is
    that old): the traffic stopped, at the end of a burst, and waiting longer would only add
    latency. Not while this process is sending a batch of the same key: that batch holds the
    CPU and the database's write lock, so arrivals pause because of us, not because the
    traffic stopped.
    """
    settings = container.settings
    db = container.db
    size = settings.batch_size
    pacing = container.engine_state.pacing
    count, oldest, newest = claims.ready_summary(db, batch_key)
    if count == 0:
        yield None
        return
    recently_busy = time.monotonic() - pacing.last_batch_at.get(batch_key, -1e9) < _BUSY_WINDOW_S
    if oldest is None or settings.batch_linger_s <= 0 or (count == 1 and not recently_busy):
        yield 0.0
        return
    with pacing.lock:
        waiting = batch_key in pacing.lingering
        if not waiting:
            pacing.lingering.add(batch_key)
    if waiting:
        yield 0.0 if count >= 2 * size else None
        return
    started = time.monotonic()
    try:
        while count < size:
            waited = (utcnow() - oldest).total_seconds()
            linger = settings.batch_linger_s
            if count >= size * _NEARLY_FULL:
                linger *= _NEARLY_FULL_LINGER
            if waited >= linger:
                break
            time.sleep(min(_POLL_S, linger - waited))
            count, oldest, newest = claims.ready_summary(db, batch_key)
            if oldest is None or newest is None:
                break
            quiet_for = (utcnow() - newest).total_seconds()
            if 0 < settings.batch_quiet_s <= quiet_for and not pacing.in_flight.get(batch_key):
                break
        yield time.monotonic() - started
    finally:
        # Released once the claim is made: a message arriving from now on claims for itself.
        with pacing.lock:
            pacing.lingering.discard(batch_key)


@contextmanager
def sending_batch(pacing: BatchPacing, batch_key: str) -> Iterator[None]:
    """Count the batches of a key this process is sending (see `batch_turn`)."""
    with pacing.lock:
        pacing.in_flight[batch_key] = pacing.in_flight.get(batch_key, 0) + 1
    try:
        yield
    finally:
        with pacing.lock:
            pacing.in_flight[batch_key] -= 1
            if not pacing.in_flight[batch_key]:
                del pacing.in_flight[batch_key]


def schedule(container: EngineParts, batch_key: str, at: datetime) -> None:
    """Dispatch `batch_key` again at `at` (the sweeper is the safety net if this is lost)."""
    delay = max((at - utcnow()).total_seconds(), 0.0)
    container.tasks.dispatch.schedule(args=(batch_key,), delay=delay)


def sweep(container: EngineParts) -> None:
    """Re-queue what is stuck: expired leases, ready rows nobody took, paused work that may
    resume. Runs periodically in the scheduler's rhythm."""
    expired = claims.expire_leases(container.db, container.settings)
    for key, at in expired.retries:  # after their backoff; the sweeper is the safety net
        schedule(container, key, at)
    keys = set(expired.ready_keys)
    keys |= set(claims.resume_paused(container.db))
    keys |= set(claims.overdue_keys(container.db, grace_s=1.0))
    keys |= set(bulk_jobs.overdue_checks(container.db, grace_s=1.0))
    if keys:
        log.info("sweeper.requeued", batch_keys=len(keys))
        container.ledger.dispatch(keys)
