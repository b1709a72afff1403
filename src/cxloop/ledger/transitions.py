"""Task-run state transitions: replaying, releasing what waited, settling a run's status.

Core statements only where workers call them for every batch inside their write transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.run_models import READY_STATUSES, Run, TaskRun
from cxloop.db.workflow_models import Workflow
from cxloop.domain.workflow import WorkflowDocument
from cxloop.ledger.documents import WorkflowDocuments


def requeue(session: Session, documents: WorkflowDocuments, run_ids: list[str]) -> list[str]:
    """Put the failed, skipped and paused task runs of these runs back to work (a replay);
    returns the batch keys ready to go."""
    if not run_ids:
        return []
    rows = list(
        session.scalars(
            select(TaskRun).where(
                TaskRun.run_id.in_(run_ids),
                TaskRun.status.in_(("failed", "skipped", "paused")),
            )
        )
    )
    now = utcnow()
    for row in rows:
        row.status = "blocked" if row.depends_on else "pending"
        row.status_reason = "replayed"
        # A replay starts a fresh retry horizon; the attempt log keeps the history.
        row.first_attempt_at = None
        row.next_attempt_at = now
        row.error = None
    session.execute(
        update(Run).where(Run.id.in_(run_ids)).values(status="pending", finished_at=None)
    )
    session.flush()
    freed = release_blocked(session, documents, run_ids)
    return [row.batch_key for row in rows if row.status in READY_STATUSES] + freed


def release_blocked(
    session: Session, documents: WorkflowDocuments, run_ids: Iterable[str]
) -> list[str]:
    """Settle the blocked task runs of these runs and the runs' statuses; returns the batch
    keys that became ready.

    A blocked task run becomes pending once every task it depends on succeeded. When one of
    them failed or was skipped it is skipped if the workflow stops dependent tasks on failure,
    and runs anyway (with that output empty) if the workflow continues.

    Core statements only (two reads, an UPDATE per kind of change), since workers call this
    for every batch inside their write transaction. The runs are locked first (`FOR UPDATE`,
    in id order, on PostgreSQL): two workers finishing two tasks of one run at the same time
    then settle it one after the other, the second seeing the first's outcome. Without the
    lock each would see the other's task still running, and the run would stay `running`
    (and a task waiting for both would stay blocked) for good.
    """
    ids = sorted(set(run_ids))
    if not ids:
        return []
    runs = {
        row.id: row for row in session.execute(_LOCK_RUNS, {"ids": ids})
    }  # the lock first: what is read next includes what others committed meanwhile
    tasks_of: dict[str, list[_Settling]] = {}
    for row in session.execute(_RUN_TASK_RUNS, {"ids": ids}):
        tasks_of.setdefault(row.run_id, []).append(
            _Settling(row.id, row.task_id, row.status, row.depends_on or [], row.batch_key)
        )
    now = utcnow()
    freed: list[str] = []
    task_changes: list[dict[str, Any]] = []
    run_changes: list[dict[str, Any]] = []
    for run_id, run in runs.items():
        task_runs = tasks_of.get(run_id, [])
        by_task = {t.task_id: t for t in task_runs}
        for task_run in task_runs:
            if task_run.status != "blocked":
                continue
            upstream = [by_task[d] for d in task_run.depends_on if d in by_task]
            if any(u.status not in ("succeeded", "failed", "skipped") for u in upstream):
                continue
            broken = [u.task_id for u in upstream if u.status != "succeeded"]
            document = _current_document(session, documents, run.workflow_id) if broken else None
            if broken and (document is None or document.on_task_failure == "stop"):
                task_run.status = "skipped"
                change = {
                    "_id": task_run.id,
                    "status": "skipped",
                    "status_reason": (
                        f"Not run: it uses the output of {', '.join(broken)}, which did not "
                        "succeed."
                    ),
                    "finished_at": now,
                }
            else:
                task_run.status = "pending"
                change = {"_id": task_run.id, "status": "pending", "next_attempt_at": now}
                freed.append(task_run.batch_key)
            task_changes.append(change)
        status, finished_at = run_status({t.status for t in task_runs}, run.finished_at, now)
        if (status, finished_at) != (run.status, run.finished_at):
            run_changes.append({"_id": run_id, "status": status, "finished_at": finished_at})
    update_rows(session, TaskRun.__table__, task_changes)
    update_rows(session, Run.__table__, run_changes)
    return freed


def update_rows(session: Session, table: Table, changes: Sequence[dict[str, Any]]) -> None:
    """Write many rows' changes (each a dict of "_id" and the columns to set) in few statements.

    Rows that set the same columns form a group. When every row of a group sets each column to
    the same plain value (a status, a time, null), the group is one `UPDATE ... WHERE id IN
    (...)`. Otherwise it is one executemany of an UPDATE by id that sets all its columns: a row
    is written once, never by a shared UPDATE and then again for the columns that differ (on
    PostgreSQL each UPDATE of a row makes a new version of it, and an entry in every index).
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(change), []).append(change)
    id_column = table.c.id
    for keys, rows in groups.items():
        first = rows[0]
        columns = [k for k in keys if k != "_id"]
        if not columns:
            continue
        if all(
            isinstance(first[k], _PLAIN)
            and all(type(r[k]) is type(first[k]) and r[k] == first[k] for r in rows)
            for k in columns
        ):
            ids = [r["_id"] for r in rows]
            session.execute(
                update(table).where(id_column.in_(ids)).values({k: first[k] for k in columns})
            )
        else:
            session.execute(update(table).where(id_column == bindparam("_id")), list(rows))


_PLAIN = (str, int, float, bool, datetime, type(None))


@dataclass
class _Settling:
    """A task run being settled: what deciding needs, its status as it changes."""

    id: str
    task_id: str
    status: str
    depends_on: list[str]
    batch_key: str


_LOCK_RUNS = (
    select(Run.id, Run.status, Run.finished_at, Run.workflow_id)
    .where(Run.id.in_(bindparam("ids", expanding=True)))
    .order_by(Run.id)
    .with_for_update()
)
_RUN_TASK_RUNS = (
    select(
        TaskRun.run_id,
        TaskRun.id,
        TaskRun.task_id,
        TaskRun.status,
        TaskRun.depends_on,
        TaskRun.batch_key,
    )
    .where(TaskRun.run_id.in_(bindparam("ids", expanding=True)))
    .order_by(TaskRun.run_id, TaskRun.task_index)
)


def run_status(
    statuses: set[str], finished_at: datetime | None, now: datetime
) -> tuple[str, datetime | None]:
    """A run's status and finish time from its task runs' statuses: open work first, then
    pauses, then failures, then success. A finished run keeps its first finish time."""
    if statuses & {"pending", "running", "waiting_retry", "blocked"}:
        return ("running" if statuses - {"pending", "blocked"} else "pending"), None
    if "paused" in statuses:
        return "paused", None
    status = (
        "failed"
        if "failed" in statuses
        else ("skipped" if statuses == {"skipped"} else "succeeded")
    )
    return status, finished_at or now


def settle_run_status(run: Run) -> None:
    """A run's status from its (loaded) task runs, as `run_status` decides it."""
    run.status, run.finished_at = run_status(
        {t.status for t in run.task_runs}, run.finished_at, utcnow()
    )


def _current_document(
    session: Session, documents: WorkflowDocuments, workflow_id: str | None
) -> WorkflowDocument | None:
    """The workflow's current document (None once the workflow is deleted)."""
    if workflow_id is None:
        return None
    row = session.execute(
        select(Workflow.revision, Workflow.document).where(Workflow.id == workflow_id)
    ).first()
    if row is None:
        return None
    return documents.parse(workflow_id, row.revision, row.document)
