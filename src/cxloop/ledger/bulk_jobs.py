"""Task runs in Bulk API 2.0 ingest jobs: claimed into a job, held by it, found again.

A job's row (`bulk_jobs`, keyed by Salesforce's job id) and its task runs' `bulk_job_id` are
written in one transaction before any data goes to Salesforce. From then on the job holds
its task runs: they stay `running`, claimed by `bulk:<job id>`, with no lease of their own,
so the sweeper's lease expiry never touches them (`claims.expire_leases` skips rows with a
`bulk_job_id`). Whoever works on the job (the worker uploading it, or a check) holds the
job row's lease; a worker that dies lets that lease run out and the sweeper sends the job's
check again (`overdue_checks`), which asks Salesforce and either maps the job's results or,
for a job never closed, aborts it and releases its rows to be sent again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, or_, select, update

from cxloop.db.base import utcnow
from cxloop.db.run_models import BulkJob, TaskRun
from cxloop.db.uow import Database
from cxloop.ledger.claims import CLAIMED_COLUMNS, IS_READY, ClaimedTaskRun

CHECK_KEY_PREFIX = "bulk|"  # the dispatch key of a job's check: "bulk|<job id>"

_t = TaskRun.__table__.c
_j = BulkJob.__table__.c


def holder(job_id: str) -> str:
    """The `claimed_by` of the task runs a job holds."""
    return f"bulk:{job_id}"


def check_key(job_id: str) -> str:
    """The batch key that dispatches a check of the job."""
    return f"{CHECK_KEY_PREFIX}{job_id}"


class JobRow(NamedTuple):
    """A bulk job row as a check needs it."""

    id: str
    batch_key: str
    connection_id: str
    sobject: str
    operation: str
    columns: list[str]
    state: str
    checks: int
    created_at: datetime


_JOB_COLUMNS = (
    _j.id, _j.batch_key, _j.connection_id, _j.sobject, _j.operation, _j.columns, _j.state,
    _j.checks, _j.created_at,
)  # fmt: skip


def open_job(
    db: Database,
    *,
    job_id: str,
    batch_key: str,
    connection_id: str,
    sobject: str,
    operation: str,
    external_id_field: str | None,
    limit: int,
    worker: str,
    lease_s: int,
) -> list[ClaimedTaskRun]:
    """Record a job Salesforce just created (Open, no data yet) and claim up to `limit` ready
    task runs of `batch_key` into it, in one transaction; returns them, oldest first.

    The job row's lease is the worker's (`worker`) while it prepares and uploads; the task runs
    are the job's. With no task run left to claim the job row is still written, so that the
    empty job is aborted like any other the worker does not finish."""
    now = utcnow()
    ready = (
        select(_t.id)
        .where(
            _t.batch_key == batch_key,
            IS_READY,  # literals: read from the partial index of ready rows
            _t.next_attempt_at <= now,
        )
        .order_by(_t.next_attempt_at, _t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with db.uow() as uow:
        session = uow.session
        session.execute(
            insert(BulkJob.__table__).values(
                id=job_id,
                batch_key=batch_key,
                connection_id=connection_id,
                sobject=sobject,
                operation=operation,
                external_id_field=external_id_field,
                columns=[],
                record_count=0,
                state="Open",
                error_message="",
                checks=0,
                check_at=now + timedelta(seconds=lease_s),
                claimed_by=worker,
                lease_expires_at=now + timedelta(seconds=lease_s),
                created_at=now,
            )
        )
        claimed = [
            ClaimedTaskRun(*row)
            for row in session.execute(
                update(TaskRun.__table__)
                .where(_t.id.in_(ready))
                .values(
                    status="running",
                    claimed_by=holder(job_id),
                    lease_expires_at=None,
                    bulk_job_id=job_id,
                    connection_id=connection_id,
                    attempts=_t.attempts + 1,
                    first_attempt_at=func.coalesce(_t.first_attempt_at, now),
                    status_reason=f"in Bulk API 2.0 job {job_id}",
                )
                .returning(*CLAIMED_COLUMNS)
            )
        ]
        # The lease counts from now: claiming 100,000 rows can take longer than a lease, and
        # a lease counted from the start would be over before the worker's keeper began.
        leased_until = utcnow() + timedelta(seconds=lease_s)
        session.execute(
            update(BulkJob.__table__)
            .where(_j.id == job_id)
            .values(record_count=len(claimed), lease_expires_at=leased_until, check_at=leased_until)
        )
        uow.commit()
    claimed.sort(key=lambda task_run: task_run.created_at)
    return claimed


def store_upload(
    db: Database,
    job_id: str,
    *,
    worker: str,
    lease_s: int,
    columns: Sequence[str],
    rows: Mapping[str, dict[str, str]],
) -> bool:
    """Before the upload: keep each task run's CSV row (its payload: what the job sends, and
    what its result is matched by) and the CSV's header on the job; renew the job's lease.
    False when the worker no longer holds the job (its lease ran out and a check took it)."""
    with db.uow() as uow:
        session = uow.session
        # The payloads first, the job's row last: writing 100,000 payloads takes minutes on a
        # busy database, and the job's row locked all that time blocked the lease keeper, so
        # the lease had run out by the commit and a waiting check took the job over.
        # By primary key alone: with `bulk_job_id = ?` beside it, PostgreSQL's generic plan
        # read the job's whole index for every row (100,000 rows: minutes of CPU). Rows the
        # job no longer holds are no risk: the job's row below decides, and rolls back.
        if rows:
            session.execute(
                update(TaskRun.__table__)
                .where(_t.id == bindparam("_id"))
                .values(payload=bindparam("payload")),
                [{"_id": task_run_id, "payload": row} for task_run_id, row in rows.items()],
            )
        leased_until = utcnow() + timedelta(seconds=lease_s)
        held = session.execute(
            update(BulkJob.__table__)
            .where(_j.id == job_id, _j.claimed_by == worker, _j.settled_at.is_(None))
            .values(
                columns=list(columns),
                record_count=len(rows),
                lease_expires_at=leased_until,
                check_at=leased_until,
            )
        ).rowcount
        if not held:
            return False  # leaving the unit of work uncommitted rolls it back
        uow.commit()
    return True


def renew_lease(db: Database, job_id: str, *, worker: str, lease_s: int) -> bool:
    """Keep holding the job (a long preparation); False once the worker no longer holds it."""
    now = utcnow()
    with db.uow() as uow:
        held = uow.session.execute(
            update(BulkJob.__table__)
            .where(_j.id == job_id, _j.claimed_by == worker, _j.settled_at.is_(None))
            .values(
                lease_expires_at=now + timedelta(seconds=lease_s),
                check_at=now + timedelta(seconds=lease_s),
            )
        ).rowcount
        uow.commit()
    return bool(held)


def note_state(
    db: Database,
    job_id: str,
    state: str,
    *,
    worker: str,
    check_in_s: float,
    error_message: str = "",
) -> None:
    """Note Salesforce's state of the job, release the job's lease and set its next check."""
    check_at = utcnow() + timedelta(seconds=check_in_s)
    _release(db, job_id, worker, state=state, error_message=error_message, check_at=check_at)


def claim_job(db: Database, job_id: str, *, worker: str, lease_s: int) -> JobRow | None:
    """Take the job for a check: only when it is not settled and nobody holds it (or their
    lease ran out). None otherwise: someone is on it, or there is nothing left to do."""
    now = utcnow()
    with db.uow() as uow:
        row = uow.session.execute(
            update(BulkJob.__table__)
            .where(
                _j.id == job_id,
                _j.settled_at.is_(None),
                or_(_j.claimed_by.is_(None), _j.lease_expires_at < now),
            )
            .values(claimed_by=worker, lease_expires_at=now + timedelta(seconds=lease_s))
            .returning(*_JOB_COLUMNS)
        ).first()
        uow.commit()
    return JobRow(*row) if row is not None else None


class HeldTaskRun(NamedTuple):
    """A task run a job holds, with the CSV row it was sent as (None: not uploaded yet)."""

    task_run: ClaimedTaskRun
    payload: dict[str, str] | None


def held_task_runs(db: Database, job_id: str) -> list[HeldTaskRun]:
    """The task runs the job still holds (those without an outcome yet)."""
    with db.reader() as uow:
        rows = uow.session.execute(
            select(*CLAIMED_COLUMNS, _t.payload).where(
                _t.bulk_job_id == job_id,
                _t.status == "running",
                _t.claimed_by == holder(job_id),
            )
        ).all()
    held = [HeldTaskRun(ClaimedTaskRun(*row[:-1]), row[-1]) for row in rows]
    held.sort(key=lambda h: h.task_run.created_at)
    return held


def settle_job(db: Database, job_id: str, state: str, *, worker: str, error_message: str) -> None:
    """The job is done with: every task run it held has its outcome."""
    _release(db, job_id, worker, state=state, error_message=error_message, settled_at=utcnow())


def _release(db: Database, job_id: str, worker: str, **values: object) -> None:
    """Count a check of the job and let go of it, setting `values`; only while `worker` holds
    it (a worker whose lease was taken over changes nothing)."""
    with db.uow() as uow:
        uow.session.execute(
            update(BulkJob.__table__)
            .where(_j.id == job_id, _j.claimed_by == worker)
            .values(checks=_j.checks + 1, claimed_by=None, lease_expires_at=None, **values)
        )
        uow.commit()


def overdue_checks(db: Database, grace_s: float = 1.0) -> list[str]:
    """Check keys of unsettled jobs whose check is overdue and whom nobody holds: a lost
    scheduled check, or a worker that died with the job in hand."""
    now = utcnow()
    before = now - timedelta(seconds=grace_s)
    with db.reader() as uow:
        ids = uow.session.scalars(
            select(_j.id)
            .where(
                _j.settled_at.is_(None),
                _j.check_at <= before,
                or_(_j.claimed_by.is_(None), _j.lease_expires_at < now),
            )
            .limit(1000)
        ).all()
    return [check_key(job_id) for job_id in ids]


def job_of(db: Database, job_id: str) -> BulkJob | None:
    """The job row (tests, run history)."""
    with db.reader() as uow:
        return uow.session.get(BulkJob, job_id)
