"""/api/v1/runs: run history — what each workflow did, with every attempt — and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cxloop.db.run_models import RUN_STATUSES, Run
from cxloop.services import run_history
from cxloop.web.api.schemas import PageOut, Reply
from cxloop.web.deps import ApiActor, Db

router = APIRouter(prefix="/api/v1", tags=["runs"])


class AttemptOut(Reply):
    number: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    batch_size: int
    payload: dict[str, Any] | None
    reply: dict[str, Any] | None
    error: dict[str, Any] | None
    bulk_job_id: str | None = None  # the Bulk API 2.0 ingest job that carried this attempt


class TaskRunOut(Reply):
    id: str
    task_id: str
    task_type: str
    status: str
    status_reason: str
    attempts: int
    next_attempt_at: datetime
    record_id: str | None
    bulk_job_id: str | None = None  # the Bulk API 2.0 ingest job it is in now, if any
    payload: dict[str, Any] | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class TaskRunDetail(TaskRunOut):
    attempt_log: list[AttemptOut]


class RunOut(Reply):
    id: str
    survey_id: str
    workflow_id: str | None
    workflow_name: str
    workflow_revision: int
    event_type: str
    event_key: str
    response_id: str | None
    status: str
    created_at: datetime
    finished_at: datetime | None
    task_runs: list[TaskRunOut]


class RunDetail(RunOut):
    event_data: dict[str, Any]
    task_runs: list[TaskRunDetail]  # type: ignore[assignment]


class RetryOut(Reply):
    queued_task_runs: int


@router.get("/runs", response_model=PageOut[RunOut])
def list_runs(
    actor: ApiActor,
    db: Db,
    survey_id: Annotated[str | None, Query(max_length=40)] = None,
    workflow_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(RUN_STATUSES) + ")$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> PageOut[RunOut]:
    """Runs newest first, filtered by survey, workflow, status, time and text (`q`: a run id,
    a response id, a Salesforce record id or words of an error)."""
    page = run_history.list_runs(
        db,
        actor,
        run_history.RunFilter(survey_id, workflow_id, status, since, until, q),
        limit=limit,
        cursor=cursor,
    )
    return PageOut(
        items=[RunOut.model_validate(run) for run in page.items], next_cursor=page.next_cursor
    )


@router.get("/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: str, actor: ApiActor, db: Db) -> Run:
    """A run with each task run's attempts: the payload sent, Salesforce's reply, the record Id."""
    return run_history.get_run(db, actor, run_id)


@router.post("/runs/{run_id}/retry", response_model=RetryOut)
def retry_run(run_id: str, actor: ApiActor, db: Db) -> RetryOut:
    """Replay the run's failed, skipped and paused task runs."""
    return RetryOut(queued_task_runs=run_history.retry_run(db, actor, run_id))


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/retry-failed", response_model=RetryOut)
def retry_failed(survey_id: str, workflow_id: str, actor: ApiActor, db: Db) -> RetryOut:
    """Replay every failed run of a workflow."""
    return RetryOut(
        queued_task_runs=run_history.retry_failed_runs(db, actor, workflow_id, survey_id)
    )
