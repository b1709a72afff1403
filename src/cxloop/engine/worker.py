"""What a worker does with a batch key: wait a moment for company, claim, execute, record.

Under load, ready task runs pile up while a batch is in flight, and the one thread that drives
a key (in the one process that owns it, `ledger.batch_owners`) waits (up to `batch_linger_s`)
for a full batch of 200: one Collections call carries them all. When traffic is light a record
goes at once, and a batch stops waiting when nothing joins it for `batch_quiet_s`. Full
batches go out side by side, each from a sender thread, up to the org's bound of batches in
flight. One dispatch message works through batches while rows are ready, so the queue carries
a few messages a second per key, not one per record.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

import structlog

from cxloop.db.base import utcnow
from cxloop.engine import directory_task, email_task, salesforce_batch, salesforce_bulk
from cxloop.engine.follow_up import follow_up, schedule
from cxloop.engine.render import RunGone
from cxloop.ledger import SalesforceBatchKey, batch_owners, bulk_jobs, claims

if TYPE_CHECKING:
    from cxloop.db.run_models import TaskRun
    from cxloop.engine.parts import EngineParts

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
# Under steady traffic (a batch of the key in flight or sent moments ago) a partial batch
# waits to fill while records keep arriving, until its oldest record has waited this many
# lingers (2 s by default: a batch fills in that time from 100 records a second up).
_STEADY_LINGERS = 4
# ... and stops early when nothing joined for this many times `batch_quiet_s`: a stall of the
# intake (the batch being recorded holds the CPU and the write lock; a busy machine) is not
# the end of the traffic, and a partial batch sent for it costs a call.
_STEADY_QUIETS = 3
_SLOW_CALL_S = 0.5  # a call this slow is worth another beside it (the org's bound may grow)
_SLOT_PATIENCE_S = 10.0  # how long a driver waits for one of its org's slots ...
_NO_SLOT_RETRY_S = 0.5  # ... before it leaves the key to a message this much later


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
            task = directory_task if batch_key.startswith("directory|") else email_task
            outcomes = [_executed(container, task.execute, t) for t in task_runs]
        except Exception:
            # A bug must not strand the rows: their lease runs out and the sweeper retries.
            log.exception("worker.batch_crashed", batch_key=batch_key, size=len(task_runs))
            return
        _record(container, outcomes, started_at, worker)


def _executed(
    container: EngineParts,
    execute: Callable[[EngineParts, TaskRun], claims.Outcome],
    task_run: TaskRun,
) -> claims.Outcome:
    """The outcome of a directory or email task run: a permanent failure once its workflow is
    deleted (its task is gone with it)."""
    try:
        return execute(container, task_run)
    except RunGone as exc:
        return claims.Outcome.permanent_failure(task_run.id, "WORKFLOW_DELETED", str(exc))


def _process_salesforce(container: EngineParts, batch_key: str) -> None:
    """Salesforce batches, driven by one thread of the one process that owns the key.

    The key's owner (`batch_owners.own_batch_key`, a short lease in the database renewed while
    it works) fills and claims its batches alone, so that processes never split a batch between
    them; a message for a key another live process owns leaves at once. In this process, one
    thread drives a key: each round looks up where its records go (the owner's connection, its
    org's hold), waits for company (`batch_turn`), takes one of the org's slots (the per-org
    bound all processes share), claims up to a batch with one UPDATE that returns the rows,
    and hands them to a sender thread: one Collections call, every outcome recorded in one
    transaction. So while a batch is being sent the next full one can go beside it, up to the
    org's bound. The driver leaves when nothing is ready, waits for its senders, and gives the
    key up. After `MAX_ROUNDS` batches it hands the key to a new message at once, leaving its
    batches in flight: waiting for them would empty the org's pipeline every `MAX_ROUNDS`
    batches (a second or more without a call under a steady load)."""
    db, settings = container.db, container.settings
    state = container.engine_state
    pacing = state.pacing
    owner = state.worker_id
    with pacing.lock:
        if batch_key in pacing.driving:
            return  # a thread of this process drives the key: it takes these rows
        pacing.driving.add(batch_key)
    senders: list[threading.Thread] = []
    owned = False
    end = DriveEnd.DONE
    try:
        if not batch_owners.own_batch_key(db, batch_key, owner, settings.batch_key_lease_s):
            return  # another live process owns the key and takes these rows
        owned = True
        end = _drive(container, batch_key, senders)
    finally:
        try:
            if end is not DriveEnd.ROUNDS_USED:
                _wait_for_senders(container, batch_key, senders)
            if owned:  # (after a crash too: the next message need not wait out the lease)
                batch_owners.release_batch_key(db, batch_key, owner)
        finally:
            with pacing.lock:
                pacing.driving.discard(batch_key)
    if end is not DriveEnd.LEFT and claims.ready_summary(db, batch_key).count:
        # Rows that came while we were leaving (their messages may have found the key still
        # ours and left), or that the rounds left: send the key again; whoever gets it now
        # owns it (a thread of this process sees the batches still in flight, `pacing`).
        container.tasks.dispatch(batch_key)


class DriveEnd(Enum):
    """How a driver's rounds ended."""

    DONE = "done"  # nothing more was ready
    LEFT = "left"  # left to later (the org is held back, or no slot came free: the key is
    # scheduled for when it may go) or to another process (which took the key over)
    ROUNDS_USED = "rounds used"  # `MAX_ROUNDS` batches went: other keys get a thread now


def _drive(container: EngineParts, batch_key: str, senders: list[threading.Thread]) -> DriveEnd:
    """The rounds of one driver, and how they ended."""
    db, settings = container.db, container.settings
    key = SalesforceBatchKey.parse(batch_key)
    state = container.engine_state
    # Claims name the process and thread as every claim does (`WORKER_ID`); the key's owner is
    # the container (`state.worker_id`).
    worker = f"{WORKER_ID}:{threading.get_ident()}"
    for _ in range(MAX_ROUNDS):
        target = claims.batch_target(db, key.owner_id, key.connection)
        if target.held_until is not None:
            come_back_when_held(container, batch_key, target.held_until)
            return DriveEnd.LEFT
        # A backlog goes through a Bulk API 2.0 job (the rest is dispatched again).
        if salesforce_bulk.send_if_large(container, batch_key, target, worker):
            return DriveEnd.LEFT
        with batch_turn(container, batch_key) as waited:
            if waited is None:
                return DriveEnd.DONE
            asked_at = time.monotonic()
            slot = _take_slot(container, batch_key, target, worker) if target.org_id else None
            if target.org_id and slot is None:
                schedule(container, batch_key, utcnow() + timedelta(seconds=_NO_SLOT_RETRY_S))
                return DriveEnd.LEFT
            waited += time.monotonic() - asked_at
            if waited > _POLL_S:  # the org may have been held back meanwhile
                target = claims.batch_target(db, key.owner_id, key.connection)
                if target.held_until is not None:
                    _give_back(container, slot, grow=False)
                    come_back_when_held(container, batch_key, target.held_until)
                    return DriveEnd.LEFT
            claimed = claims.claim_task_runs(
                db,
                batch_key,
                limit=settings.batch_size,
                lease_s=settings.lease_s,
                worker=worker,
                connection_id=target.connection_id,
            )
        if not claimed:
            _give_back(container, slot, grow=False)
            return DriveEnd.DONE
        state.pacing.last_batch_at[batch_key] = time.monotonic()
        with state.pacing.lock:  # counted before the thread starts: the next round sees it
            state.pacing.in_flight[batch_key] = state.pacing.in_flight.get(batch_key, 0) + 1
        sender = threading.Thread(
            target=_send,
            args=(container, batch_key, claimed, target, slot, worker),
            name=f"cxloop-send-{len(senders)}",
            daemon=True,
        )
        with state.pacing.lock:
            state.pacing.senders.add(sender)
        sender.start()
        senders.append(sender)
        if not batch_owners.own_batch_key(
            db, batch_key, state.worker_id, settings.batch_key_lease_s
        ):
            # We stalled past the lease and another process took the key over.
            return DriveEnd.LEFT
    return DriveEnd.ROUNDS_USED


def _take_slot(
    container: EngineParts, batch_key: str, target: claims.BatchTarget, worker: str
) -> batch_owners.OrgSlot | None:
    """One of the org's slots, waiting while all are in use (renewing the key meanwhile);
    None when none came free in `_SLOT_PATIENCE_S` (the key is tried again shortly). The slot
    is held in the name of `worker` (this thread's claims' name) for a lease, which the
    process's lease heartbeat renews with its rows (engine/leases.py): a dead process's slots
    free themselves `lease_s` after its last beat."""
    db, settings = container.db, container.settings
    assert target.org_id is not None
    state = container.engine_state
    most = settings.salesforce_max_concurrent_batches
    hold_s = settings.lease_s
    deadline = time.monotonic() + _SLOT_PATIENCE_S
    org_id = target.org_id
    pacing = state.pacing
    marked = False
    try:
        while True:
            if batch_owners.org_has_free_slot(db, org_id, most):
                slot = batch_owners.take_org_slot(
                    db, org_id, worker, batch_key, max_bound=most, hold_s=hold_s
                )
                if slot is not None:
                    return slot
            if time.monotonic() >= deadline:
                return None
            if not marked:  # a batch is ready that the bound holds back (see `_send`)
                with pacing.lock:
                    pacing.waiting_for_slot[org_id] = pacing.waiting_for_slot.get(org_id, 0) + 1
                marked = True
            time.sleep(_POLL_S)
            batch_owners.own_batch_key(db, batch_key, state.worker_id, settings.batch_key_lease_s)
    finally:
        if marked:
            with pacing.lock:
                pacing.waiting_for_slot[org_id] -= 1
                if not pacing.waiting_for_slot[org_id]:
                    del pacing.waiting_for_slot[org_id]


def _give_back(container: EngineParts, slot: batch_owners.OrgSlot | None, *, grow: bool) -> None:
    if slot is not None:
        batch_owners.give_back_org_slot(
            container.db,
            slot,
            grow=grow,
            max_bound=container.settings.salesforce_max_concurrent_batches,
        )


def _send(
    container: EngineParts,
    batch_key: str,
    claimed: list[claims.ClaimedTaskRun],
    target: claims.BatchTarget,
    slot: batch_owners.OrgSlot | None,
    worker: str,
) -> None:
    """A sender thread: one Collections call for a claimed batch, its outcomes recorded, the
    org's slot given back (the org's bound doubles when the call was slow, succeeded, and
    more was ready than the bound let go: `batch_owners.give_back_org_slot`)."""
    pacing = container.engine_state.pacing
    started_at = utcnow()
    started = time.monotonic()
    grow = False
    try:
        outcomes = salesforce_batch.execute(container, claimed, target)
        limited = any(
            (o.error or {}).get("error_code") == "REQUEST_LIMIT_EXCEEDED" for o in outcomes
        )
        slow = time.monotonic() - started >= _SLOW_CALL_S
        # More was ready than the bound let go: this call took the last free slot, or a
        # driver of this process is waiting for one now (then the bound doubles, once per
        # round trip, while the org keeps up).
        wanted = slot is not None and (
            slot.saturated or bool(pacing.waiting_for_slot.get(slot.org_id))
        )
        grow = wanted and slow and not limited
        _record(container, outcomes, started_at, worker)
        if target.strikes and target.org_id and any(o.status == "succeeded" for o in outcomes):
            claims.forgive_org(container.db, target.org_id)  # it answers again: strikes over
    except Exception:
        # A bug must not strand the rows: their lease runs out and the sweeper retries.
        log.exception("worker.batch_crashed", batch_key=batch_key, size=len(claimed))
    finally:
        try:
            _give_back(container, slot, grow=grow)
        finally:
            with pacing.lock:
                pacing.in_flight[batch_key] -= 1
                if not pacing.in_flight[batch_key]:
                    del pacing.in_flight[batch_key]
                pacing.senders.discard(threading.current_thread())


def _wait_for_senders(
    container: EngineParts, batch_key: str, senders: list[threading.Thread]
) -> None:
    """Wait until this driver's batches are recorded, keeping the key meanwhile (the rows
    that arrive now are ours to take next)."""
    settings = container.settings
    owner = container.engine_state.worker_id
    for sender in senders:
        while sender.is_alive():
            sender.join(timeout=settings.batch_key_lease_s / 3)
            if sender.is_alive():
                batch_owners.own_batch_key(
                    container.db, batch_key, owner, settings.batch_key_lease_s
                )


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
    follow_up(container, settled)


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
    or None when nothing is ready. Called by the one thread that drives the key in the one
    process that owns it (`_process_salesforce`), so no other thread can split its batch.

    A record goes at once when traffic is light (nothing else ready, no batch of this key in
    the last moments). Otherwise the driver waits until a full batch of 200 is ready, so that
    records share Collections calls instead of spending one call each:

    - after a quiet spell (no batch of the key in flight or sent in the last moments), up to
      `batch_linger_s`; a batch that is nearly full (two thirds) may wait half as long again,
      since a few more moments save a whole call;
    - under steady traffic (a batch of the key in flight or just sent), while records keep
      arriving, until the oldest has waited `_STEADY_LINGERS` lingers: each partial batch sent
      while the traffic goes on is a call of the org's allocation that waiting would have
      saved, and the batches in flight carry the records that came before.

    The wait ends early once the traffic has stopped: no record has joined for
    `batch_quiet_s` (at the end of a burst, waiting longer would only add latency), or for
    `_STEADY_QUIETS` times that under steady traffic (a batch being sent and recorded holds
    the CPU and the database's write lock, so arrivals pause for a moment because of us).

    With nothing ready while a batch of the key is in flight, the driver stays for the next
    records instead of leaving: it would hand the key over, and a new driver (perhaps in
    another process) knows nothing of the traffic and sends what piled up meanwhile as a
    partial batch.
    """
    settings = container.settings
    db = container.db
    size = settings.batch_size
    pacing = container.engine_state.pacing
    owner, lease_s = container.engine_state.worker_id, settings.batch_key_lease_s
    started = renewed = time.monotonic()

    def key_lost() -> bool:
        """Renew the key once a third of its lease has passed; True if it is no longer ours.

        A long wait keeps the key (or finds it taken after a stall: the owner now takes
        these rows)."""
        nonlocal renewed
        if time.monotonic() - renewed < lease_s / 3:
            return False
        if not batch_owners.own_batch_key(db, batch_key, owner, lease_s):
            return True
        renewed = time.monotonic()
        return False

    count, oldest, newest = claims.ready_summary(db, batch_key)
    while count == 0 and pacing.in_flight.get(batch_key):
        if key_lost():
            yield None
            return
        time.sleep(_POLL_S)
        count, oldest, newest = claims.ready_summary(db, batch_key)
    if count == 0:
        yield None
        return
    recently_busy = time.monotonic() - pacing.last_batch_at.get(batch_key, -1e9) < _BUSY_WINDOW_S
    if oldest is None or settings.batch_linger_s <= 0 or (count == 1 and not recently_busy):
        yield 0.0
        return
    steady = recently_busy or bool(pacing.in_flight.get(batch_key))
    while count < size:
        if key_lost():
            yield None
            return
        linger = settings.batch_linger_s
        if steady:
            linger *= _STEADY_LINGERS
        elif count >= size * _NEARLY_FULL:
            linger *= _NEARLY_FULL_LINGER
        waited = (utcnow() - oldest).total_seconds()
        if waited >= linger:
            break
        time.sleep(min(_POLL_S, linger - waited))
        count, oldest, newest = claims.ready_summary(db, batch_key)
        if oldest is None or newest is None:
            break
        quiet_for = (utcnow() - newest).total_seconds()
        quiet_s = settings.batch_quiet_s * (_STEADY_QUIETS if steady else 1)
        if 0 < quiet_s <= quiet_for:
            break
    yield time.monotonic() - started


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
