"""Runs: the workflow matcher that writes them, and the run history people read and replay.

The matcher is a response-event hook: inside the response's own transaction it finds the
survey's enabled workflows whose event and conditions match, and writes one run with its task
runs for each. After the commit the ready task runs' batch keys go to the queue. So a response is
never stored without its runs, and a run never exists without its response.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, selectinload

from cxloop.db.base import new_id, utcnow
from cxloop.db.models import Response, Survey
from cxloop.db.run_models import READY_STATUSES, Run, TaskRun
from cxloop.db.uow import Database, UnitOfWork
from cxloop.db.workflow_models import Workflow
from cxloop.domain.answers import resolve_answer_field
from cxloop.domain.conditions import evaluate
from cxloop.domain.piped_text import PipedTextContext, render_value
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import (
    AnyTask,
    DirectoryTask,
    SalesforceTask,
    SurveyResponseEvent,
    WorkflowDocument,
    parse_condition_field,
    parse_document,
    task_references,
)
from cxloop.errors import NotFound
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.pagination import Page, check_limit, decode_cursor, encode_cursor
from cxloop.services.surveys import visible_survey_ids

Dispatcher = Callable[[Iterable[str]], None]

_dispatcher: Dispatcher | None = None


def use_dispatcher(dispatcher: Dispatcher) -> None:
    """How batch keys reach the queue in this process (set once by bootstrap)."""
    global _dispatcher
    _dispatcher = dispatcher


def dispatch(batch_keys: Iterable[str]) -> None:
    """Send batch keys to the queue; without a queue (tests, tools) the sweeper finds them.

    A key sent moments ago is not sent again: the message already on its way claims every row
    of that key that is ready when it runs, and a worker that has finished a batch looks again
    before it leaves. This keeps the queue at a few messages a second per key under load,
    instead of one per response. What slips through that window is found by the sweeper.
    """
    now = time.monotonic()
    keys = []
    with _recent_lock:
        for key in set(batch_keys):
            if now - _recently_sent.get(key, -1e9) >= COALESCE_S:
                _recently_sent[key] = now
                keys.append(key)
        if len(_recently_sent) > 10_000:
            _recently_sent.clear()
    if keys and _dispatcher is not None:
        _dispatcher(sorted(keys))


COALESCE_S = 0.1
_recently_sent: dict[str, float] = {}
_recent_lock = threading.Lock()


# --- the matcher


def match_response(session: Session, response: Response, event: str, uow: UnitOfWork) -> None:
    """Write a run for every enabled workflow of the survey that this response event matches."""
    match_responses(session, [response], event, uow)


def match_responses(
    session: Session, responses: Sequence[Response], event: str, uow: UnitOfWork
) -> None:
    """`match_response` for a batch written together (an import): one query for the workflows
    of each survey in the batch, not one per response."""
    by_survey: dict[str, list[Response]] = {}
    for response in responses:
        by_survey.setdefault(response.survey_id, []).append(response)
    ready_keys: list[str] = []
    for survey_id, survey_responses in by_survey.items():
        workflows = session.scalars(
            select(Workflow).where(
                Workflow.survey_id == survey_id,
                Workflow.enabled.is_(True),
                Workflow.event_type == "survey_response",
            )
        ).all()
        if not workflows:
            continue
        session.autoflush = False  # nothing below reads what it adds; one flush at commit
        survey = session.get(Survey, survey_id)
        assert survey is not None
        content = survey_content_of(survey)
        for workflow in workflows:
            document = workflow_document(workflow.id, workflow.revision, workflow.document)
            for response in survey_responses:
                if _response_starts(document, content, response, event):
                    ready_keys += add_run(
                        session,
                        survey,
                        workflow,
                        document,
                        event_type="survey_response",
                        event_key=_response_event_key(response, event),
                        response_id=response.id,
                    )
    if ready_keys:
        uow.after_commit(lambda: dispatch(ready_keys))


def _response_event_key(response: Response, event: str) -> str:
    """What deduplicates a response event's runs: each update is an event of its own."""
    suffix = event if event == "created" else f"updated:{response.updated_at.isoformat()}"
    return f"response:{response.id}:{suffix}"


def _response_starts(
    document: WorkflowDocument, content: SurveyContent | None, response: Response, event: str
) -> bool:
    """Whether this response event starts the workflow: its event options, then conditions."""
    event_spec = document.event
    assert isinstance(event_spec, SurveyResponseEvent)
    if event not in event_spec.when:
        return False
    if response.source == "import" and not event_spec.include_imported:
        return False
    if not response.finished and not event_spec.include_incomplete:
        return False
    return document.conditions is None or evaluate(
        document.conditions, response_field_resolver(content, response)
    )


class RunEvent(NamedTuple):
    """One event that starts a run: what deduplicates it, its data (an outbound message's
    record fields), and the response it came from, if any."""

    event_key: str
    event_data: dict[str, Any] | None = None
    response_id: str | None = None


def add_run(
    session: Session,
    survey: Survey,
    workflow: Workflow,
    document: WorkflowDocument,
    *,
    event_type: str,
    event_key: str,
    response_id: str | None = None,
    event_data: dict[str, Any] | None = None,
) -> list[str]:
    """Write a run and its task runs in the session's transaction; returns the batch keys
    ready to go."""
    return add_runs_bulk(
        session,
        survey,
        workflow.id,
        workflow.revision,
        document,
        [RunEvent(event_key, event_data, response_id)],
        event_type=event_type,
    )


def add_runs_bulk(
    session: Session,
    survey: Survey,
    workflow_id: str,
    revision: int,
    document: WorkflowDocument,
    events: Iterable[RunEvent],
    *,
    event_type: str,
) -> list[str]:
    """Write the runs of many events of one workflow revision, with two Core INSERTs.

    No per-object ORM work: the outbound message listener writes up to 100 runs per message
    and must answer quickly, and a response's transaction holds SQLite's write lock. Each
    task's row comes from `new_task_run` once per call (its row depends on the task, not on
    the event) and is copied for each event with fresh ids; a batch key that names its own
    task run (`email|TR_...`) names the copy's. Returns the batch keys ready to go.
    """
    events = list(events)
    if not events:
        return []
    now = utcnow()
    probe = Run(id=new_id("RN_"), survey_id=survey.id, workflow_id=workflow_id)
    templates = [
        _column_values(new_task_run(session, survey, probe, index, task))
        for index, task in enumerate(document.tasks)
    ]
    run_ids = _new_ids("RN_", len(events))
    task_run_ids = iter(_new_ids("TR_", len(events) * len(templates)))
    run_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    ready: list[str] = []
    for run_id, event in zip(run_ids, events, strict=True):
        run_rows.append(
            {
                "id": run_id,
                "survey_id": survey.id,
                "workflow_id": workflow_id,
                "workflow_name": document.name,
                "workflow_revision": revision,
                "event_type": event_type,
                "event_key": event.event_key,
                "response_id": event.response_id,
                "event_data": event.event_data or {},
                "status": "pending",
                "created_at": now,
            }
        )
        for template in templates:
            task_run_id = next(task_run_ids)
            row = {
                **template,
                "id": task_run_id,
                "run_id": run_id,
                "batch_key": template["batch_key"].replace(template["id"], task_run_id),
                "next_attempt_at": now,
                "created_at": now,
            }
            task_rows.append(row)
            if row["status"] == "pending":
                ready.append(row["batch_key"])
    session.execute(insert(Run.__table__), run_rows)
    if task_rows:
        session.execute(insert(TaskRun.__table__), task_rows)
    return ready


def _column_values(instance: Any) -> dict[str, Any]:
    """The column values set on a transient ORM object (defaults apply to the rest)."""
    state = sa_inspect(instance)
    columns = state.mapper.columns
    return {key: value for key, value in state.dict.items() if key in columns}


_ID_CHARS = string.ascii_letters + string.digits
# Bytes 0-247 map onto the 62 characters evenly (4 times each); 248-255 are dropped.
_ID_TABLE = bytes(ord(_ID_CHARS[b % 62]) for b in range(248)) + bytes(8)
_ID_DROP = bytes(range(248, 256))


def _new_ids(prefix: str, count: int, length: int = 15) -> list[str]:
    """`count` ids like `new_id(prefix)` (uniform over letters and digits), made in C."""
    needed = count * length
    chars = b""
    while len(chars) < needed:
        chars += secrets.token_bytes(needed - len(chars) + 16).translate(_ID_TABLE, _ID_DROP)
    text = chars[:needed].decode("ascii")
    return [prefix + text[i : i + length] for i in range(0, needed, length)]


def new_task_run(session: Session, survey: Survey, run: Run, index: int, task: AnyTask) -> TaskRun:
    """A task run, ready (pending) or waiting for earlier tasks (blocked).

    Which connection a Salesforce task uses is settled when it runs (the survey owner's
    connection of that name or id), so writing a response costs no lookup.
    """
    task_run_id = new_id("TR_")
    depends_on = sorted(task_references(task))
    if isinstance(task, SalesforceTask):
        batch_key = salesforce_batch_key(survey.owner_id, task)
    elif isinstance(task, DirectoryTask):
        batch_key = f"directory|{task_run_id}"
    else:
        batch_key = f"email|{task_run_id}"
    return TaskRun(
        id=task_run_id,
        task_id=task.id,
        task_index=index,
        task_type=task.type,
        status="blocked" if depends_on else "pending",
        status_reason="",
        batch_key=batch_key,
        depends_on=depends_on,
        next_attempt_at=utcnow(),
    )


def salesforce_batch_key(owner_id: str, task: SalesforceTask) -> str:
    """What task runs must share to go out in one sObject Collections call."""
    return f"sf|{owner_id}|{task.connection}|{task.object}|{task.action}|{task.key_field or ''}"


@dataclass(frozen=True)
class SalesforceBatchKey:
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


def response_field_resolver(
    content: SurveyContent | None, response: Response
) -> Callable[[str], Any]:
    """How workflow conditions read a response (field syntax in domain/workflow.py)."""
    metadata = response_metadata(response)
    answers = response.values or {}
    context = PipedTextContext(
        survey_content=content,
        answers=answers,
        embedded_data=response.embedded_data or {},
        metadata=metadata,
    )

    def resolve(field: str) -> Any:
        parsed = parse_condition_field(field)
        if parsed is None:
            return None
        if parsed.namespace == "m":
            return metadata.get(parsed.name)
        if parsed.namespace == "e":
            # The same names piped text knows: embedded data, ResponseID, RecordedDate, ...
            return render_value(f"${{e://Field/{parsed.name}}}", context)
        if parsed.namespace != "q" or content is None:
            return None
        if parsed.part == "text" and parsed.item is None:
            return _entered_text(content, answers, parsed.name)
        suffix = {
            "value": "",
            "recode": "/recode",
            "text": f"/text/{parsed.item}",
            "row": f"/row/{parsed.item}",
            "row_recode": f"/row/{parsed.item}/recode",
        }[parsed.part]
        return resolve_answer_field(content, answers, parsed.name + suffix)

    return resolve


def event_field_resolver(survey_id: str, fields: dict[str, Any]) -> Callable[[str], Any]:
    """How workflow conditions read an outbound message's record.

    `event://Field/X` is the record's field X. `e://Field/X` reads what piped text's
    `${e://Field/X}` gives for such a run (the engine's run context: the record's fields are
    `event`, and there is no embedded data yet), so a condition and a template agree.
    """
    context = PipedTextContext(event_fields=fields, metadata={"SurveyID": survey_id})

    def resolve(field: str) -> Any:
        parsed = parse_condition_field(field)
        if parsed is None:
            return None
        if parsed.namespace == "event":
            return fields.get(parsed.name)
        if parsed.namespace == "e":
            return render_value(f"${{e://Field/{parsed.name}}}", context)
        return None

    return resolve


def _entered_text(content: SurveyContent, answers: dict[str, Any], qid: str) -> Any:
    """`q://QIDn/text`: a text entry's answer, or the "other, please specify" texts."""
    question = content.question(qid)
    if question is not None and question.type == "text_entry":
        return answers.get(qid)
    texts = [v for k, v in answers.items() if k.startswith(f"{qid}_") and k.endswith("_TEXT")]
    return texts or None


def response_metadata(response: Response) -> dict[str, Any]:
    """The response's metadata under the names piped text and conditions use."""
    return {
        "ResponseID": response.id,
        "SurveyID": response.survey_id,
        "StartDate": response.started_at,
        "EndDate": response.ended_at,
        "Finished": response.finished,
        "Duration": response.duration_s,
        "Source": response.source,
        "Language": response.language,
        "DistributionID": response.distribution_id,
        "ContactID": response.contact_id,
    }


def survey_content_of(survey: Survey) -> SurveyContent | None:
    """The survey's content, parsed once per content version per process.

    The version is checked first: the document itself is a deferred column, loaded (one more
    query) only when this process has not parsed that version yet.
    """
    key = (survey.id, survey.content_version or 0)
    if key in _CONTENTS:
        return _CONTENTS[key]
    if not survey.content:
        return None
    return _cached(_CONTENTS, key, lambda: SurveyContent.from_document(survey.content))


def workflow_document(workflow_id: str, revision: int, document: Any) -> WorkflowDocument:
    """The parsed document of a workflow revision, parsed once per process."""
    return _cached(_DOCUMENTS, (workflow_id, revision), lambda: parse_document(document))


def parsed_workflow_document(workflow_id: str, revision: int) -> WorkflowDocument | None:
    """The document of a workflow revision if this process has parsed it already."""
    return _DOCUMENTS.get((workflow_id, revision))


_CONTENTS: dict[tuple[str, int], Any] = {}
_DOCUMENTS: dict[tuple[str, int], Any] = {}


def _cached(
    cache: dict[tuple[str, int], Any], key: tuple[str, int], build: Callable[[], Any]
) -> Any:
    value = cache.get(key)
    if value is None:
        value = build()
        if len(cache) >= 1024:  # revisions are immutable; forgetting is only about memory
            cache.clear()
        cache[key] = value
    return value


# --- run history


@dataclass(frozen=True)
class RunFilter:
    survey_id: str | None = None
    workflow_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_runs(
    db: Database, actor: Actor, run_filter: RunFilter, *, limit: int = 50, cursor: str | None = None
) -> Page[Run]:
    """Runs the actor may see (surveys they can view), newest first."""
    check_limit(limit)
    query = (
        select(Run)
        .options(selectinload(Run.task_runs))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit + 1)
    )
    with db.reader() as uow:
        if run_filter.survey_id:
            get_survey_for(uow.session, run_filter.survey_id, actor, SurveyAccess.VIEW)
            query = query.where(Run.survey_id == run_filter.survey_id)
        elif not actor.is_admin:
            query = query.where(Run.survey_id.in_(visible_survey_ids(actor)))
        if run_filter.workflow_id:
            query = query.where(Run.workflow_id == run_filter.workflow_id)
        if run_filter.status:
            query = query.where(Run.status == run_filter.status)
        if run_filter.since:
            query = query.where(Run.created_at >= run_filter.since)
        if run_filter.until:
            query = query.where(Run.created_at < run_filter.until)
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Run.created_at < created_at,
                    and_(Run.created_at == created_at, Run.id < str(last_id)),
                )
            )
        rows = list(uow.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)


def get_run(db: Database, actor: Actor, run_id: str) -> Run:
    """A run with its task runs and their attempts."""
    with db.reader() as uow:
        run = uow.session.scalar(
            select(Run)
            .where(Run.id == run_id)
            .options(selectinload(Run.task_runs).selectinload(TaskRun.attempt_log))
        )
        if run is None:
            raise NotFound(f"No run {run_id!r}.")
        try:
            get_survey_for(uow.session, run.survey_id, actor, SurveyAccess.VIEW)
        except NotFound:
            raise NotFound(f"No run {run_id!r}.") from None
        return run


def retry_run(db: Database, actor: Actor, run_id: str) -> int:
    """Replay a run's failed, skipped and paused task runs; returns how many were queued."""
    with db.uow() as uow:
        run = uow.session.get(Run, run_id)
        if run is None:
            raise NotFound(f"No run {run_id!r}.")
        get_survey_for(uow.session, run.survey_id, actor, SurveyAccess.EDIT)
        keys = _requeue(uow.session, [run.id])
        uow.commit()
    dispatch(keys)
    return len(keys)


def retry_failed_runs(
    db: Database, actor: Actor, workflow_id: str, survey_id: str | None = None
) -> int:
    """Replay every failed run of a workflow; returns how many task runs were queued."""
    with db.uow() as uow:
        workflow = uow.session.get(Workflow, workflow_id)
        if workflow is None or (survey_id is not None and workflow.survey_id != survey_id):
            raise NotFound(f"No workflow {workflow_id!r}.")
        get_survey_for(uow.session, workflow.survey_id, actor, SurveyAccess.EDIT)
        run_ids = list(
            uow.session.scalars(
                select(Run.id).where(Run.workflow_id == workflow_id, Run.status == "failed")
            )
        )
        keys = _requeue(uow.session, run_ids)
        uow.commit()
    dispatch(keys)
    return len(keys)


def _requeue(session: Session, run_ids: list[str]) -> list[str]:
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
    freed = release_blocked(session, run_ids)
    return [row.batch_key for row in rows if row.status in READY_STATUSES] + freed


def release_blocked(session: Session, run_ids: Iterable[str]) -> list[str]:
    """Settle the blocked task runs of these runs; returns the batch keys that became ready.

    A blocked task run becomes pending once every task it depends on succeeded. When one of
    them failed or was skipped it is skipped if the workflow stops dependent tasks on failure,
    and runs anyway (with that output empty) if the workflow continues.
    """
    freed: list[str] = []
    runs = session.scalars(
        select(Run).where(Run.id.in_(list(run_ids))).options(selectinload(Run.task_runs))
    )
    for run in runs:
        by_task = {t.task_id: t for t in run.task_runs}
        for task_run in run.task_runs:
            if task_run.status != "blocked":
                continue
            upstream = [by_task[d] for d in task_run.depends_on if d in by_task]
            if any(u.status not in ("succeeded", "failed", "skipped") for u in upstream):
                continue
            broken = [u.task_id for u in upstream if u.status != "succeeded"]
            document = _document_of_run(session, run) if broken else None
            if broken and (document is None or document.on_task_failure == "stop"):
                task_run.status = "skipped"
                task_run.status_reason = (
                    f"Not run: it uses the output of {', '.join(broken)}, which did not succeed."
                )
                task_run.finished_at = utcnow()
            else:
                task_run.status = "pending"
                task_run.next_attempt_at = utcnow()
                freed.append(task_run.batch_key)
        settle_run_status(run)
    return freed


def settle_run_status(run: Run) -> None:
    """A run's status from its task runs: open work first, then failures, then success."""
    statuses = {t.status for t in run.task_runs}
    if statuses & {"pending", "running", "waiting_retry", "blocked"}:
        run.status = "running" if statuses - {"pending", "blocked"} else "pending"
        run.finished_at = None
        return
    if "paused" in statuses:
        run.status, run.finished_at = "paused", None
        return
    run.status = (
        "failed"
        if "failed" in statuses
        else ("skipped" if statuses == {"skipped"} else "succeeded")
    )
    run.finished_at = run.finished_at or utcnow()


def _document_of_run(session: Session, run: Run) -> WorkflowDocument | None:
    if run.workflow_id is None:
        return None
    workflow = session.get(Workflow, run.workflow_id)
    if workflow is None:
        return None
    return workflow_document(workflow.id, workflow.revision, workflow.document)
