"""Runs: the workflow matcher that writes them, and the run history people read and replay.

The matcher is a response-event hook: inside the response's own transaction it finds the
survey's enabled workflows whose event and conditions match, and writes one run with its task
runs for each. After the commit the ready task runs' batch keys go to the queue. So a response is
never stored without its runs, and a run never exists without its response.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, union_all, update
from sqlalchemy.orm import Session, selectinload

from cxloop.db.base import utcnow
from cxloop.db.models import Response, Survey
from cxloop.db.run_models import READY_STATUSES, Run, TaskRun
from cxloop.db.uow import Database, UnitOfWork
from cxloop.db.workflow_models import Workflow, WorkflowRevision
from cxloop.domain.answers import resolve_answer_field
from cxloop.domain.conditions import evaluate
from cxloop.domain.ids import new_ids
from cxloop.domain.piped_text import PipedTextContext, render_value
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import (
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
    """`match_response` for responses written together (an import batch, or concurrent POSTs
    committed as one transaction).

    This runs inside the response's write transaction (on SQLite: holding the only write
    lock), once per batch, so it stays cheap: one light query for the surveys' enabled
    workflows (id and revision; the owner and content version come along), parsed documents
    and task-run rows cached per workflow revision, and Core INSERTs for runs and task runs.
    A survey without workflows costs that one query and nothing else.
    """
    if not responses:
        return
    by_survey: dict[str, list[Response]] = {}
    for response in responses:
        by_survey.setdefault(response.survey_id, []).append(response)
    ready_keys: list[str] = []
    for survey in _surveys_with_workflows(session, list(by_survey)):
        if not survey.workflows:
            continue
        survey_responses = by_survey[survey.id]
        content: list[SurveyContent | None] = []  # read on first need: conditions only
        for workflow_id, revision in survey.workflows:
            plan = _workflow_plan(session, workflow_id, revision, survey.owner_id)
            if plan is None:
                continue  # deleted meanwhile
            document = plan.document
            if document.conditions is not None and not content:
                content.append(
                    survey_content_by_version(session, survey.id, survey.content_version)
                )
            events = [
                RunEvent(_response_event_key(response, event), None, response.id)
                for response in survey_responses
                if _response_starts(document, content[0] if content else None, response, event)
            ]
            ready_keys += _write_runs(session, survey.id, plan, events, "survey_response")
    if ready_keys:
        uow.after_commit(lambda: dispatch(ready_keys))


def wants_responses(session: Session, survey_ids: Sequence[str], source: str) -> bool:
    """Whether new responses of these surveys from `source` could start a workflow: any
    enabled response workflow will do, except that imported responses only start workflows
    that include them (the matcher's interest check, one light query)."""
    for survey in _surveys_with_workflows(session, list(survey_ids)):
        for workflow_id, revision in survey.workflows:
            plan = _workflow_plan(session, workflow_id, revision, survey.owner_id)
            if plan is None:
                continue
            event = plan.document.event
            if source != "import" or (
                isinstance(event, SurveyResponseEvent) and event.include_imported
            ):
                return True
    return False


@dataclass(frozen=True)
class _SurveyWorkflows:
    id: str
    owner_id: str
    content_version: int
    workflows: tuple[tuple[str, int], ...]  # (workflow id, revision) of the enabled ones


def _surveys_with_workflows(session: Session, survey_ids: list[str]) -> list[_SurveyWorkflows]:
    """The surveys with their enabled response workflows, in one query."""
    if len(survey_ids) == 1:
        rows = session.execute(_SURVEY_WORKFLOWS_ONE, {"survey_id": survey_ids[0]})
    else:
        rows = session.execute(_SURVEY_WORKFLOWS_MANY, {"survey_ids": survey_ids})
    found: dict[str, tuple[str, int, list[tuple[str, int]]]] = {}
    for survey_id, owner_id, content_version, workflow_id, revision in rows:
        entry = found.setdefault(survey_id, (owner_id, content_version or 0, []))
        if workflow_id is not None:
            entry[2].append((workflow_id, revision))
    return [
        _SurveyWorkflows(survey_id, owner_id, version, tuple(sorted(workflows)))
        for survey_id, (owner_id, version, workflows) in found.items()
    ]


_SURVEY_WORKFLOWS = select(
    Survey.id, Survey.owner_id, Survey.content_version, Workflow.id, Workflow.revision
).outerjoin(
    Workflow,
    and_(
        Workflow.survey_id == Survey.id,
        Workflow.enabled.is_(True),
        Workflow.event_type == "survey_response",
    ),
)
# Built once: building a statement costs more than running it on this path.
_SURVEY_WORKFLOWS_ONE = _SURVEY_WORKFLOWS.where(Survey.id == bindparam("survey_id"))
_SURVEY_WORKFLOWS_MANY = _SURVEY_WORKFLOWS.where(
    Survey.id.in_(bindparam("survey_ids", expanding=True))
)
_WORKFLOW_DOCUMENT = select(Workflow.document).where(
    Workflow.id == bindparam("workflow_id"), Workflow.revision == bindparam("revision")
)
_REVISION_DOCUMENT = select(WorkflowRevision.document).where(
    WorkflowRevision.workflow_id == bindparam("workflow_id"),
    WorkflowRevision.revision == bindparam("revision"),
)


@dataclass(frozen=True)
class _WorkflowPlan:
    """What writing a run of one workflow revision for one survey owner needs, made once."""

    workflow_id: str
    revision: int
    document: WorkflowDocument
    task_rows: tuple[dict[str, Any], ...]  # a task run row per task, without ids and times


def _workflow_plan(
    session: Session, workflow_id: str, revision: int, owner_id: str
) -> _WorkflowPlan | None:
    """The plan of a workflow revision; its document is read (and parsed) only the first time
    this process meets the revision. None if the revision is gone (saved again meanwhile)."""
    key = (workflow_id, revision, owner_id)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    document = parsed_workflow_document(workflow_id, revision)
    if document is None:
        params = {"workflow_id": workflow_id, "revision": revision}
        # The workflow row at that revision, or its revision row (a revision never changes).
        data = session.scalar(_WORKFLOW_DOCUMENT, params)
        if data is None:
            data = session.scalar(_REVISION_DOCUMENT, params)
        if data is None:
            return None
        document = workflow_document(workflow_id, revision, data)
    plan = _WorkflowPlan(workflow_id, revision, document, task_run_rows(owner_id, document))
    if len(_PLANS) >= 1024:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


_PLANS: dict[tuple[str, int, str], _WorkflowPlan] = {}


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


class SurveyOwner(Protocol):
    """What writing runs needs of a survey: its id and its owner (a `Survey` will do)."""

    @property
    def id(self) -> str: ...

    @property
    def owner_id(self) -> str: ...


def add_run(
    session: Session,
    survey: SurveyOwner,
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
    survey: SurveyOwner,
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
    task's row is made once per revision and owner (`task_run_rows`) and copied for each event
    with fresh ids; a batch key that names its own task run (`email|TR_...`) names the copy's.
    Returns the batch keys ready to go.
    """
    plan = _WorkflowPlan(workflow_id, revision, document, task_run_rows(survey.owner_id, document))
    return _write_runs(session, survey.id, plan, events, event_type)


def _write_runs(
    session: Session,
    survey_id: str,
    plan: _WorkflowPlan,
    events: Iterable[RunEvent],
    event_type: str,
) -> list[str]:
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
    session.execute(_INSERT_RUNS, run_rows)
    if task_rows:
        session.execute(_INSERT_TASK_RUNS, task_rows)
    return ready


_OWN_KEYS = ("directory|", "email|")  # completed with the task run's id: these go alone
_INSERT_RUNS = insert(Run.__table__)
_INSERT_TASK_RUNS = insert(TaskRun.__table__)


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
        "Channel": response.channel,
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


def survey_content_by_version(
    session: Session, survey_id: str, content_version: int
) -> SurveyContent | None:
    """The survey's content at `content_version` (from the cache; else read and parsed once).

    The version is read back with the document, so a change saved in between is cached under
    its own version, never under the one asked for.
    """
    key = (survey_id, content_version or 0)
    if key in _CONTENTS:
        return _CONTENTS[key]
    row = session.execute(_SURVEY_CONTENT, {"survey_id": survey_id}).first()
    if row is None or not row.content:
        return None
    return _cached(
        _CONTENTS,
        (survey_id, row.content_version or 0),
        lambda: SurveyContent.from_document(row.content),
    )


_SURVEY_CONTENT = select(Survey.content, Survey.content_version).where(
    Survey.id == bindparam("survey_id")
)


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
        created_at, last_id = decode_cursor(cursor)
        conditions.append(
            or_(
                Run.created_at < created_at,
                and_(Run.created_at == created_at, Run.id < str(last_id)),
            )
        )
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
        elif len(survey_ids) <= _MERGED_SURVEYS:
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
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)


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
_MERGED_SURVEYS = 50


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
            document = session.scalar(_REVISION_DOCUMENT, params)
            if document is None:
                document = session.scalar(_WORKFLOW_DOCUMENT, params)
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
        raise NotFound(f"No run {run_id!r}.")
    try:
        survey = get_survey_for(session, run.survey_id, actor, SurveyAccess.VIEW)
    except NotFound:
        raise NotFound(f"No run {run_id!r}.") from None
    return run, survey


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
            document = _current_document(session, run.workflow_id) if broken else None
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

    Rows that set the same columns form a group. A column that every row of a group sets to
    the same plain value (a status, a time, null) goes into one `UPDATE ... WHERE id IN (...)`;
    only the columns that differ (a payload, a record id) are sent row by row, in one
    executemany. Per-row parameters are what such statements cost.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(change), []).append(change)
    id_column = table.c.id
    for keys, rows in groups.items():
        first = rows[0]
        columns = [k for k in keys if k != "_id"]
        shared = {
            k: first[k]
            for k in columns
            if isinstance(first[k], _PLAIN)
            and all(type(r[k]) is type(first[k]) and r[k] == first[k] for r in rows)
        }
        if shared:
            ids = [r["_id"] for r in rows]
            session.execute(update(table).where(id_column.in_(ids)).values(shared))
        varying = [k for k in columns if k not in shared]
        if varying:
            session.execute(
                update(table).where(id_column == bindparam("_id")),
                [{"_id": r["_id"], **{k: r[k] for k in varying}} for r in rows],
            )


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


def _current_document(session: Session, workflow_id: str | None) -> WorkflowDocument | None:
    """The workflow's current document (None once the workflow is deleted)."""
    if workflow_id is None:
        return None
    row = session.execute(
        select(Workflow.revision, Workflow.document).where(Workflow.id == workflow_id)
    ).first()
    if row is None:
        return None
    return workflow_document(workflow_id, row.revision, row.document)
