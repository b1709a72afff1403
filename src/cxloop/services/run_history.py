"""Run history: the runs people read, and replaying what failed.

The read side of the ledger: listing and showing runs with their task runs and attempts, and
the replay (retry) use cases, which hand the work back to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.orm import Session, selectinload

from cxloop.db.models import Survey
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.uow import Database
from cxloop.db.workflow_models import Workflow
from cxloop.domain.statuses import RunStatus
from cxloop.errors import NotFound
from cxloop.ledger.ledger import REVISION_DOCUMENT, WORKFLOW_DOCUMENT
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.pagination import Page, after_cursor, check_limit, page_from
from cxloop.services.surveys import visible_survey_ids


@dataclass(frozen=True)
class RunFilter:
    survey_id: str | None = None
    workflow_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # A run id, a response id, a Salesforce record id, or words of a task run's error.
    text: str | None = None


def list_runs(
    db: Database, actor: Actor, run_filter: RunFilter, *, limit: int = 50, cursor: str | None = None
) -> Page[Run]:
    """Runs the actor may see (surveys they can view), newest first.

    Two steps, so that what is sorted is narrow: the ids of the page (newest first, walking an
    index), then those runs with their task runs. A person who sees several surveys gets the
    newest runs of each survey (each an index walk) merged, rather than every run of every
    survey sorted: at 100,000 runs that is the difference between 1 and 300 ms.
    """
    check_limit(limit)
    conditions: list[Any] = []
    if run_filter.workflow_id:
        conditions.append(Run.workflow_id == run_filter.workflow_id)
    if run_filter.status:
        conditions.append(Run.status == run_filter.status)
    if run_filter.since:
        conditions.append(Run.created_at >= run_filter.since)
    if run_filter.until:
        conditions.append(Run.created_at < run_filter.until)
    if run_filter.text and run_filter.text.strip():
        conditions.append(_text_matches(run_filter.text.strip()))
    if cursor:
        conditions.append(after_cursor(Run.created_at, Run.id, cursor, oldest_first=False))
    newest = (Run.created_at.desc(), Run.id.desc())
    with db.reader() as uow:
        session = uow.session
        if run_filter.survey_id:
            get_survey_for(session, run_filter.survey_id, actor, SurveyAccess.VIEW)
            survey_ids: list[str] | None = [run_filter.survey_id]
        elif actor.is_admin:
            survey_ids = None
        else:
            survey_ids = list(session.scalars(visible_survey_ids(actor)))
        if survey_ids == []:
            return Page([], None)
        if survey_ids is None:
            ids_query: Any = select(Run.id).where(*conditions).order_by(*newest).limit(limit + 1)
        elif len(survey_ids) <= MERGED_SURVEYS:
            per_survey = [
                select(Run.id, Run.created_at)
                .where(Run.survey_id == survey_id, *conditions)
                .order_by(*newest)
                .limit(limit + 1)
                .subquery()
                for survey_id in survey_ids
            ]
            merged = union_all(*(select(q.c.id, q.c.created_at) for q in per_survey)).subquery()
            ids_query = (
                select(merged.c.id)
                .order_by(merged.c.created_at.desc(), merged.c.id.desc())
                .limit(limit + 1)
            )
        else:
            ids_query = (
                select(Run.id)
                .where(Run.survey_id.in_(survey_ids), *conditions)
                .order_by(*newest)
                .limit(limit + 1)
            )
        ids = list(session.scalars(ids_query))
        rows = (
            list(
                session.scalars(
                    select(Run)
                    .where(Run.id.in_(ids))
                    .options(selectinload(Run.task_runs))
                    .order_by(*newest)
                )
            )
            if ids
            else []
        )
    return page_from(rows, limit, lambda run: (run.created_at, run.id))


def workflow_choices(db: Database, actor: Actor, survey_id: str) -> list[tuple[str, str]]:
    """The survey's workflows as the run history's filter offers them: (id, name), by name.
    Only the two columns: the documents of a hundred workflows are not needed to name them."""
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        rows = uow.session.execute(
            select(Workflow.id, Workflow.name)
            .where(Workflow.survey_id == survey_id)
            .order_by(Workflow.name, Workflow.id)
        )
        return [(row.id, row.name) for row in rows]


# Up to this many visible surveys, each survey's newest runs are read apart and merged.
MERGED_SURVEYS = 50


def _text_matches(text: str) -> Any:
    """What the run list's text filter finds: a run by its id, the runs of a response, the runs
    that wrote (or were started by) a Salesforce record or notification, or whose task runs'
    errors contain the words. An id is looked up exactly (an index), words are searched."""
    if text.startswith("RN_"):
        return Run.id == text
    if text.startswith("R_"):
        return Run.response_id == text
    pattern = "%" + _escape_like(text.lower()) + "%"
    task_runs = select(TaskRun.id).where(
        TaskRun.run_id == Run.id,
        or_(
            TaskRun.record_id == text,
            func.lower(TaskRun.status_reason).like(pattern, escape="\\"),
        ),
    )
    return or_(func.lower(Run.event_key).like(pattern, escape="\\"), task_runs.exists())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_run(db: Database, actor: Actor, run_id: str) -> Run:
    """A run with its task runs and their attempts."""
    with db.reader() as uow:
        run, _ = _visible_run(uow.session, actor, run_id)
        return run


@dataclass(frozen=True)
class RunView:
    """A run as its page shows it: with its survey and the conditions of the revision that
    ran ({} when it had none; None when that revision is gone with its workflow)."""

    run: Run
    survey: Survey
    conditions: Any


def get_run_view(db: Database, actor: Actor, run_id: str) -> RunView:
    """`get_run` with the run's survey and its workflow revision's conditions, read in one
    transaction (a page needs all three; three transactions cost three times the round trips)."""
    with db.reader() as uow:
        session = uow.session
        run, survey = _visible_run(session, actor, run_id)
        conditions = None
        if run.workflow_id is not None:
            params = {"workflow_id": run.workflow_id, "revision": run.workflow_revision}
            document = session.scalar(REVISION_DOCUMENT, params)
            if document is None:
                document = session.scalar(WORKFLOW_DOCUMENT, params)
            if isinstance(document, dict):
                conditions = document.get("conditions") or {}
        return RunView(run, survey, conditions)


def _visible_run(session: Session, actor: Actor, run_id: str) -> tuple[Run, Survey]:
    run = session.scalar(
        select(Run)
        .where(Run.id == run_id)
        .options(selectinload(Run.task_runs).selectinload(TaskRun.attempt_log))
    )
    if run is None:
        raise NotFound(f"No run {run_id!r}.", subject="run")
    try:
        survey = get_survey_for(session, run.survey_id, actor, SurveyAccess.VIEW)
    except NotFound:
        raise NotFound(f"No run {run_id!r}.", subject="run") from None
    return run, survey


def retry_run(db: Database, actor: Actor, run_id: str) -> int:
    """Replay a run's failed, skipped and paused task runs; returns how many were queued."""
    with db.uow() as uow:
        run = uow.session.get(Run, run_id)
        if run is None:
            raise NotFound(f"No run {run_id!r}.", subject="run")
        get_survey_for(uow.session, run.survey_id, actor, SurveyAccess.EDIT)
        keys = uow.ledger.requeue(uow.session, [run.id])
        uow.ledger.dispatch_after_commit(uow, keys)
        uow.commit()
    return len(keys)


def retry_failed_runs(
    db: Database, actor: Actor, workflow_id: str, survey_id: str | None = None
) -> int:
    """Replay every failed run of a workflow; returns how many task runs were queued."""
    with db.uow() as uow:
        workflow = uow.session.get(Workflow, workflow_id)
        if workflow is None or (survey_id is not None and workflow.survey_id != survey_id):
            raise NotFound(f"No workflow {workflow_id!r}.", subject="workflow")
        get_survey_for(uow.session, workflow.survey_id, actor, SurveyAccess.EDIT)
        run_ids = list(
            uow.session.scalars(
                select(Run.id).where(Run.workflow_id == workflow_id, Run.status == RunStatus.FAILED)
            )
        )
        keys = uow.ledger.requeue(uow.session, run_ids)
        uow.ledger.dispatch_after_commit(uow, keys)
        uow.commit()
    return len(keys)
