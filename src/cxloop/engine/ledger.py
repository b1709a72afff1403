"""The ledger's moves: claim ready task runs with a lease, record outcomes, sweep what's stuck.

Claiming is one UPDATE that only one worker can win for a row: `FOR UPDATE SKIP LOCKED` on
PostgreSQL (the SQLite dialect drops the clause; its writers are serialised by BEGIN IMMEDIATE).
A worker that dies leaves its rows `running` with a lease that runs out; the sweeper puts them
back, marked ambiguous, so an insert with a dedupe field is looked up before it is sent again.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import selectinload

from cxloop import metrics
from cxloop.db.base import utcnow
from cxloop.db.models import Connection
from cxloop.db.run_models import (
    READY_STATUSES,
    OrgThrottle,
    OutboundNotification,
    Run,
    TaskRun,
    TaskRunAttempt,
)
from cxloop.db.uow import Database
from cxloop.services.runs import release_blocked, settle_run_status
from cxloop.services.workflows import resolve_owner_connection

if TYPE_CHECKING:
    from cxloop.settings import Settings


def claim_batch(
    db: Database, batch_key: str, *, limit: int, lease_s: int, worker: str
) -> list[str]:
    """Claim up to `limit` ready task runs of one batch key; returns their ids."""
    now = utcnow()
    ready = (
        select(TaskRun.id)
        .where(
            TaskRun.batch_key == batch_key,
            TaskRun.status.in_(READY_STATUSES),
            TaskRun.next_attempt_at <= now,
        )
        .order_by(TaskRun.next_attempt_at, TaskRun.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with db.uow() as uow:
        claimed = list(
            uow.session.execute(
                update(TaskRun)
                .where(TaskRun.id.in_(ready))
                .values(
                    status="running",
                    claimed_by=worker,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=TaskRun.attempts + 1,
                    first_attempt_at=func.coalesce(TaskRun.first_attempt_at, now),
                )
                .returning(TaskRun.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
        uow.commit()
    return claimed


def ready_summary(db: Database, batch_key: str) -> tuple[int, datetime | None]:
    """How many task runs of a batch key are ready now, and since when the oldest is."""
    now = utcnow()
    with db.reader() as uow:
        count, oldest = uow.session.execute(
            select(func.count(), func.min(TaskRun.next_attempt_at)).where(
                TaskRun.batch_key == batch_key,
                TaskRun.status.in_(READY_STATUSES),
                TaskRun.next_attempt_at <= now,
            )
        ).one()
    return int(count or 0), oldest


@dataclass
class Outcome:
    """What happened to one claimed task run in one attempt."""

    task_run_id: str
    status: str  # succeeded | failed | waiting_retry | paused | skipped
    reason: str = ""
    record_id: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    retry_at: datetime | None = None
    ambiguous: bool = False


@dataclass
class Settled:
    """What recording a batch of outcomes set in motion."""

    ready_keys: list[str] = field(default_factory=list)
    retries: list[tuple[str, datetime]] = field(default_factory=list)


def record_outcomes(
    db: Database, outcomes: Sequence[Outcome], *, started_at: datetime, worker: str
) -> Settled:
    """Store each task run's outcome and attempt, settle dependents and run statuses.

    Written with bulk statements (one UPDATE by primary key and one INSERT for the whole
    batch), not object by object: on SQLite this transaction holds the only write lock, and
    the listener and the response API wait for it.
    """
    settled = Settled()
    now = utcnow()
    with db.uow() as uow:
        session = uow.session
        rows = {
            row.id: row
            for row in session.execute(
                select(
                    TaskRun.id,
                    TaskRun.status,
                    TaskRun.claimed_by,
                    TaskRun.attempts,
                    TaskRun.ambiguous,
                    TaskRun.run_id,
                    TaskRun.task_type,
                    TaskRun.batch_key,
                    TaskRun.created_at,
                ).where(TaskRun.id.in_([o.task_run_id for o in outcomes]))
            )
        }
        changes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        run_ids: set[str] = set()
        for outcome in outcomes:
            row = rows.get(outcome.task_run_id)
            # A row someone else holds now (our lease ran out) is theirs to finish.
            if row is None or row.status != "running" or row.claimed_by != worker:
                continue
            columns = outcome_columns(outcome, now)
            if outcome.status in ("waiting_retry", "paused") and row.ambiguous:
                # Once an attempt may have reached Salesforce unseen, the row stays suspect
                # until an answer settles it: a later failure that never got as far as the
                # dedupe lookup must not make the next attempt insert blindly.
                columns["ambiguous"] = True
            changes.append({"id": row.id, **columns})
            attempts.append(
                {
                    "task_run_id": row.id,
                    "number": row.attempts,
                    "started_at": started_at,
                    "finished_at": now,
                    "outcome": outcome.status if not outcome.ambiguous else "ambiguous",
                    "batch_size": len(outcomes),
                    "payload": outcome.payload,
                    "reply": outcome.reply,
                    "error": outcome.error,
                }
            )
            metrics.TASK_RUNS.labels(row.task_type, outcome.status).inc()
            if outcome.status == "succeeded":
                metrics.RECORD_LATENCY.observe((now - row.created_at).total_seconds())
            if outcome.status == "waiting_retry" and outcome.retry_at is not None:
                settled.retries.append((row.batch_key, outcome.retry_at))
            run_ids.add(row.run_id)
        if changes:
            session.execute(update(TaskRun), changes)
            session.execute(insert(TaskRunAttempt), attempts)
        # Settles every run's status too, blocked task runs or not.
        settled.ready_keys = release_blocked(session, run_ids)
        uow.commit()
    return settled


def outcome_columns(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The columns an outcome sets on its task run."""
    columns: dict[str, Any] = {
        "status": outcome.status,
        "status_reason": outcome.reason,
        "lease_expires_at": None,
        "claimed_by": None,
        "ambiguous": outcome.ambiguous,
    }
    if outcome.payload is not None:
        columns["payload"] = outcome.payload
    if outcome.status == "succeeded":
        columns |= {
            "record_id": outcome.record_id,
            "result": outcome.result,
            "error": None,
            "finished_at": now,
        }
    elif outcome.status == "failed":
        columns |= {"error": outcome.error, "finished_at": now}
    elif outcome.status == "waiting_retry":
        columns |= {"error": outcome.error, "next_attempt_at": outcome.retry_at or now}
    elif outcome.status == "paused":
        columns["error"] = outcome.error
    elif outcome.status == "skipped":  # nothing to do, on purpose (status_reason says why)
        columns |= {"result": outcome.result, "error": None, "finished_at": now}
    return columns


def retry_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter: spreads retries so they don't arrive in step."""
    ceiling = min(cap_s, base_s * (2 ** max(attempts - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


def retry_or_give_up(
    row_first_attempt: datetime | None,
    attempts: int,
    *,
    horizon_s: int,
    base_s: float,
    cap_s: float,
) -> datetime | None:
    """When to try again, or None when the retry horizon is spent."""
    now = utcnow()
    at = now + timedelta(seconds=retry_delay(attempts, base_s, cap_s))
    first = row_first_attempt or now
    return at if at <= first + timedelta(seconds=horizon_s) else None


def next_retry_at(settings: Settings, task_run: TaskRun) -> datetime | None:
    """When this task run tries again after a transient error, or None when its retry horizon
    is spent (the settings' backoff)."""
    return retry_or_give_up(
        task_run.first_attempt_at,
        task_run.attempts,
        horizon_s=settings.retry_horizon_s,
        base_s=settings.retry_base_s,
        cap_s=settings.retry_cap_s,
    )


# --- per-org slow-down


def use_owner_connection(
    db: Database, owner_id: str, name_or_id: str, task_runs: Iterable[TaskRun]
) -> str | None:
    """The owner's connection for a batch (by id, else name), noted on its task runs so that
    pausing and resuming by connection finds them; None when the owner has no such one."""
    connection_id = _owner_connection_id(db, owner_id, name_or_id)
    ids = [t.id for t in task_runs if t.connection_id != connection_id]
    if connection_id is not None and ids:
        with db.uow() as uow:
            uow.session.execute(
                update(TaskRun).where(TaskRun.id.in_(ids)).values(connection_id=connection_id)
            )
            uow.commit()
    return connection_id


def _owner_connection_id(db: Database, owner_id: str, name_or_id: str) -> str | None:
    connection = resolve_owner_connection(db, owner_id, name_or_id)
    return connection.id if connection else None


def org_of_owner_connection(db: Database, owner_id: str, name_or_id: str) -> str | None:
    connection_id = _owner_connection_id(db, owner_id, name_or_id)
    return org_of_connection(db, connection_id) if connection_id else None


def org_of_connection(db: Database, connection_id: str) -> str | None:
    with db.reader() as uow:
        return uow.session.scalar(select(Connection.org_id).where(Connection.id == connection_id))


def throttled_until(db: Database, org_id: str) -> datetime | None:
    """When the org may be called again, if it is being held back now."""
    with db.reader() as uow:
        throttle = uow.session.get(OrgThrottle, org_id)
    if throttle is None or throttle.until <= utcnow():
        return None
    return throttle.until


def throttle_org(
    db: Database, org_id: str, seconds: float, reason: str, *, escalate: bool
) -> datetime:
    """Hold an org back for `seconds` (doubling on repeated strikes when `escalate`)."""
    with db.uow() as uow:
        throttle = uow.session.get(OrgThrottle, org_id)
        if throttle is None:
            throttle = OrgThrottle(org_id=org_id, until=utcnow(), strikes=0)
            uow.session.add(throttle)
        throttle.strikes = (throttle.strikes or 0) + 1 if escalate else 0
        factor = 2 ** min(throttle.strikes - 1, 5) if escalate else 1
        throttle.until = utcnow() + timedelta(seconds=seconds * factor)
        throttle.reason = reason
        until = throttle.until
        uow.commit()
    return until


# --- the sweeper


def expire_leases(db: Database) -> list[str]:
    """Put task runs whose worker vanished back to ready (ambiguous); returns their keys."""
    now = utcnow()
    with db.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(TaskRun)
                .where(TaskRun.status == "running", TaskRun.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            )
        )
        for row in rows:
            row.status = "pending"
            row.ambiguous = True
            row.claimed_by = None
            row.lease_expires_at = None
            row.next_attempt_at = now
            row.status_reason = "its worker stopped before finishing; tried again"
        uow.commit()
    return sorted({row.batch_key for row in rows})


def overdue_keys(db: Database, grace_s: float) -> list[str]:
    """Batch keys with ready task runs nobody picked up (a lost message, a restart)."""
    before = utcnow() - timedelta(seconds=grace_s)
    with db.reader() as uow:
        return list(
            uow.session.scalars(
                select(TaskRun.batch_key)
                .where(TaskRun.status.in_(READY_STATUSES), TaskRun.next_attempt_at <= before)
                .distinct()
                .limit(1000)
            )
        )


def resume_paused(db: Database) -> list[str]:
    """Task runs paused for a connection that is active again go back to ready."""
    with db.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(TaskRun)
                .join(Connection, Connection.id == TaskRun.connection_id)
                .where(TaskRun.status == "paused", Connection.status == "active")
            )
        )
        run_ids = set()
        for row in rows:
            row.status = "pending"
            row.status_reason = "resumed: the connection is active again"
            row.next_attempt_at = utcnow()
            # The pause must not eat the retry horizon.
            row.first_attempt_at = None
            run_ids.add(row.run_id)
        for run in uow.session.scalars(select(Run).where(Run.id.in_(run_ids))):
            settle_run_status(run)
        uow.commit()
    return sorted({row.batch_key for row in rows})


def pause_connection_work(db: Database, connection_id: str, reason: str) -> None:
    """Pause every ready task run of a connection that cannot work now."""
    with db.uow() as uow:
        uow.session.execute(
            update(TaskRun)
            .where(TaskRun.connection_id == connection_id, TaskRun.status.in_(READY_STATUSES))
            .values(status="paused", status_reason=reason)
        )
        uow.commit()


def delete_old_runs(db: Database, older_than_days: int) -> int:
    """Forget finished runs older than the retention period."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with db.uow() as uow:
        ids = list(
            uow.session.scalars(
                select(Run.id)
                .where(Run.created_at < cutoff, Run.status.in_(("succeeded", "failed", "skipped")))
                .limit(10_000)
            )
        )
        for run in uow.session.scalars(select(Run).where(Run.id.in_(ids))):
            uow.session.delete(run)
        # The inbox only needs to outlive Salesforce's retries (24 hours): it goes with the runs.
        uow.session.execute(
            delete(OutboundNotification).where(OutboundNotification.received_at < cutoff)
        )
        uow.commit()
    return len(ids)


def task_runs_by_id(db: Database, ids: Iterable[str]) -> list[TaskRun]:
    """Claimed task runs with their runs, in claim order."""
    wanted = list(ids)
    with db.reader() as uow:
        rows = {
            row.id: row
            for row in uow.session.scalars(
                select(TaskRun).where(TaskRun.id.in_(wanted)).options(selectinload(TaskRun.run))
            )
        }
    return [rows[i] for i in wanted if i in rows]
