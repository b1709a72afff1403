"""Claims and outcomes: claim ready task runs with a lease, record outcomes, sweep what's stuck.

Claiming is one UPDATE that only one worker can win for a row: `FOR UPDATE SKIP LOCKED` on
PostgreSQL (the SQLite dialect drops the clause; its writers are serialised by BEGIN IMMEDIATE).
A living worker renews the leases of the rows it holds (`engine/leases.py`); one that dies leaves
its rows `running` with a lease that runs out. The sweeper takes them back with an attempt that
says so, marked ambiguous, so an insert with a dedupe field is looked up before it is sent
again.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Integer, Select, Update, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from cxloop import metrics
from cxloop.db.base import in_chunks, utcnow
from cxloop.db.models import Connection, Response, Survey, User
from cxloop.db.run_models import (
    READY_STATUSES,
    BulkJob,
    OrgThrottle,
    OutboundNotification,
    Run,
    TaskRun,
    TaskRunAttempt,
)
from cxloop.db.uow import Database
from cxloop.db.workflow_models import WorkflowTaskPause
from cxloop.domain.run_errors import WORKER_LOST_CODE
from cxloop.ledger.connection_health import ConnectionHealth, write_uses
from cxloop.ledger.transitions import update_rows

if TYPE_CHECKING:
    from cxloop.settings import Settings


class ClaimedTaskRun(NamedTuple):
    """A task run as its claim left it: what executing and recording it needs, read back by
    the claim itself (no second query, no ORM object)."""

    id: str
    run_id: str
    task_id: str
    task_type: str
    batch_key: str
    attempts: int  # this attempt's number
    first_attempt_at: datetime | None
    ambiguous: bool
    created_at: datetime


_t = TaskRun.__table__.c
# Ready, written as literals: the partial index `ix_task_runs_ready_queue` (migration 0019) is
# only chosen when the planner sees the same constants as its WHERE (SQLite never matches a
# bound parameter against it; PostgreSQL's generic plans would not either).
IS_READY = _t.status.in_(
    bindparam("ready_statuses", [str(s) for s in READY_STATUSES], expanding=True,
              literal_execute=True)
)  # fmt: skip
_CLAIMED_COLUMNS = (
    _t.id, _t.run_id, _t.task_id, _t.task_type, _t.batch_key, _t.attempts, _t.first_attempt_at,
    _t.ambiguous, _t.created_at,
)  # fmt: skip
CLAIMED_COLUMNS = _CLAIMED_COLUMNS  # what a claim returns (the Bulk job's claim too)


def claim_batch(
    db: Database, batch_key: str, *, limit: int, lease_s: int, worker: str
) -> list[str]:
    """Claim up to `limit` ready task runs of one batch key; returns their ids."""
    claimed = claim_task_runs(db, batch_key, limit=limit, lease_s=lease_s, worker=worker)
    return [task_run.id for task_run in claimed]


def claim_task_runs(
    db: Database,
    batch_key: str,
    *,
    limit: int,
    lease_s: int,
    worker: str,
    connection_id: str | None = None,
) -> list[ClaimedTaskRun]:
    """Claim up to `limit` ready task runs of one batch key, oldest first.

    One UPDATE ... RETURNING: the rows come back as the claim left them. `connection_id`, when
    given, is noted on them in the same statement, so that pausing and resuming by connection
    finds them.
    """
    statement = claim_statement(
        batch_key, limit=limit, lease_s=lease_s, worker=worker, connection_id=connection_id
    )
    with db.uow() as uow:
        claimed = [ClaimedTaskRun(*row) for row in uow.session.execute(statement)]
        uow.commit()
    claimed.sort(key=lambda task_run: (task_run.created_at, task_run.id))
    return claimed


def claim_statement(
    batch_key: str, *, limit: int, lease_s: int, worker: str, connection_id: str | None = None
) -> Update:
    """The claim's UPDATE ... RETURNING (also what bench/backlog_bench.py explains): the
    key's oldest ready rows come from the ready rows' index in order, locked or skipped."""
    now = utcnow()
    ready = (
        select(_t.id)
        .where(_t.batch_key == batch_key, IS_READY, _t.next_attempt_at <= now)
        .order_by(_t.next_attempt_at, _t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    values: dict[str, Any] = {
        "status": "running",
        "claimed_by": worker,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "claimed_at": now,
        "attempts": _t.attempts + 1,
        "first_attempt_at": func.coalesce(_t.first_attempt_at, now),
    }
    if connection_id is not None:
        values["connection_id"] = connection_id
    return (
        update(TaskRun.__table__)
        .where(_t.id.in_(ready))
        .values(values)
        .returning(*_CLAIMED_COLUMNS)
    )


class ReadySummary(NamedTuple):
    """The task runs of a batch key that are ready now: how many, since when the oldest has
    been ready, and since when the newest."""

    count: int
    oldest: datetime | None
    newest: datetime | None


READY_COUNT_CAP = 1000  # ready rows counted at most: more than the engine's pacing asks


def ready_summary(db: Database, batch_key: str, *, cap: int = READY_COUNT_CAP) -> ReadySummary:
    """How many task runs of a batch key are ready now (counted up to `cap`), the oldest and
    the newest of those counted.

    The count stops at the cap: the worker asks this every round and, while a batch fills,
    every 50 ms; counting a backlog of a million rows each time would cost a scan of a
    million index entries. Below the cap every figure is exact; at the cap the newest is the
    newest of the oldest `cap` (the pacing only reads it for a batch not full). A caller
    that compares the count with a larger threshold passes a cap above it."""
    with db.reader() as uow:
        statement = ready_summary_statement(batch_key, cap=cap)
        count, oldest, newest = uow.session.execute(statement).one()
    return ReadySummary(int(count or 0), oldest, newest)


def ready_summary_statement(batch_key: str, *, cap: int = READY_COUNT_CAP) -> Select[Any]:
    """The ready summary's query, its parameters bound (also what the backlog bench explains)."""
    return _READY_SUMMARY.params(key=batch_key, now=utcnow(), cap=cap)


_READY_OLDEST = (
    select(_t.next_attempt_at.label("at"))
    .where(
        _t.batch_key == bindparam("key"),
        IS_READY,
        _t.next_attempt_at <= bindparam("now", type_=_t.next_attempt_at.type),
    )
    .order_by(_t.next_attempt_at)
    .limit(bindparam("cap", type_=Integer))
    .subquery()
)
_READY_SUMMARY = select(func.count(), func.min(_READY_OLDEST.c.at), func.max(_READY_OLDEST.c.at))


def oldest_ready_is_backfill(db: Database, batch_key: str) -> bool:
    """Whether the key's oldest ready task run comes from an imported response: a backfill,
    what Bulk API 2.0 is for. Live responses and outbound messages stay with Collections
    calls however many are waiting, since their records land in seconds there, not when a
    job is done (one query on the ready-rows index, asked only of a large backlog)."""
    with db.reader() as uow:
        source = uow.session.execute(
            _OLDEST_READY_SOURCE, {"key": batch_key, "now": utcnow()}
        ).scalar()
    return source == "import"


_OLDEST_READY_SOURCE = (
    select(Response.source)
    .select_from(
        TaskRun.__table__.join(Run, Run.id == _t.run_id).join(
            Response, Response.id == Run.response_id
        )
    )
    .where(
        _t.batch_key == bindparam("key"),
        IS_READY,
        _t.next_attempt_at <= bindparam("now", type_=_t.next_attempt_at.type),
    )
    .order_by(_t.next_attempt_at)
    .limit(1)
)


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
    # A pause that no reconnection ends (the connection is not the survey owner's): the row
    # forgets its connection, so that `resume_paused` leaves it for the owner's rebinding.
    release_connection: bool = False
    # The Bulk API 2.0 ingest job that carried this attempt (None: a Collections call).
    bulk_job_id: str | None = None

    @classmethod
    def retry_now(
        cls,
        task_run_id: str,
        reason: str,
        *,
        payload: dict[str, Any] | None = None,
        ambiguous: bool = False,
        bulk_job_id: str | None = None,
    ) -> Outcome:
        """Ready again at once, with no error to keep: the record was not refused, its
        attempt just came to nothing (cut from a job, a job aborted or forgotten)."""
        return cls(
            task_run_id,
            "waiting_retry",
            reason=reason,
            payload=payload,
            retry_at=utcnow(),
            ambiguous=ambiguous,
            bulk_job_id=bulk_job_id,
        )

    @classmethod
    def permanent_failure(
        cls, task_run_id: str, code: str, message: str, payload: dict[str, Any] | None = None
    ) -> Outcome:
        """A failure of cxloop's own finding that no retry mends (a bad value, a lookup not
        found, a deleted workflow): our `code`, and no field of a record to blame."""
        return cls(
            task_run_id,
            "failed",
            reason=message,
            error={"kind": "permanent", "error_code": code, "message": message, "fields": []},
            payload=payload,
        )


@dataclass
class Settled:
    """What recording a batch of outcomes set in motion."""

    ready_keys: list[str] = field(default_factory=list)
    retries: list[tuple[str, datetime]] = field(default_factory=list)

    def retry_messages(self) -> dict[str, list[datetime]]:
        """The messages that bring the retries back: per key, one at the earliest retry and
        one at the latest, not one per row (a batch of 200 failed rows would otherwise put 200
        messages on the queue, and a backlog a million). The first message claims the rows
        ready by then; the last one every row left, each at most the jitter of its backoff
        late."""
        span: dict[str, list[datetime]] = {}
        for key, at in self.retries:
            times = span.setdefault(key, [at, at])
            times[0], times[1] = min(times[0], at), max(times[1], at)
        return {key: sorted(set(times)) for key, times in span.items()}


def record_outcomes(
    db: Database,
    outcomes: Sequence[Outcome],
    *,
    started_at: datetime,
    worker: str,
    connection_health: ConnectionHealth | None = None,
) -> Settled:
    """Store each task run's outcome and attempt, settle dependents and run statuses.

    Written with Core statements for the whole batch (the claimed rows read and locked once,
    `transitions.update_rows` for the outcomes, one INSERT of attempts, the runs settled with two
    queries and an UPDATE or two), never object by object: on SQLite this transaction holds the
    only write lock, and the listener and the response API wait for it.

    Only rows this worker still holds are written. They are read `FOR UPDATE` (PostgreSQL;
    SQLite's writer holds the whole database): a sweeper that finds this batch's lease expired
    at the same moment either skips the locked rows or has already handed them back, in which
    case they are left alone here.

    The connection uses `connection_health` has due (last used, last error) are written in the
    same transaction, last, so that connection rows are always locked after task runs and runs.
    """
    settled = Settled()
    if not outcomes:
        return settled
    now = utcnow()
    with db.uow() as uow:
        session = uow.session
        rows = {
            row.id: row
            for row in session.execute(_HELD_ROWS, {"ids": [o.task_run_id for o in outcomes]})
        }
        changes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        run_ids: set[str] = set()
        counted: dict[tuple[str, str], int] = {}
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
            changes.append({"_id": row.id, **columns})
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
                    "bulk_job_id": outcome.bulk_job_id,
                }
            )
            kind = (row.task_type, outcome.status)
            counted[kind] = counted.get(kind, 0) + 1
            if outcome.status == "succeeded":
                metrics.RECORD_LATENCY.observe((now - row.created_at).total_seconds())
            if outcome.status == "waiting_retry" and outcome.retry_at is not None:
                settled.retries.append((row.batch_key, outcome.retry_at))
            run_ids.add(row.run_id)
        update_rows(session, TaskRun.__table__, changes)
        if attempts:
            session.execute(_INSERT_ATTEMPTS, attempts)
        # Settles every run's status too, blocked task runs or not.
        settled.ready_keys = uow.ledger.release_blocked(session, run_ids)
        if connection_health is not None:
            write_uses(session, connection_health.take_due())
        uow.commit()
    for (task_type, status), count in counted.items():
        metrics.TASK_RUNS.labels(task_type, status).inc(count)
    return settled


_HELD_COLUMNS = (
    _t.id, _t.status, _t.claimed_by, _t.attempts, _t.ambiguous, _t.run_id, _t.task_type,
    _t.batch_key, _t.created_at,
)  # fmt: skip
_HELD_ROWS = (
    select(*_HELD_COLUMNS).where(_t.id.in_(bindparam("ids", expanding=True))).with_for_update()
)
_INSERT_ATTEMPTS = insert(TaskRunAttempt.__table__)


def outcome_columns(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The columns an outcome sets on its task run."""
    columns: dict[str, Any] = {
        "status": outcome.status,
        "status_reason": outcome.reason,
        "lease_expires_at": None,
        "claimed_by": None,
        "ambiguous": outcome.ambiguous,
        "bulk_job_id": None,  # an outcome ends the row's time in a Bulk job
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
        if outcome.release_connection:
            columns["connection_id"] = None
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


def next_retry_at(settings: Settings, task_run: TaskRun | ClaimedTaskRun) -> datetime | None:
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


class BatchTarget(NamedTuple):
    """Where a Salesforce batch key's records go now: the owner's connection (None when the
    owner has none of that name or id), its org, until when that org is held back, and how
    many holds in a row it has had (strikes: each one doubles the next)."""

    connection_id: str | None
    org_id: str | None
    held_until: datetime | None
    strikes: int = 0


def batch_target(db: Database, owner_id: str, name_or_id: str) -> BatchTarget:
    """The owner's connection for a batch (by id, else name) and its org's hold, one query."""
    with db.reader() as uow:
        rows = uow.session.execute(_TARGET, {"owner_id": owner_id, "name_or_id": name_or_id}).all()
    # An id wins over a name: a connection could be named like another one's id.
    row = next((r for r in rows if r.id == name_or_id), None) or next(
        (r for r in rows if r.name == name_or_id), None
    )
    if row is None:
        return BatchTarget(None, None, None)
    held = row.until if row.until is not None and row.until > utcnow() else None
    return BatchTarget(row.id, row.org_id, held, row.strikes or 0)


_TARGET = (
    select(
        Connection.id, Connection.name, Connection.org_id, OrgThrottle.until, OrgThrottle.strikes
    )
    .outerjoin(OrgThrottle, OrgThrottle.org_id == Connection.org_id)
    .where(
        Connection.owner_id == bindparam("owner_id"),
        or_(Connection.id == bindparam("name_or_id"), Connection.name == bindparam("name_or_id")),
    )
)


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
    """Hold an org back for `seconds` (doubling on repeated strikes when `escalate`).

    Several batches of one org are in flight at once, so one outage or limit often fails
    several of them together: while the org is already held, a further strike changes
    nothing (one outage, one strike), and two processes striking first at once do not both
    insert the row."""
    with db.uow() as uow:
        session = uow.session
        throttle = session.get(OrgThrottle, org_id, with_for_update=True)
        if throttle is None:
            try:
                with session.begin_nested():
                    session.add(OrgThrottle(org_id=org_id, until=utcnow(), strikes=0))
            except IntegrityError:  # another process held it back first: take its row
                pass
            throttle = session.get(
                OrgThrottle, org_id, with_for_update=True, populate_existing=True
            )
            assert throttle is not None
        now = utcnow()
        if escalate and throttle.strikes and throttle.until > now:
            return throttle.until
        throttle.strikes = (throttle.strikes or 0) + 1 if escalate else 0
        factor = 2 ** min(throttle.strikes - 1, 5) if escalate else 1
        throttle.until = utcnow() + timedelta(seconds=seconds * factor)
        throttle.reason = reason
        until = throttle.until
        uow.commit()
    return until


def forgive_org(db: Database, org_id: str) -> None:
    """The org answered again: its strikes start over, so that the next outage or limit is
    held back from its first step, not from where the last one ended."""
    with db.uow() as uow:
        uow.session.execute(
            update(OrgThrottle).where(OrgThrottle.org_id == org_id).values(strikes=0)
        )
        uow.commit()


# --- whose credentials


def foreign_task_runs(
    db: Database, task_runs: Sequence[ClaimedTaskRun], owner_id: str
) -> dict[str, str]:
    """The task runs of a Salesforce batch (the connections of `owner_id`) that must not go
    out with them, each with the reason: their survey belongs to someone else now, or their
    task is paused until its owner picks a connection. Two light queries."""
    run_ids = list({t.run_id for t in task_runs})
    with db.reader() as uow:
        session = uow.session
        runs = {
            row.id: row
            for chunk in in_chunks(run_ids)
            for row in session.execute(
                select(Run.id, Run.workflow_id, Survey.owner_id, User.email)
                .join(Survey, Survey.id == Run.survey_id)
                .join(User, User.id == Survey.owner_id)
                .where(Run.id.in_(chunk))
            )
        }
        workflow_ids = list({row.workflow_id for row in runs.values() if row.workflow_id})
        pauses = {
            (p.workflow_id, p.task_id): p.reason
            for p in session.execute(
                select(WorkflowTaskPause.workflow_id, WorkflowTaskPause.task_id,
                       WorkflowTaskPause.reason)
                .where(WorkflowTaskPause.workflow_id.in_(workflow_ids))
            )
        } if workflow_ids else {}  # fmt: skip
    found: dict[str, str] = {}
    for task_run in task_runs:
        run = runs.get(task_run.run_id)
        if run is None:
            continue  # the run is gone: executing reports that
        paused = pauses.get((run.workflow_id, task_run.task_id))
        if paused is not None:
            found[task_run.id] = paused
        elif run.owner_id != owner_id:
            found[task_run.id] = (
                f"Not sent: task '{task_run.task_id}' would have run with a connection of "
                f"another user than the survey's owner ({run.email}). {run.email}: pick one "
                "of your connections for this task and save the workflow; this run waits "
                "until then."
            )
    return found


# --- the sweeper


def expire_leases(db: Database, settings: Settings) -> Settled:
    """Take back the task runs whose worker stopped renewing their lease (it died, or hangs).

    Each gets an attempt row (outcome `interrupted`) saying which worker stopped answering
    mid-attempt. The attempt counts as a transient failure that may have reached Salesforce,
    exactly like a timeout: the row is marked ambiguous (an insert with a dedupe field is
    looked up before it is sent again) and retried after the backoff, or failed once the
    retry horizon is spent; its run is settled. Returns the keys ready now and the retries to
    schedule.

    One read when nothing expired (every `sweeper_period_s`): the write transaction, on
    SQLite the one writer's lock, is only taken when there is something to take back.
    """
    settled = Settled()
    now = utcnow()
    with db.reader() as uow:
        if uow.session.execute(_ANY_EXPIRED, {"now": now}).first() is None:
            return settled
    with db.uow() as uow:
        session = uow.session
        rows = session.execute(_EXPIRED, {"now": now}).all()
        batch_sizes: dict[str | None, int] = {}
        for row in rows:
            batch_sizes[row.claimed_by] = batch_sizes.get(row.claimed_by, 0) + 1
        changes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        run_ids: set[str] = set()
        first_retry: dict[str, datetime] = {}  # one dispatch per key, at its first retry
        for row in rows:
            error = interrupted_error(row.claimed_by, row.lease_expires_at)
            retry_at = retry_or_give_up(
                row.first_attempt_at,
                row.attempts,
                horizon_s=settings.retry_horizon_s,
                base_s=settings.retry_base_s,
                cap_s=settings.retry_cap_s,
            )
            columns: dict[str, Any] = {
                "claimed_by": None,
                "lease_expires_at": None,
                "ambiguous": True,
                "error": error,
            }
            if retry_at is None:
                columns |= {
                    "status": "failed",
                    "status_reason": f"Gave up after {row.attempts} attempts over the retry "
                    f"horizon: {error['message']}",
                    "finished_at": now,
                }
            else:
                columns |= {
                    "status": "waiting_retry",
                    "status_reason": f"{error['message']}; trying again",
                    "next_attempt_at": retry_at,
                }
                first_retry[row.batch_key] = min(retry_at, first_retry.get(row.batch_key, retry_at))
            changes.append({"_id": row.id, **columns})
            attempts.append(
                {
                    "task_run_id": row.id,
                    "number": row.attempts,
                    # rows claimed before claims noted the time: the attempt is dated now
                    "started_at": row.claimed_at or now,
                    "finished_at": now,
                    "outcome": "interrupted",
                    "batch_size": batch_sizes[row.claimed_by],
                    "payload": None,  # what the worker sent, if anything, died with it
                    "reply": None,
                    "error": error,
                }
            )
            run_ids.add(row.run_id)
        update_rows(session, TaskRun.__table__, changes)
        if attempts:
            session.execute(_INSERT_ATTEMPTS, attempts)
        # A row that gave up may settle its run, or free (skip) the tasks that wait for it.
        settled.ready_keys = uow.ledger.release_blocked(session, run_ids)
        uow.commit()
    settled.retries = sorted(first_retry.items())
    for row in rows:
        metrics.TASK_RUNS.labels(row.task_type, "interrupted").inc()
    return settled


def interrupted_error(worker: str | None, lease_expired_at: datetime | None) -> dict[str, Any]:
    """The error of an attempt whose worker stopped answering (as the run history shows it)."""
    since = f" (its lease ran out at {lease_expired_at:%H:%M:%S} UTC)" if lease_expired_at else ""
    return {
        "kind": "transient",
        "error_code": WORKER_LOST_CODE,
        "message": f"worker {worker or '?'} stopped answering mid-attempt{since}; the call may "
        "have reached Salesforce, so an insert is looked up before it is sent again",
        "fields": [],
    }


_EXPIRED_WHERE = (
    _t.status == "running",
    _t.lease_expires_at < bindparam("now", type_=_t.lease_expires_at.type),
    # Rows in a Bulk job have no lease of their own: the job holds them until its results are
    # mapped (`ledger/bulk_jobs.py`), however long it runs.
    _t.bulk_job_id.is_(None),
)
_ANY_EXPIRED = select(_t.id).where(*_EXPIRED_WHERE).limit(1)
_EXPIRED = (
    select(
        _t.id, _t.run_id, _t.task_type, _t.batch_key, _t.attempts, _t.first_attempt_at,
        _t.claimed_by, _t.claimed_at, _t.lease_expires_at,
    )
    .where(*_EXPIRED_WHERE)
    .order_by(_t.id)
    .with_for_update(skip_locked=True)
)  # fmt: skip


def overdue_keys(db: Database, grace_s: float) -> list[str]:
    """Batch keys with ready task runs nobody picked up (a lost message, a restart)."""
    with db.reader() as uow:
        return list(uow.session.scalars(overdue_keys_statement(grace_s)))


def overdue_keys_statement(grace_s: float, limit: int = 1000) -> Select[tuple[str]]:
    """The sweeper's query for `overdue_keys` (also what bench/backlog_bench.py explains).

    A skip scan of the ready rows' index, one key at a time (a recursive query: the next
    key is the smallest one above the last), each kept when one of its rows is due: it
    costs a few index probes per batch key however many rows wait. (`SELECT DISTINCT`
    read every ready row, a million of them every `sweeper_period_s` under a backlog.)
    """
    before = utcnow() - timedelta(seconds=grace_s)
    first = select(func.min(_t.batch_key).label("key")).where(IS_READY)
    keys = first.cte("ready_keys", recursive=True)
    previous = keys.alias("previous")
    following = (
        select(func.min(_t.batch_key)).where(IS_READY, _t.batch_key > previous.c.key)
    ).scalar_subquery()
    keys = keys.union_all(select(following).where(previous.c.key.is_not(None)))
    due = (
        select(_t.id)
        .where(_t.batch_key == keys.c.key, IS_READY, _t.next_attempt_at <= before)
        .exists()
    )
    return select(keys.c.key).where(keys.c.key.is_not(None), due).limit(limit)


RESUME_CHUNK = 5000  # paused rows resumed per transaction


def resume_paused(db: Database, *, chunk: int = RESUME_CHUNK) -> list[str]:
    """Task runs paused for a connection that is active again go back to ready; returns
    their batch keys.

    Core statements, `chunk` rows to a transaction: a connection that needed reconnecting
    for a day may have a million paused rows, which must not become a million objects in
    the sweeper's memory, nor one transaction holding SQLite's write lock for minutes.
    """
    keys: set[str] = set()
    while True:
        with db.uow() as uow:
            session = uow.session
            rows = session.execute(PAUSED_ROWS, {"chunk": chunk}).all()
            if not rows:
                break
            session.execute(
                update(TaskRun.__table__)
                .where(_t.id.in_([row.id for row in rows]), _t.status == "paused")
                .values(
                    status="pending",
                    status_reason="resumed: the connection is active again",
                    next_attempt_at=utcnow(),
                    # The pause must not eat the retry horizon.
                    first_attempt_at=None,
                )
            )
            # Settles the runs' statuses (Core, runs locked in id order like the workers do).
            uow.ledger.release_blocked(session, {row.run_id for row in rows})
            uow.commit()
        keys |= {row.batch_key for row in rows}
        if len(rows) < chunk:
            break
    return sorted(keys)


PAUSED_ROWS = (
    select(_t.id, _t.run_id, _t.batch_key)
    .join(Connection, Connection.id == _t.connection_id)
    .where(_t.status == "paused", Connection.status == "active")
    .limit(bindparam("chunk", type_=Integer))
)


def pause_connection_work(db: Database, connection_id: str, reason: str) -> None:
    """Pause every ready task run of a connection that cannot work now."""
    with db.uow() as uow:
        uow.session.execute(
            update(TaskRun)
            .where(TaskRun.connection_id == connection_id, TaskRun.status.in_(READY_STATUSES))
            .values(status="paused", status_reason=reason)
        )
        uow.commit()


def delete_old_runs(
    db: Database,
    older_than_days: int,
    *,
    chunk_size: int = 1_000,
    most: int = 10_000,
) -> int:
    """Forget finished runs older than the retention period: at most `most` a call, in
    transactions of `chunk_size` runs. Each chunk is one DELETE ... WHERE id IN (SELECT ...
    LIMIT n); the database's ON DELETE CASCADE takes their task runs and attempts along, so no
    row is loaded. Returns how many runs went."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    runs = Run.__table__
    deleted = 0
    while deleted < most:
        chunk = (
            select(runs.c.id)
            .where(
                runs.c.created_at < cutoff, runs.c.status.in_(("succeeded", "failed", "skipped"))
            )
            .limit(min(chunk_size, most - deleted))
        )
        with db.uow() as uow:
            gone = uow.session.execute(delete(runs).where(runs.c.id.in_(chunk))).rowcount
            uow.commit()
        deleted += gone
        if gone < chunk_size:
            break
    with db.uow() as uow:
        # A settled Bulk job's row only matters while its task runs' history does.
        uow.session.execute(delete(BulkJob).where(BulkJob.settled_at < cutoff))
        # The inbox only needs to outlive Salesforce's retries (24 hours): it goes with the runs.
        uow.session.execute(
            delete(OutboundNotification).where(OutboundNotification.received_at < cutoff)
        )
        uow.commit()
    return deleted


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
