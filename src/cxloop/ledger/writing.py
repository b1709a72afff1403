"""Writing runs and task runs: INSERTs of rows made once per workflow revision, handed to the
driver as a response's rows are (`db.response_rows.insert_rows`: COPY on PostgreSQL).

No per-object ORM work: the outbound message listener writes up to 100 runs per message and
must answer quickly, and a response's transaction holds SQLite's write lock. Each task's row is
made once per revision and owner (`task_run_rows`) and copied for each event with fresh ids; a
batch key that names its own task run (`email|TR_...`) names the copy's. The rows name every
column (the driver applies no defaults): what a Core INSERT would have filled in is written out
here, and a column it would have left out is None (SQL NULL).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.response_rows import insert_rows
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.uow import core_connection
from cxloop.domain.ids import new_ids
from cxloop.domain.workflow import DirectoryTask, SalesforceTask, WorkflowDocument, task_references


class RunEvent(NamedTuple):
    """One event that starts a run: what deduplicates it, its data (an outbound message's
    record fields), and the response it came from, if any."""

    event_key: str
    event_data: dict[str, Any] | None = None
    response_id: str | None = None


@dataclass(frozen=True)
class WorkflowPlan:
    """What writing a run of one workflow revision for one survey owner needs, made once."""

    workflow_id: str
    revision: int
    document: WorkflowDocument
    task_rows: tuple[dict[str, Any], ...]  # a task run row per task, without ids and times

    @classmethod
    def of(
        cls, workflow_id: str, revision: int, document: WorkflowDocument, owner_id: str
    ) -> WorkflowPlan:
        return cls(workflow_id, revision, document, task_run_rows(owner_id, document))


def write_runs(
    session: Session,
    survey_id: str,
    plan: WorkflowPlan,
    events: Iterable[RunEvent],
    event_type: str,
) -> list[str]:
    """Write a run with its task runs for each event, with two INSERTs; returns the batch keys
    ready to go (to dispatch after the commit)."""
    events = list(events)
    if not events:
        return []
    now = utcnow()
    templates = plan.task_rows
    run_ids = new_ids("RN_", len(events))
    task_run_ids = iter(new_ids("TR_", len(events) * len(templates)))
    run_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    ready: list[str] = []
    name = plan.document.name
    for run_id, event in zip(run_ids, events, strict=True):
        run_rows.append(
            {
                "id": run_id,
                "survey_id": survey_id,
                "workflow_id": plan.workflow_id,
                "workflow_name": name,
                "workflow_revision": plan.revision,
                "event_type": event_type,
                "event_key": event.event_key,
                "response_id": event.response_id,
                "event_data": event.event_data or {},
                "status": "pending",
                "created_at": now,
                "finished_at": None,
            }
        )
        for template in templates:
            task_run_id = next(task_run_ids)
            batch_key = template["batch_key"]
            row = {
                **template,
                "id": task_run_id,
                "run_id": run_id,
                "batch_key": batch_key + task_run_id if batch_key in _OWN_KEYS else batch_key,
                "depends_on": list(template["depends_on"]),
                "next_attempt_at": now,
                "created_at": now,
            }
            task_rows.append(row)
            if row["status"] == "pending":
                ready.append(row["batch_key"])
    connection = core_connection(session)  # flushed first: the runs' response exists
    insert_rows(connection, Run.__table__, run_rows)
    if task_rows:
        insert_rows(connection, TaskRun.__table__, task_rows)
    return ready


_OWN_KEYS = ("directory|", "email|")  # completed with the task run's id: these go alone
# A new task run's columns that no task sets: what a Core INSERT would give them.
_NEW_TASK_RUN = MappingProxyType(
    {
        "connection_id": None,  # settled when it runs
        "attempts": 0,
        "lease_expires_at": None,
        "claimed_by": None,
        "claimed_at": None,
        "ambiguous": False,
        "bulk_job_id": None,
        "record_id": None,
        "payload": None,
        "result": None,
        "error": None,
        "first_attempt_at": None,
        "finished_at": None,
    }
)


def task_run_rows(owner_id: str, document: WorkflowDocument) -> tuple[dict[str, Any], ...]:
    """The row of each task's task run, without ids and times: ready (pending) or waiting for
    earlier tasks (blocked).

    Which connection a Salesforce task uses is settled when it runs (the survey owner's
    connection of that name or id), so writing a response costs no lookup. The batch key of a
    directory or email task (`directory|`, `email|`) is completed with the task run's own id:
    those go alone.
    """
    rows = []
    for index, task in enumerate(document.tasks):
        depends_on = sorted(task_references(task))
        if isinstance(task, SalesforceTask):
            batch_key = salesforce_batch_key(owner_id, task)
        elif isinstance(task, DirectoryTask):
            batch_key = "directory|"
        else:
            batch_key = "email|"
        rows.append(
            {
                **_NEW_TASK_RUN,
                "task_id": task.id,
                "task_index": index,
                "task_type": task.type,
                "status": "blocked" if depends_on else "pending",
                "status_reason": "",
                "batch_key": batch_key,
                "depends_on": depends_on,
            }
        )
    return tuple(rows)


def salesforce_batch_key(owner_id: str, task: SalesforceTask) -> str:
    """What task runs must share to go out in one sObject Collections call."""
    return f"sf|{owner_id}|{task.connection}|{task.object}|{task.action}|{task.key_field or ''}"


@dataclass(frozen=True)
class SalesforceBatchKey:
    """A Salesforce batch key taken apart."""

    owner_id: str
    connection: str
    sobject: str
    action: str
    key_field: str

    @classmethod
    def parse(cls, batch_key: str) -> SalesforceBatchKey:
        parts = batch_key.split("|")
        # The connection's name may itself hold "|"; everything else cannot.
        return cls(parts[1], "|".join(parts[2:-3]), parts[-3], parts[-2], parts[-1])
