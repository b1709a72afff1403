"""The ledger: what happened (events) and what must be done about it (runs and task runs).

One `Ledger` is built by the container and reached through the unit of work (`uow.ledger`)
or the container. It matches events to workflows, writes runs and task runs in the caller's
transaction, settles task-run transitions, and sends ready batch keys to the queue once the
transaction has committed. It owns the caches this needs (parsed workflow revisions, survey
contents, run plans, recently sent keys, outbound targets); no module does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from cxloop.caching import TtlCache
from cxloop.db.models import Survey
from cxloop.db.uow import core_connection
from cxloop.db.workflow_models import Workflow, WorkflowRevision
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import SurveyResponseEvent, WorkflowDocument
from cxloop.ledger import transitions
from cxloop.ledger.dispatch import Dispatcher, Send
from cxloop.ledger.documents import SurveyContents, WorkflowDocuments
from cxloop.ledger.matching import (
    ResponseFacts,
    response_event_key,
    response_start_decision,
    survey_id_of,
)
from cxloop.ledger.writing import RunEvent, WorkflowPlan, write_runs

if TYPE_CHECKING:
    from cxloop.db.uow import UnitOfWork

PLAN_ENTRIES = 1024  # run plans kept (workflow revision x survey owner)
OUTBOUND_TARGET_ENTRIES = 1000
OUTBOUND_SESSION_ENTRIES = 10_000


class Ledger:
    """Matching, writing, transitions and dispatch of runs, with the caches they need."""

    def __init__(self, send: Send | None = None) -> None:
        self.documents = WorkflowDocuments()
        self.contents = SurveyContents()
        self.dispatch = Dispatcher(send)
        self._plans: TtlCache[tuple[str, int, str], WorkflowPlan] = TtlCache(PLAN_ENTRIES)
        # The outbound message listener's: a token's workflow a moment ago, and session ids
        # Salesforce confirmed (each with the time to live the listener gives it).
        self.outbound_targets: TtlCache[str, Any] = TtlCache(OUTBOUND_TARGET_ENTRIES)
        self.confirmed_sessions: TtlCache[tuple[str, str], bool] = TtlCache(
            OUTBOUND_SESSION_ENTRIES
        )

    def connect_queue(self, send: Send) -> None:
        """Send ready batch keys with `send` from now on (the container does this once)."""
        self.dispatch.connect(send)

    def dispatch_after_commit(self, uow: UnitOfWork, batch_keys: Sequence[str]) -> None:
        """Send these batch keys once `uow` has committed (never if it rolls back)."""
        if batch_keys:
            keys = list(batch_keys)
            uow.after_commit(lambda: self.dispatch(keys))

    # --- matching responses

    def record_response_events(self, uow: UnitOfWork, responses: Sequence[Any], event: str) -> None:
        """Write a run for every enabled workflow of the responses' surveys that this event
        (`created` or `updated`) starts, in `uow`'s transaction; the ready batch keys go to
        the queue after the commit. `responses` are rows as written (mappings of columns) or
        `Response`s; the matcher only reads their facts.

        This runs inside the response's write transaction (on SQLite: holding the only write
        lock), once per batch, so it stays cheap: one light query for the surveys' enabled
        workflows, parsed documents and task-run rows cached per workflow revision, and Core
        INSERTs for runs and task runs. A survey without workflows costs that one query.
        """
        if not responses:
            return
        session = uow.session
        by_survey: dict[str, list[Any]] = {}
        for response in responses:
            by_survey.setdefault(survey_id_of(response), []).append(response)
        ready_keys: list[str] = []
        for survey in _surveys_with_workflows(session, list(by_survey)):
            if not survey.workflows:
                continue
            facts = [ResponseFacts.of(response) for response in by_survey[survey.id]]
            content: list[SurveyContent | None] = []  # read on first need: conditions only
            for workflow_id, revision in survey.workflows:
                plan = self._plan(session, workflow_id, revision, survey.owner_id)
                if plan is None:
                    continue  # deleted meanwhile
                document = plan.document
                if document.conditions is not None and not content:
                    content.append(
                        self.contents.by_version(session, survey.id, survey.content_version)
                    )
                events = [
                    RunEvent(response_event_key(response, event), None, response.id)
                    for response in facts
                    if response_start_decision(
                        document, content[0] if content else None, response, event
                    ).starts
                ]
                ready_keys += write_runs(session, survey.id, plan, events, "survey_response")
        self.dispatch_after_commit(uow, ready_keys)

    def wants_responses(self, session: Session, survey_ids: Sequence[str], source: str) -> bool:
        """Whether new responses of these surveys from `source` could start a workflow: any
        enabled response workflow will do, except that imported responses only start workflows
        that include them (one light query; an import asks once per batch)."""
        for survey in _surveys_with_workflows(session, list(survey_ids)):
            for workflow_id, revision in survey.workflows:
                plan = self._plan(session, workflow_id, revision, survey.owner_id)
                if plan is None:
                    continue
                event = plan.document.event
                if source != "import" or (
                    isinstance(event, SurveyResponseEvent) and event.include_imported
                ):
                    return True
        return False

    # --- other events

    def record_outbound_message(
        self,
        uow: UnitOfWork,
        survey: Any,
        workflow_id: str,
        revision: int,
        document: WorkflowDocument,
        events: Iterable[RunEvent],
        *,
        event_type: str,
    ) -> int:
        """Write a run for each outbound message notification that starts the workflow (its
        conditions were checked by the caller, before the write transaction); the ready batch
        keys go to the queue after the commit. Returns how many runs were written."""
        events = list(events)
        plan = WorkflowPlan.of(workflow_id, revision, document, survey.owner_id)
        self.dispatch_after_commit(
            uow, write_runs(uow.session, survey.id, plan, events, event_type)
        )
        return len(events)

    # --- transitions

    def release_blocked(self, session: Session, run_ids: Iterable[str]) -> list[str]:
        """Settle the blocked task runs of these runs and the runs' statuses; returns the batch
        keys that became ready (`transitions.release_blocked`)."""
        return transitions.release_blocked(session, self.documents, run_ids)

    def requeue(self, session: Session, run_ids: list[str]) -> list[str]:
        """Replay the failed, skipped and paused task runs of these runs; returns the batch
        keys ready to go (to dispatch after the commit)."""
        return transitions.requeue(session, self.documents, run_ids)

    # --- documents

    def workflow_document(self, workflow_id: str, revision: int, document: Any) -> WorkflowDocument:
        """The parsed document of a workflow revision, parsed once."""
        return self.documents.parse(workflow_id, revision, document)

    def _plan(
        self, session: Session, workflow_id: str, revision: int, owner_id: str
    ) -> WorkflowPlan | None:
        """The plan of a workflow revision; its document is read (and parsed) only the first
        time this ledger meets the revision. None if the revision is gone (saved again
        meanwhile)."""
        key = (workflow_id, revision, owner_id)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        document = self.documents.parsed(workflow_id, revision)
        if document is None:
            params = {"workflow_id": workflow_id, "revision": revision}
            # The workflow row at that revision, or its revision row (a revision never changes).
            data = session.scalar(WORKFLOW_DOCUMENT, params)
            if data is None:
                data = session.scalar(REVISION_DOCUMENT, params)
            if data is None:
                return None
            document = self.documents.parse(workflow_id, revision, data)
        plan = WorkflowPlan.of(workflow_id, revision, document, owner_id)
        self._plans.set(key, plan)
        return plan


def ledger_of(session: Session) -> Ledger:
    """The ledger of the database this session belongs to (`Database` puts it in every
    session's `info`), for code that has a session or an object loaded in one."""
    ledger = session.info.get("ledger")
    if ledger is None:
        raise RuntimeError("this session has no ledger: open it through a Database")
    return ledger


@dataclass(frozen=True)
class _SurveyWorkflows:
    id: str
    owner_id: str
    content_version: int
    workflows: tuple[tuple[str, int], ...]  # (workflow id, revision) of the enabled ones


def _surveys_with_workflows(session: Session, survey_ids: list[str]) -> list[_SurveyWorkflows]:
    """The surveys with their enabled response workflows, in one query."""
    connection = core_connection(session)
    if len(survey_ids) == 1:
        rows = connection.execute(_SURVEY_WORKFLOWS_ONE, {"survey_id": survey_ids[0]})
    else:
        rows = connection.execute(_SURVEY_WORKFLOWS_MANY, {"survey_ids": survey_ids})
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
WORKFLOW_DOCUMENT = select(Workflow.document).where(
    Workflow.id == bindparam("workflow_id"), Workflow.revision == bindparam("revision")
)
REVISION_DOCUMENT = select(WorkflowRevision.document).where(
    WorkflowRevision.workflow_id == bindparam("workflow_id"),
    WorkflowRevision.revision == bindparam("revision"),
)
