"""Use cases for workflows: documents checked against their survey, saved with a revision each time.

A save (create, update, apply) checks the whole document and reports every problem at once:
the schema, piped text and condition fields against the survey's content, and each connection
against the survey OWNER's connections, whoever saves. The owner (or an admin) may pick any of
them; editors only those the owner allowed for this survey (`connection_grants`), and never
bring their own. A save that gives a paused task (the survey changed hands) a connection the
owner may use lifts the pause, and the task's paused runs go out with that connection. A
connection that needs a new login is no reason to refuse a save: the reply carries a warning,
and the engine pauses the tasks until it is fixed. Given `checks` (services.task_checks), a save
also checks each Salesforce task against its org's describe first, outside the transaction:
what that finds is a warning too, unless the save is `strict`.

Every change is a revision (who, when, the whole document, what changed); an unchanged document
stores none, so `apply` from git is idempotent. Reading needs the viewer role, changing the
editor role; anyone else is told the workflow does not exist.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from cxloop.db.base import new_id, utcnow
from cxloop.db.models import Connection, Survey
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.uow import Database, UnitOfWork
from cxloop.db.workflow_models import Workflow, WorkflowRevision, WorkflowTaskPause
from cxloop.domain import piped_text
from cxloop.domain.conditions import iter_conditions
from cxloop.domain.phrases import Phrase
from cxloop.domain.statuses import ConnectionStatus, TaskRunStatus
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import (
    DocumentProblem,
    DocumentTextError,
    OutboundMessageEvent,
    SalesforceTask,
    WorkflowDocument,
    WorkflowDocumentError,
    check_document,
    dump_yaml,
    load_text,
    parse_condition_field,
    parse_document,
    task_texts,
    too_large_problem,
)
from cxloop.errors import Conflict, CxloopError, InvalidInput, NotFound, TooLarge, Unreadable
from cxloop.ledger import SalesforceBatchKey, settle_run_status
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, access_to, get_survey_for
from cxloop.services.connection_grants import owner_connections as _owned_by
from cxloop.services.connection_grants import pickable_connections
from cxloop.services.survey_content import content_of
from cxloop.services.task_checks import (
    ConnectionFacts,
    SalesforceChecksFailed,
    SaveChecks,
    TaskTarget,
)

Outcome = Literal["created", "updated", "unchanged"]
MAX_SUMMARY = 500


class MalformedDocument(Unreadable):
    """The text is not YAML or JSON at all (so there is no document to check)."""

    code = "malformed_document"


class DocumentTooLarge(TooLarge):
    """The workflow document is larger than a workflow may be."""

    code = "document_too_large"


@dataclass(frozen=True)
class WorkflowView:
    """A workflow and what its reader should know now.

    `warnings` are problems that do not stop a save (a connection that needs a new login) or
    that arose after it (a question deleted since). `outcome` says what a save did.
    """

    workflow: Workflow
    warnings: list[DocumentProblem]
    outcome: Outcome | None = None


# --- reading


def list_workflows(db: Database, actor: Actor, survey_id: str) -> list[Workflow]:
    """The survey's workflows, oldest first (viewers and up)."""
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        query = (
            select(Workflow)
            .where(Workflow.survey_id == survey_id)
            .order_by(Workflow.created_at, Workflow.id)
        )
        return list(uow.session.scalars(query))


def get_workflow(
    db: Database, actor: Actor, workflow_id: str, *, survey_id: str | None = None
) -> WorkflowView:
    """A workflow with warnings about what would stop it working now (viewers and up)."""
    with db.reader() as uow:
        workflow, survey = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.VIEW, survey_id
        )
        warnings = current_warnings(
            uow.session, survey, workflow.document, access_to(survey, actor), workflow.id
        )
        return WorkflowView(workflow, warnings)


def list_revisions(
    db: Database, actor: Actor, workflow_id: str, *, survey_id: str | None = None
) -> list[WorkflowRevision]:
    """Every revision of a workflow, oldest first, with its author."""
    with db.reader() as uow:
        _workflow_for(uow.session, actor, workflow_id, SurveyAccess.VIEW, survey_id)
        query = (
            select(WorkflowRevision)
            .where(WorkflowRevision.workflow_id == workflow_id)
            .order_by(WorkflowRevision.revision)
        )
        return list(uow.session.scalars(query))


def get_revision(
    db: Database, actor: Actor, workflow_id: str, revision: int, *, survey_id: str | None = None
) -> WorkflowRevision:
    """One revision of a workflow: its document, author, time and summary."""
    with db.reader() as uow:
        workflow, _ = _workflow_for(uow.session, actor, workflow_id, SurveyAccess.VIEW, survey_id)
        return _revision(uow.session, workflow, revision)


def diff_revisions(
    db: Database,
    actor: Actor,
    workflow_id: str,
    from_revision: int | None = None,
    to_revision: int | None = None,
    *,
    survey_id: str | None = None,
) -> str:
    """A unified diff of two revisions' YAML (default: the previous revision to the current).

    Empty when the documents are the same (an enable or disable changes no document).
    """
    with db.reader() as uow:
        workflow, _ = _workflow_for(uow.session, actor, workflow_id, SurveyAccess.VIEW, survey_id)
        to_number = workflow.revision if to_revision is None else to_revision
        from_number = max(to_number - 1, 1) if from_revision is None else from_revision
        before = _revision(uow.session, workflow, from_number)
        after = _revision(uow.session, workflow, to_number)
    return "".join(
        difflib.unified_diff(
            dump_yaml(before.document).splitlines(keepends=True),
            dump_yaml(after.document).splitlines(keepends=True),
            fromfile=f"{workflow_id} revision {from_number}",
            tofile=f"{workflow_id} revision {to_number}",
        )
    )


def export_workflow(
    db: Database,
    actor: Actor,
    workflow_id: str,
    *,
    revision: int | None = None,
    survey_id: str | None = None,
) -> str:
    """The document as YAML, exactly as saved (of the current revision, or of `revision`).

    `apply` of this text changes nothing, and exporting again gives the same bytes.
    """
    with db.reader() as uow:
        workflow, _ = _workflow_for(uow.session, actor, workflow_id, SurveyAccess.VIEW, survey_id)
        if revision is None:
            return dump_yaml(workflow.document)
        return dump_yaml(_revision(uow.session, workflow, revision).document)


def owner_connections(db: Database, actor: Actor, survey_id: str) -> list[Connection]:
    """The connections the actor may pick for the survey's tasks: all of the owner's for the
    owner (and admins), those the owner allowed for this survey for editors. Viewers get
    Forbidden: choosing is for those who may edit. Tokens never leave the connection."""
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        return pickable_connections(uow.session, survey, access_to(survey, actor))


def paused_task_reasons(session: Session, workflow_id: str) -> dict[str, str]:
    """The workflow's paused tasks (by task id), each with why."""
    return {
        pause.task_id: pause.reason
        for pause in session.scalars(
            select(WorkflowTaskPause).where(WorkflowTaskPause.workflow_id == workflow_id)
        )
    }


def resolve_connection(
    session_or_db: Session | Database, survey: Survey, name_or_id: str
) -> Connection | None:
    """The survey owner's connection with this id (first) or name, or None.

    Only the owner's connections count, whoever edited the workflow: that is what lets an
    editor choose a connection without ever holding, or invalidating, its tokens.
    """
    return resolve_owner_connection(session_or_db, survey.owner_id, name_or_id)


def resolve_owner_connection(
    session_or_db: Session | Database, owner_id: str, name_or_id: str
) -> Connection | None:
    """A user's connection with this id (first) or name, or None."""
    if isinstance(session_or_db, Database):
        with session_or_db.reader() as uow:
            return resolve_owner_connection(uow.session, owner_id, name_or_id)
    # Callers need which connection (id, org, instance), not its tokens: leaving them out saves
    # decrypting them on the worker's and the listener's hot paths.
    found = session_or_db.scalars(
        select(Connection)
        .options(defer(Connection.access_token), defer(Connection.refresh_token))
        .where(
            Connection.owner_id == owner_id,
            or_(Connection.id == name_or_id, Connection.name == name_or_id),
        )
    ).all()
    return _match(found, name_or_id)


# --- changing


def create_workflow(
    db: Database,
    actor: Actor,
    survey_id: str,
    document: Any,
    *,
    checks: SaveChecks | None = None,
    strict: bool = False,
) -> WorkflowView:
    """A new workflow from a document (data, or YAML/JSON text), enabled, at revision 1.

    With `checks`, its Salesforce tasks are checked against their orgs first (warnings; with
    `strict`, every warning refuses the save)."""
    return _save_named(db, actor, survey_id, document, checks, strict=strict, may_update=False)


def update_workflow(
    db: Database,
    actor: Actor,
    workflow_id: str,
    document: Any,
    *,
    survey_id: str | None = None,
    expected_revision: int | None = None,
    checks: SaveChecks | None = None,
    strict: bool = False,
) -> WorkflowView:
    """Replace a workflow's document; a new revision unless nothing changed.

    With `expected_revision`, refuse (Conflict) if someone saved another revision meanwhile, so that
    two editors do not overwrite each other unknowingly. `checks` and `strict` as for create.
    """
    data = _data_of(document)
    found = salesforce_warnings(
        db, actor, data, checks, strict=strict, survey_id=survey_id, workflow_id=workflow_id
    )
    with db.uow() as uow:
        workflow, survey = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id, lock=True
        )
        if expected_revision is not None and expected_revision != workflow.revision:
            raise Conflict(
                f"Workflow {workflow_id} is at revision {workflow.revision} now, not "
                f"{expected_revision}: someone saved it meanwhile. Look at the changes "
                f"(diff {expected_revision} to {workflow.revision}) and save again.",
                code="revision_changed",
            )
        parsed, warnings = _checked(uow.session, survey, data, actor)
        outcome = _update(uow.session, actor, workflow, parsed, data)
        _lift_pauses(uow, actor, survey, workflow, parsed)
        _commit(uow, parsed.name)
    return WorkflowView(workflow, warnings + found, outcome)


def apply_workflow(
    db: Database,
    actor: Actor,
    survey_id: str,
    document: Any,
    *,
    checks: SaveChecks | None = None,
    strict: bool = False,
) -> WorkflowView:
    """Create or update the survey's workflow with the document's name (workflows as code).

    The outcome is `created`, `updated` or `unchanged`; applying the same text twice stores
    one revision. `checks` and `strict` as for create (an unchanged document is checked too:
    the org may have changed).
    """
    return _save_named(db, actor, survey_id, document, checks, strict=strict, may_update=True)


def _save_named(
    db: Database,
    actor: Actor,
    survey_id: str,
    document: Any,
    checks: SaveChecks | None,
    *,
    strict: bool,
    may_update: bool,
) -> WorkflowView:
    """Create the survey's workflow with the document's name, or (`may_update`) update the one
    that has it. Without `may_update` a name in use is refused (Conflict), as `create` says."""
    data = _data_of(document)
    found = salesforce_warnings(db, actor, data, checks, strict=strict, survey_id=survey_id)
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        parsed, warnings = _checked(uow.session, survey, data, actor)
        existing = None
        if may_update:
            existing = uow.session.scalar(
                select(Workflow)
                .where(Workflow.survey_id == survey.id, Workflow.name == parsed.name)
                .with_for_update()
            )
        if existing is None:
            workflow, outcome = _create(uow.session, actor, survey, parsed, data), "created"
        else:
            workflow, outcome = existing, _update(uow.session, actor, existing, parsed, data)
            _lift_pauses(uow, actor, survey, workflow, parsed)
        _commit(uow, parsed.name)
    return WorkflowView(workflow, warnings + found, outcome)


def set_enabled(
    db: Database, actor: Actor, workflow_id: str, enabled: bool, *, survey_id: str | None = None
) -> WorkflowView:
    """Enable or disable a workflow; a revision too (unless it already was)."""
    with db.uow() as uow:
        workflow, survey = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id, lock=True
        )
        outcome: Outcome = "unchanged"
        if workflow.enabled != enabled:
            workflow.enabled = enabled
            action = "enabled" if enabled else "disabled"
            _add_revision(uow.session, actor, workflow, workflow.document, action)
            audit.record(
                uow.session, actor.id, f"workflow.{action.removesuffix('d')}", "workflow",
                workflow.id, survey_id=survey.id, revision=workflow.revision,
            )  # fmt: skip
            outcome = "updated"
        warnings = current_warnings(
            uow.session, survey, workflow.document, access_to(survey, actor), workflow.id
        )
        uow.commit()
    return WorkflowView(workflow, warnings, outcome)


def delete_workflow(
    db: Database, actor: Actor, workflow_id: str, *, survey_id: str | None = None
) -> None:
    """Delete a workflow and its revisions (editors and up).

    The audit log keeps the last document, so a deletion can be undone by applying it again;
    run history keeps the workflow's name and revision.
    """
    with db.uow() as uow:
        workflow, survey = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id, lock=True
        )
        audit.record(
            uow.session, actor.id, "workflow.delete", "workflow", workflow.id,
            survey_id=survey.id, name=workflow.name, revision=workflow.revision,
            document=workflow.document,
        )  # fmt: skip
        uow.session.delete(workflow)
        uow.commit()


# --- checks


def parse_text(text: str | bytes, syntax: Literal["auto", "json", "yaml"] = "auto") -> Any:
    """A document from YAML or JSON text (`auto`: either); MalformedDocument if it is neither,
    DocumentTooLarge if it is too large."""
    try:
        return load_text(text, syntax)
    except DocumentTextError as exc:
        reason = exc.problems[0].message
        raise MalformedDocument(
            f"{reason[:1].upper()}{reason[1:]}.",
            code="malformed_json" if syntax == "json" else "malformed_yaml",
        ) from None
    except WorkflowDocumentError as exc:
        raise _refusal(exc.problems) from None


def current_warnings(
    session: Session,
    survey: Survey,
    document: Any,
    access: SurveyAccess = SurveyAccess.OWN,
    workflow_id: str | None = None,
) -> list[DocumentProblem]:
    """What would stop a stored document working now: connections the owner no longer has or
    must log in to again, tasks paused since the survey changed hands, and references to
    questions or fields removed since it was saved. Connection names are listed only to those
    who may pick them (`access`)."""
    try:
        parsed, problems = check_document(document, _content_of(survey)), []
    except WorkflowDocumentError as exc:
        parsed, problems = exc.document, exc.problems
    if parsed is None:  # saved under other rules (an older cxloop): say so, do not fail
        return problems
    errors, warnings = _connection_findings(session, survey, parsed, access)
    paused = [] if workflow_id is None else _pause_warnings(session, workflow_id, parsed)
    return problems + paused + errors + warnings


def _pause_warnings(
    session: Session, workflow_id: str, document: WorkflowDocument
) -> list[DocumentProblem]:
    index = {task.id: i for i, task in enumerate(document.tasks)}
    return [
        DocumentProblem(
            f"tasks[{index.get(pause.task_id, '?')}]",
            Phrase("paused: %(reason)s", reason=pause.reason),
        )
        for pause in session.scalars(
            select(WorkflowTaskPause)
            .where(WorkflowTaskPause.workflow_id == workflow_id)
            .order_by(WorkflowTaskPause.task_id)
        )
    ]


def _checked(
    session: Session, survey: Survey, data: Any, actor: Actor
) -> tuple[WorkflowDocument, list[DocumentProblem]]:
    """The parsed document and its warnings, or InvalidInput listing every problem."""
    try:
        parsed, problems = check_document(data, _content_of(survey)), []
    except WorkflowDocumentError as exc:
        parsed, problems = exc.document, exc.problems
    if parsed is None:
        raise _refusal(problems)
    errors, warnings = _connection_findings(session, survey, parsed, access_to(survey, actor))
    if problems or errors:
        raise _refusal(problems + errors)
    return parsed, warnings


def salesforce_warnings(
    db: Database,
    actor: Actor,
    data: Any,
    checks: SaveChecks | None,
    *,
    strict: bool = False,
    survey_id: str | None = None,
    workflow_id: str | None = None,
) -> list[DocumentProblem]:
    """What the Salesforce checks find in the document's tasks, before anything is stored.

    The document's own problems come first, all at once (InvalidInput, as on any save); only a
    sound document is checked against Salesforce, outside any transaction since Salesforce
    may be slow. With `strict`, any warning (these, or a connection that needs a new login)
    refuses the save: SalesforceChecksFailed lists them all.
    """
    if checks is None and not strict:
        return []
    with db.reader() as uow:
        if workflow_id is not None:
            _, survey = _workflow_for(uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id)
        else:
            assert survey_id is not None
            survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        parsed, warnings = _checked(uow.session, survey, data, actor)
        targets = _salesforce_targets(uow.session, actor, survey, parsed)
    found: list[DocumentProblem] = list(checks(targets)) if checks is not None else []
    if strict and (warnings or found):
        raise SalesforceChecksFailed(warnings + found)
    return found


def _salesforce_targets(
    session: Session, actor: Actor, survey: Survey, document: WorkflowDocument
) -> list[TaskTarget]:
    """The document's Salesforce tasks with the connection each would run with, if usable
    (one that needs a new login already has its warning)."""
    targets = []
    for index, task in enumerate(document.tasks):
        if not isinstance(task, SalesforceTask):
            continue
        connection = resolve_connection(session, survey, task.connection)
        if connection is not None and connection.status == ConnectionStatus.ACTIVE:
            facts = ConnectionFacts.of(connection, for_user=actor.id)
            targets.append(TaskTarget(f"tasks[{index}]", task, facts))
    return targets


def _connection_findings(
    session: Session, survey: Survey, document: WorkflowDocument, access: SurveyAccess
) -> tuple[list[DocumentProblem], list[DocumentProblem]]:
    """Errors for connections that are not the owner's, or that someone with `access` may not
    pick (an editor: not allowed for this survey by the owner); warnings for those that need
    care."""
    places: list[tuple[str, str]] = []
    if isinstance(document.event, OutboundMessageEvent):
        places.append(("event.connection", document.event.connection))
    places += [
        (f"tasks[{index}].connection", task.connection)
        for index, task in enumerate(document.tasks)
        if isinstance(task, SalesforceTask)
    ]
    if not places:
        return [], []
    owned = _owned_by(session, survey.owner_id)
    pickable = pickable_connections(session, survey, access)
    pickable_ids = {c.id for c in pickable}
    owner = survey.owner.email
    names = ", ".join(repr(c.name) for c in pickable)
    errors: list[DocumentProblem] = []
    warnings: list[DocumentProblem] = []
    for path, reference in places:
        connection = _match(owned, reference)
        if connection is None:
            if pickable:
                usable = Phrase("; use one of: %(names)s", names=names)
            elif access >= SurveyAccess.OWN:
                usable = Phrase("; they have not linked any yet")
            else:
                usable = ""
            errors.append(
                DocumentProblem(
                    path,
                    Phrase(
                        "connection %(reference)s is not one of the survey owner's (%(owner)s) "
                        "connections%(usable)s",
                        reference=repr(reference), owner=owner, usable=usable,
                    ),
                )
            )  # fmt: skip
        elif connection.id not in pickable_ids:
            usable = Phrase(", or use one they allowed: %(names)s", names=names) if pickable else ""
            errors.append(
                DocumentProblem(
                    path,
                    Phrase(
                        "connection %(reference)s has not been allowed for this survey by its "
                        "owner (%(owner)s); ask them to allow it (`cxloop surveys "
                        "grant-connection`, or PUT .../connection-grants/<connection>)%(usable)s",
                        reference=repr(reference), owner=owner, usable=usable,
                    ),
                )
            )  # fmt: skip
        elif connection.status != ConnectionStatus.ACTIVE:
            reason = connection.status_reason or Phrase("no reason given")
            name = repr(connection.name)
            if connection.status == ConnectionStatus.REVOKED:
                message = Phrase(
                    "connection %(name)s was revoked (%(reason)s); its tasks pause until the "
                    "owner (%(owner)s) reconnects it", name=name, reason=reason, owner=owner,
                )  # fmt: skip
            else:
                message = Phrase(
                    "connection %(name)s needs a new login (%(reason)s); its tasks pause until "
                    "the owner (%(owner)s) reconnects it", name=name, reason=reason, owner=owner,
                )  # fmt: skip
            warnings.append(DocumentProblem(path, message))
    return errors, warnings


def _match(connections: Iterable[Connection], name_or_id: str) -> Connection | None:
    # An id wins over a name: a connection could be named like another one's id.
    candidates = list(connections)
    by_id = next((c for c in candidates if c.id == name_or_id), None)
    return by_id or next((c for c in candidates if c.name == name_or_id), None)


def _content_of(survey: Survey) -> SurveyContent:
    # No questions yet: an empty content, so that every q:// reference is reported.
    return content_of(survey)


def _refusal(problems: list[DocumentProblem]) -> CxloopError:
    error = WorkflowDocumentError(problems)
    details = [p.as_dict() for p in problems]
    if problems == [too_large_problem()]:
        return DocumentTooLarge(str(error), details=details)
    refusal = InvalidInput(str(error), details=details)
    refusal.problems = tuple(problems)
    return refusal


def _data_of(document: Any) -> Any:
    return parse_text(document) if isinstance(document, str | bytes) else document


# --- paused tasks


def _lift_pauses(
    uow: UnitOfWork, actor: Actor, survey: Survey, workflow: Workflow, parsed: WorkflowDocument
) -> None:
    """Resume the workflow's paused tasks now that the saved document passed the check: every
    Salesforce connection in it is one the owner may use. Their paused task runs go out with
    the connection picked now; a task gone from the document has nothing left to resume."""
    session = uow.session
    pauses = list(
        session.scalars(
            select(WorkflowTaskPause).where(WorkflowTaskPause.workflow_id == workflow.id)
        )
    )
    keys: list[str] = []
    for pause in pauses:
        task = next((t for t in parsed.tasks if t.id == pause.task_id), None)
        connection = task.connection if isinstance(task, SalesforceTask) else None
        session.delete(pause)
        audit.record(
            session, actor.id, "workflow.task.resume", "workflow", workflow.id,
            survey_id=survey.id, task_id=pause.task_id, before=pause.connection,
            after=connection,
        )  # fmt: skip
        if connection is not None:
            keys += rebind_paused_task_runs(session, workflow.id, pause.task_id, survey, connection)
    uow.ledger.dispatch_after_commit(uow, keys)


def rebind_paused_task_runs(
    session: Session, workflow_id: str, task_id: str, survey: Survey, connection: str
) -> list[str]:
    """The task's runs paused because their connection is not the owner's go back to ready,
    keyed to the owner's `connection` (name or id, as the document says), in the caller's
    transaction; returns their batch keys, to dispatch after the commit."""
    rows = list(
        session.scalars(
            select(TaskRun)
            .join(Run, Run.id == TaskRun.run_id)
            .where(
                Run.workflow_id == workflow_id,
                TaskRun.task_id == task_id,
                TaskRun.status == TaskRunStatus.PAUSED,
                TaskRun.batch_key.startswith("sf|"),
            )
        )
    )
    now = utcnow()
    rebound = []
    for row in rows:
        key = SalesforceBatchKey.parse(row.batch_key)
        if key.owner_id == survey.owner_id and row.connection_id is not None:
            continue  # paused for its own connection's sake (a new login): that resumes itself
        row.batch_key = (
            f"sf|{survey.owner_id}|{connection}|{key.sobject}|{key.action}|{key.key_field}"
        )
        row.connection_id = None
        row.status = TaskRunStatus.PENDING
        row.status_reason = f"resumed: the owner picked the connection {connection!r}"
        row.next_attempt_at = now
        row.first_attempt_at = None  # the pause must not eat the retry horizon
        rebound.append(row)
    session.flush()
    run_ids = {row.run_id for row in rebound}
    if run_ids:
        for run in session.scalars(select(Run).where(Run.id.in_(run_ids))):
            settle_run_status(run)
    return sorted({row.batch_key for row in rebound})


# --- storing


def _create(
    session: Session, actor: Actor, survey: Survey, parsed: WorkflowDocument, data: Any
) -> Workflow:
    _check_name_free(session, survey.id, parsed.name)
    workflow = Workflow(
        id=new_id("WF_"),
        survey_id=survey.id,
        name=parsed.name,
        enabled=True,
        event_type=parsed.event.type,
        document=data,
        revision=0,
        created_by=actor.id,
    )
    _sync_outbound_token(workflow, parsed)
    session.add(workflow)
    _add_revision(session, actor, workflow, data, "created")
    audit.record(
        session, actor.id, "workflow.create", "workflow", workflow.id,
        survey_id=survey.id, name=parsed.name,
    )  # fmt: skip
    return workflow


def _update(
    session: Session, actor: Actor, workflow: Workflow, parsed: WorkflowDocument, data: Any
) -> Outcome:
    if _same(workflow.document, data):
        return "unchanged"
    if parsed.name != workflow.name:
        _check_name_free(session, workflow.survey_id, parsed.name)
    summary = summarize_change(workflow.document, data)
    workflow.name, workflow.event_type, workflow.document = parsed.name, parsed.event.type, data
    _sync_outbound_token(workflow, parsed)
    _add_revision(session, actor, workflow, data, summary)
    audit.record(
        session, actor.id, "workflow.update", "workflow", workflow.id,
        survey_id=workflow.survey_id, revision=workflow.revision, summary=summary,
    )  # fmt: skip
    return "updated"


def _add_revision(
    session: Session, actor: Actor, workflow: Workflow, document: Any, summary: str
) -> None:
    workflow.revision += 1
    session.add(
        WorkflowRevision(
            workflow_id=workflow.id,
            revision=workflow.revision,
            document=document,
            enabled=workflow.enabled,
            summary=summary[:MAX_SUMMARY],
            author_id=actor.id,
        )
    )


def _commit(uow: Any, name: str) -> None:
    try:
        uow.commit()
    except IntegrityError as exc:
        # Two saves raced: the same name created twice, or the same revision number written
        # twice (the row lock prevents that on PostgreSQL; this is the last line of defence).
        raise Conflict(
            f"Someone else saved a workflow named {name!r} at the same moment; reload and "
            "try again.",
            code="concurrent_change",
        ) from exc


def _check_name_free(session: Session, survey_id: str, name: str) -> None:
    taken = session.scalar(
        select(Workflow.id).where(Workflow.survey_id == survey_id, Workflow.name == name)
    )
    if taken:
        raise Conflict(
            f"This survey already has a workflow named {name!r} ({taken}): pick another name, "
            "or update that one.",
            code="name_taken",
        )


def summarize_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A short line saying what changed between two documents, for the revision list."""
    parts = [
        key
        for key in dict.fromkeys([*before, *after])
        if key != "tasks" and not _same(before.get(key), after.get(key))
    ]
    old_tasks = _tasks_by_id(before.get("tasks"))
    new_tasks = _tasks_by_id(after.get("tasks"))
    added = [task_id for task_id in new_tasks if task_id not in old_tasks]
    removed = [task_id for task_id in old_tasks if task_id not in new_tasks]
    changed = [
        task_id
        for task_id in new_tasks
        if task_id in old_tasks and not _same(old_tasks[task_id], new_tasks[task_id])
    ]
    kept_order = [t for t in old_tasks if t in new_tasks] == [
        t for t in new_tasks if t in old_tasks
    ]
    phrases = ["changed " + ", ".join(parts)] if parts else []
    for verb, task_ids in (("added", added), ("removed", removed), ("changed", changed)):
        if task_ids:
            phrases.append(f"{verb} task {', '.join(task_ids)}")
    if not kept_order:
        phrases.append("reordered tasks")
    return "; ".join(phrases) or "changed formatting"


def _tasks_by_id(tasks: Any) -> dict[str, Any]:
    if not isinstance(tasks, list):
        return {}
    return {str(t.get("id")): t for t in tasks if isinstance(t, dict)}


def _same(left: Any, right: Any) -> bool:
    # JSON text, not ==: Python says True == 1 and 6 == 6.0, a document does not.
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


# --- finding


def _workflow_for(
    session: Session,
    actor: Actor,
    workflow_id: str,
    needed: SurveyAccess,
    survey_id: str | None,
    *,
    lock: bool = False,
) -> tuple[Workflow, Survey]:
    """The workflow and its survey, if the actor has `needed` access; NotFound for anyone with
    none, so that workflow ids cannot be probed."""
    workflow = session.get(Workflow, workflow_id, with_for_update=True if lock else None)
    if workflow is None or (survey_id is not None and workflow.survey_id != survey_id):
        raise NotFound(f"No workflow {workflow_id!r}.", subject="workflow")
    try:
        survey = get_survey_for(session, workflow.survey_id, actor, needed)
    except NotFound:
        raise NotFound(f"No workflow {workflow_id!r}.", subject="workflow") from None
    return workflow, survey


def _revision(session: Session, workflow: Workflow, number: int) -> WorkflowRevision:
    in_range = 1 <= number <= workflow.revision  # also keeps huge numbers away from the database
    revision = session.get(WorkflowRevision, (workflow.id, number)) if in_range else None
    if revision is None:
        raise NotFound(
            f"Workflow {workflow.id} has no revision {number}: it has revisions 1 to "
            f"{workflow.revision}.",
            code="no_such_revision",
        )
    return revision


# --- the outbound-message endpoint

OUTBOUND_HOOK_PATH = "/hooks/salesforce/outbound/"


@dataclass(frozen=True)
class OutboundEndpoint:
    """Where Salesforce sends this workflow's outbound messages, and how to set that up."""

    workflow_id: str
    url: str
    object: str
    fields: list[str]
    verify_session_id: bool
    allowed_ips: list[str]
    steps: list[str]


def outbound_endpoint(
    db: Database, actor: Actor, survey_id: str | None, workflow_id: str, *, base_url: str
) -> OutboundEndpoint:
    """The workflow's endpoint URL and the Salesforce setup steps (editors and up: the URL is
    the only secret between Salesforce and cxloop)."""
    with db.uow() as uow:
        workflow, _ = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id, lock=True
        )
        parsed = _outbound_document(workflow)
        if workflow.outbound_token is None:  # saved before tokens existed
            _new_outbound_token(workflow)
            audit.record(
                uow.session, actor.id, "workflow.outbound_token_created", "workflow",
                workflow.id, survey_id=workflow.survey_id,
            )  # fmt: skip
        token = workflow.outbound_token
        uow.commit()
    assert token is not None
    return _endpoint(workflow.id, parsed, base_url, token)


def rotate_outbound_token(
    db: Database, actor: Actor, survey_id: str | None, workflow_id: str, *, base_url: str
) -> OutboundEndpoint:
    """A new endpoint URL for the workflow; the old one stops working at once (editors and up).

    The document does not change, so no revision is added; the audit log records who rotated.
    """
    with db.uow() as uow:
        workflow, _ = _workflow_for(
            uow.session, actor, workflow_id, SurveyAccess.EDIT, survey_id, lock=True
        )
        parsed = _outbound_document(workflow)
        token = _new_outbound_token(workflow)
        audit.record(
            uow.session, actor.id, "workflow.outbound_token_rotated", "workflow", workflow.id,
            survey_id=workflow.survey_id,
        )  # fmt: skip
        uow.commit()
    return _endpoint(workflow.id, parsed, base_url, token)


def outbound_fields(document: WorkflowDocument) -> list[str]:
    """The record fields the workflow reads (`event://Field/X` in templates and conditions),
    Id first: what the Outbound Message in Salesforce must send."""
    names: dict[str, None] = {"Id": None}
    for task in document.tasks:
        for _where, text in task_texts(task):
            for segment in piped_text.parse(text):
                if (
                    isinstance(segment, piped_text.Reference)
                    and segment.namespace == "event"
                    and len(segment.parts) == 2
                ):
                    names.setdefault(segment.parts[1], None)
    if document.conditions is not None:
        for condition in iter_conditions(document.conditions):
            field = parse_condition_field(condition.field)
            if field is not None and field.namespace == "event":
                names.setdefault(field.name, None)
    return list(names)


def _outbound_document(workflow: Workflow) -> WorkflowDocument:
    parsed = parse_document(workflow.document)
    if not isinstance(parsed.event, OutboundMessageEvent):
        raise InvalidInput(
            f"Workflow {workflow.id} starts on {parsed.event.type}, not on Salesforce outbound "
            "messages, so it has no endpoint URL.",
            code="not_an_outbound_workflow",
        )
    return parsed


def _sync_outbound_token(workflow: Workflow, parsed: WorkflowDocument) -> None:
    """An outbound workflow keeps its token across saves; another event has none."""
    if isinstance(parsed.event, OutboundMessageEvent):
        if workflow.outbound_token is None:
            _new_outbound_token(workflow)
    else:
        workflow.outbound_token = None
        workflow.outbound_token_hash = None


def _new_outbound_token(workflow: Workflow) -> str:
    token = secrets.token_urlsafe(32)
    workflow.outbound_token = token
    workflow.outbound_token_hash = outbound_token_hash(token)
    return token


def outbound_token_hash(token: str) -> str:
    """What `Workflow.outbound_token_hash` stores for a token: the listener looks it up."""
    return hashlib.sha256(token.encode()).hexdigest()


def _endpoint(
    workflow_id: str, parsed: WorkflowDocument, base_url: str, token: str
) -> OutboundEndpoint:
    event = parsed.event
    assert isinstance(event, OutboundMessageEvent)
    url = base_url.rstrip("/") + OUTBOUND_HOOK_PATH + token
    fields = outbound_fields(parsed)
    session_step = (
        Phrase(
            "Tick 'Send Session ID': this workflow asks Salesforce to confirm the session id of "
            "each message (verify_session_id)."
        )
        if event.verify_session_id
        else Phrase(
            "'Send Session ID' is optional (set verify_session_id: true in the workflow's "
            "event to have cxloop confirm each message with Salesforce)."
        )
    )
    ips = (
        Phrase(
            "cxloop accepts messages only from %(ips)s (allowed_ips); keep that list in line "
            "with Salesforce's published IP ranges.", ips=", ".join(event.allowed_ips),
        )
        if event.allowed_ips
        else Phrase(
            "Optionally limit where messages may come from: list Salesforce's IP ranges "
            "(CIDRs) in the event's allowed_ips."
        )
    )  # fmt: skip
    steps = [
        Phrase(
            "In Salesforce Setup, open Process Automation > Outbound Messages and create a new "
            "Outbound Message on the object %(object)s.", object=event.object,
        ),
        Phrase("Endpoint URL: %(url)s", url=url),
        Phrase("Fields to send: %(fields)s.", fields=", ".join(fields)),
        session_step,
        Phrase(
            "User to send as: a user who can see these records (an integration user), in the "
            "org of the connection %(connection)s.", connection=repr(event.connection),
        ),
        Phrase(
            "Save. Then create a record-triggered Flow on %(object)s (for example: when a "
            "record is updated and Status becomes Closed), and add an Action that calls this "
            "Outbound Message.", object=event.object,
        ),
        ips,
        Phrase(
            "Messages from another org, or for another object, are refused; a message sent "
            "twice starts the workflow once. Keep the URL secret; rotate it if it leaks "
            "(cxloop workflows outbound-url %(workflow)s --rotate).", workflow=workflow_id,
        ),
    ]  # fmt: skip
    return OutboundEndpoint(
        workflow_id=workflow_id,
        url=url,
        object=event.object,
        fields=fields,
        verify_session_id=event.verify_session_id,
        allowed_ips=list(event.allowed_ips),
        steps=steps,
    )
