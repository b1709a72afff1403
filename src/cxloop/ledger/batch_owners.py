"""Batching across processes: which worker process owns a batch key, and how many Collections
calls each org may have in flight at once.

Both live in the database, which every process shares (SQLite or PostgreSQL, on one machine or
several), so they hold across machines without another service:

- **Batch key owners** (`batch_key_owners`): one process at a time fills and claims a key's
  batches, under a short lease it renews while it works. A dispatch message that finds the key
  owned by another live process leaves at once: the owner takes those rows. A dead owner's key
  is free again once its lease has run out (`batch_key_lease_s`, seconds), and the sweeper
  re-sends the keys of rows nobody took.
- **Org slots** (`org_concurrency`, `org_batches_in_flight`): a semaphore per org whose count is
  the adaptive bound. A slot is a row; taking one locks the org's bound row (`FOR UPDATE` on
  PostgreSQL, SQLite's writers are serial), counts the live slots and inserts one if the count is
  under the bound. A slot carries a lease too (`lease_s`, renewed by the process's lease
  heartbeat with its task runs: engine/leases.py), so a dead process's slots free themselves
  within a lease.

The database was chosen over Redis because it is there in every deployment (the embedded one
has no Redis), the claims already live there, and the cost is two small writes per batch of up
to 200 records.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from cxloop.db.base import utcnow
from cxloop.db.batching_models import BatchKeyOwner, OrgBatchInFlight, OrgConcurrency
from cxloop.db.uow import Database

INITIAL_BOUND = 2  # batches in flight per org before the bound has learnt anything
# After Salesforce said "too much", the bound stays down this long before it grows again
# (growing at once would find the limit again with the next pair of calls).
GROW_AFTER_SHRINK_S = 60.0

_owners = BatchKeyOwner.__table__.c
_slots = OrgBatchInFlight.__table__.c
_bounds = OrgConcurrency.__table__.c


# --- batch key owners


class KeyOwner(NamedTuple):
    """Who owns a batch key, and until when."""

    worker: str
    until: datetime


def batch_key_owner(db: Database, batch_key: str) -> KeyOwner | None:
    """The live owner of a batch key, or None when nobody owns it (or the lease ran out)."""
    with db.reader() as uow:
        row = uow.session.execute(_OWNER, {"key": batch_key}).one_or_none()
    if row is None or row.until <= utcnow():
        return None
    return KeyOwner(row.worker, row.until)


_OWNER = select(_owners.worker, _owners.until).where(_owners.batch_key == bindparam("key"))


def own_batch_key(db: Database, batch_key: str, worker: str, lease_s: float) -> bool:
    """Take or renew the ownership of a batch key for `lease_s` seconds; False when another
    live process owns it.

    A read first: a message for a key another process owns (the common case with several
    workers) costs no write, and an owner renews only once half its lease is gone.
    """
    now = utcnow()
    owner = batch_key_owner(db, batch_key)
    if owner is not None:
        if owner.worker != worker:
            return False
        if (owner.until - now).total_seconds() > lease_s / 2:
            return True
    until = now + timedelta(seconds=lease_s)
    with db.uow() as uow:
        taken = uow.session.execute(
            update(BatchKeyOwner.__table__)
            .where(
                _owners.batch_key == batch_key,
                or_(_owners.worker == worker, _owners.until <= now),
            )
            .values(worker=worker, until=until)
        ).rowcount
        if taken:
            uow.commit()
            return True
        exists = uow.session.execute(
            select(_owners.worker).where(_owners.batch_key == batch_key)
        ).first()
        if exists is not None:
            return False  # another process owns it (its lease is live)
        try:  # (PostgreSQL refuses the INSERT itself, SQLite the commit)
            uow.session.execute(
                insert(BatchKeyOwner.__table__).values(
                    batch_key=batch_key, worker=worker, until=until
                )
            )
            uow.commit()
        except IntegrityError:
            return False  # another process took it at the same moment
    return True


def release_batch_key(db: Database, batch_key: str, worker: str) -> None:
    """Give up the ownership of a key (if `worker` still has it): the next message for the key,
    in any process, takes it."""
    with db.uow() as uow:
        uow.session.execute(
            delete(BatchKeyOwner.__table__).where(
                _owners.batch_key == batch_key, _owners.worker == worker
            )
        )
        uow.commit()


# --- per-org slots


class OrgSlot(NamedTuple):
    """One Collections call's place in its org's bound."""

    id: int
    org_id: str
    bound: int  # the bound when the slot was taken
    saturated: bool  # it took the last free place: more might have gone if the bound allowed


def org_has_free_slot(db: Database, org_id: str, max_bound: int) -> bool:
    """Whether a slot of the org looks free now (a read, no lock: `take_org_slot` decides)."""
    now = utcnow()
    with db.reader() as uow:
        bound = uow.session.execute(_BOUND, {"org": org_id}).scalar()
        used = uow.session.execute(_USED, {"org": org_id, "now": now}).scalar() or 0
    return used < min(bound if bound is not None else INITIAL_BOUND, max_bound)


_BOUND = select(_bounds.bound).where(_bounds.org_id == bindparam("org"))
_USED = select(func.count()).where(
    _slots.org_id == bindparam("org"), _slots.until > bindparam("now", type_=_slots.until.type)
)


def take_org_slot(
    db: Database, org_id: str, worker: str, batch_key: str, *, max_bound: int, hold_s: float
) -> OrgSlot | None:
    """Take one of the org's slots for `hold_s` seconds at most; None when all are in use."""
    now = utcnow()
    with db.uow() as uow:
        session = uow.session
        bound = session.execute(
            select(_bounds.bound).where(_bounds.org_id == org_id).with_for_update()
        ).scalar()
        if bound is None:
            bound = min(INITIAL_BOUND, max_bound)
            try:
                session.execute(
                    insert(OrgConcurrency.__table__).values(
                        org_id=org_id, bound=bound, updated_at=now
                    )
                )
            except IntegrityError:
                return None  # another process made the row this moment: ask again
        bound = min(bound, max_bound)
        # A dead process's slots run out: drop them, so that they stop counting.
        session.execute(
            delete(OrgBatchInFlight.__table__).where(_slots.org_id == org_id, _slots.until <= now)
        )
        used = session.execute(select(func.count()).where(_slots.org_id == org_id)).scalar() or 0
        if used >= bound:
            uow.commit()
            return None
        slot_id = session.execute(
            insert(OrgBatchInFlight.__table__)
            .values(
                org_id=org_id,
                worker=worker,
                batch_key=batch_key,
                until=now + timedelta(seconds=hold_s),
            )
            .returning(_slots.id)
        ).scalar_one()
        uow.commit()
    return OrgSlot(slot_id, org_id, bound, used + 1 >= bound)


def give_back_org_slot(db: Database, slot: OrgSlot, *, grow: bool, max_bound: int) -> None:
    """Free a slot; `grow` (the call was slow, succeeded, and more was ready than the bound
    let go) doubles the bound the slot was taken under, up to `max_bound`.

    Every call back from the same round trip asks the same target, so the bound doubles once
    per round trip (2, 4, 8 in about two calls' time), not once per call; growing by one per
    call took a burst 4-5 s to reach 8 at a real org's latency (1.15 s a call of 200), while
    the records piled up behind a bound of 2."""
    with db.uow() as uow:
        uow.session.execute(delete(OrgBatchInFlight.__table__).where(_slots.id == slot.id))
        target = min(max_bound, slot.bound * 2)
        if grow:
            now = utcnow()
            calm_since = now - timedelta(seconds=GROW_AFTER_SHRINK_S)
            uow.session.execute(
                update(OrgConcurrency.__table__)
                .where(
                    _bounds.org_id == slot.org_id,
                    _bounds.bound < target,
                    or_(_bounds.shrunk_at.is_(None), _bounds.shrunk_at < calm_since),
                )
                .values(bound=target, updated_at=now)
            )
        uow.commit()


def shrink_org_bound(db: Database, org_id: str) -> int:
    """Halve the org's bound (at least 1): Salesforce refused a call for the org's limits, or
    its API usage is near the allocation. Returns the new bound."""
    now = utcnow()
    try:
        with db.uow() as uow:
            bound = uow.session.execute(
                select(_bounds.bound).where(_bounds.org_id == org_id).with_for_update()
            ).scalar()
            new = 1 if bound is None else max(1, bound // 2)
            if bound is None:  # (PostgreSQL refuses a clashing INSERT itself, SQLite the commit)
                uow.session.execute(
                    insert(OrgConcurrency.__table__).values(
                        org_id=org_id, bound=new, updated_at=now, shrunk_at=now
                    )
                )
            else:
                uow.session.execute(
                    update(OrgConcurrency.__table__)
                    .where(_bounds.org_id == org_id)
                    .values(bound=new, updated_at=now, shrunk_at=now)
                )
            uow.commit()
    except IntegrityError:  # made by another process this moment: shrink that one
        return shrink_org_bound(db, org_id)
    return new


def org_bound(db: Database, org_id: str) -> int | None:
    """The org's bound now (None before its first batch)."""
    with db.reader() as uow:
        return uow.session.execute(_BOUND, {"org": org_id}).scalar()
