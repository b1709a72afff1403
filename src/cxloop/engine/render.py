"""Render what a task run sends: the piped-text context of its run, then the record or mail.

Workers render a whole batch at once: the runs' contexts come from one query (runs joined with
their responses and surveys; task outputs only when the task pipes them), and each Salesforce
task's mapping is planned once per workflow revision and describe (`record_plan`, kept in the
container's engine state), so that a record costs its piped values and field conversions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cxloop.caching import TtlCache
from cxloop.db.base import in_chunks, utcnow
from cxloop.db.models import Response, Survey
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.uow import Database
from cxloop.db.workflow_models import WorkflowRevision
from cxloop.domain.piped_text import PipedTextContext, PipedTextRenderer
from cxloop.domain.salesforce_values import ValueProblem, to_field_value
from cxloop.domain.workflow import AnyTask, SalesforceTask, WorkflowDocument
from cxloop.ledger import ledger_of, response_metadata


class RunGone(Exception):
    """The run's workflow revision no longer exists (the workflow was deleted)."""


def run_document(session: Session, run: Run) -> WorkflowDocument:
    """The workflow document the run was started with (its revision, not today's)."""
    return revision_document(session, run.workflow_id, run.workflow_name, run.workflow_revision)


def revision_document(
    session: Session, workflow_id: str | None, workflow_name: str, revision: int
) -> WorkflowDocument:
    """The document of a workflow revision; raises RunGone once the workflow is deleted."""
    gone = RunGone(f"The workflow {workflow_name!r} (revision {revision}) was deleted.")
    if workflow_id is None:  # the workflow was deleted (and its revisions with it)
        raise gone
    # Revisions never change: a revision the ledger has parsed needs no query.
    documents = ledger_of(session).documents
    parsed = documents.parsed(workflow_id, revision)
    if parsed is not None:
        return parsed
    document = session.scalar(
        _REVISION_DOCUMENT, {"workflow_id": workflow_id, "revision": revision}
    )
    if document is None:
        raise gone
    return documents.parse(workflow_id, revision, document)


_REVISION_DOCUMENT = select(WorkflowRevision.document).where(
    WorkflowRevision.workflow_id == bindparam("workflow_id"),
    WorkflowRevision.revision == bindparam("revision"),
)


class BatchRun(NamedTuple):
    """A run as a batch needs it: which workflow revision, and its piped-text context."""

    id: str
    survey_id: str
    workflow_id: str | None
    workflow_name: str
    workflow_revision: int
    context: PipedTextContext


def batch_runs(
    session: Session, run_ids: Iterable[str], *, task_outputs: bool = True
) -> dict[str, BatchRun]:
    """The runs of a batch with their contexts (by run id), read with one query, plus one for
    earlier tasks' outputs when `task_outputs` (only tasks that pipe `${task://...}` need
    them)."""
    ids = list(set(run_ids))
    if not ids:
        return {}
    outputs = task_outputs_of(session, ids) if task_outputs else {}
    now = utcnow()
    contents = ledger_of(session).contents
    found: dict[str, BatchRun] = {}
    rows = (row for chunk in in_chunks(ids) for row in session.execute(_RUNS, {"run_ids": chunk}))
    for row in rows:
        content = (
            contents.by_version(session, row.run_survey_id, row.content_version)
            if row.content_version is not None
            else None
        )
        found[row.run_id] = BatchRun(
            row.run_id,
            row.run_survey_id,
            row.workflow_id,
            row.workflow_name,
            row.workflow_revision,
            _context(row, content, outputs.get(row.run_id, {}), now),
        )
    return found


def _context(
    row: Any, content: Any, outputs: dict[str, dict[str, Any]], now: datetime
) -> PipedTextContext:
    if row.id is None:  # no response: an outbound message's run
        return PipedTextContext(
            survey_content=content,
            event_fields=row.event_data or {},
            task_outputs=outputs,
            metadata={"SurveyID": row.run_survey_id},
            now=now,
        )
    return PipedTextContext(
        survey_content=content,
        answers=row.answers or {},
        embedded_data=row.embedded or {},
        metadata=response_metadata(row),  # the row has the Response's column names
        event_fields=row.event_data or {},
        task_outputs=outputs,
        now=now,
    )


_RUNS = (
    select(
        Run.id.label("run_id"),
        Run.survey_id.label("run_survey_id"),
        Run.workflow_id,
        Run.workflow_name,
        Run.workflow_revision,
        Run.event_data,
        Survey.content_version,
        Response.id,
        Response.survey_id,
        Response.values.label("answers"),
        Response.embedded_data.label("embedded"),
        Response.started_at,
        Response.ended_at,
        Response.finished,
        Response.duration_s,
        Response.source,
        Response.channel,
        Response.language,
        Response.distribution_id,
        Response.contact_id,
    )
    .select_from(Run)
    .outerjoin(Survey, Survey.id == Run.survey_id)
    .outerjoin(Response, Response.id == Run.response_id)
    .where(Run.id.in_(bindparam("run_ids", expanding=True)))
)
_OUTPUTS = select(TaskRun.run_id, TaskRun.task_id, TaskRun.record_id, TaskRun.result).where(
    TaskRun.run_id.in_(bindparam("run_ids", expanding=True)), TaskRun.status == "succeeded"
)


def task_outputs_of(
    session: Session, run_ids: Iterable[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """What `${task://TASK/...}` reads, by run id and task id: each succeeded task's record Id
    and result."""
    outputs: dict[str, dict[str, dict[str, Any]]] = {}
    for chunk in in_chunks(list(run_ids)):
        for run_id, task_id, record_id, result in session.execute(_OUTPUTS, {"run_ids": chunk}):
            outputs.setdefault(run_id, {})[task_id] = {"Id": record_id or "", **(result or {})}
    return outputs


def task_and_context(db: Database, task_run: TaskRun) -> tuple[AnyTask, PipedTextContext]:
    """A task run's task (in its run's revision) and its run's context, read in one short
    transaction; RunGone once the workflow is deleted."""
    with db.reader() as uow:
        document = run_document(uow.session, task_run.run)
        context = run_context(uow.session, task_run.run)
    return document.task(task_run.task_id), context


def run_context(session: Session, run: Run) -> PipedTextContext:
    """Everything piped text may read for this run: the response, event fields, task outputs."""
    return run_contexts(session, [run])[run.id]


def run_contexts(session: Session, runs: Sequence[Run]) -> dict[str, PipedTextContext]:
    """`run_context` of each run (by run id), read with two queries for the whole batch."""
    return {
        run_id: batch_run.context
        for run_id, batch_run in batch_runs(session, [run.id for run in runs]).items()
    }


@dataclass
class RenderedRecord:
    """A Salesforce record as it will be sent, or the problems that stop it."""

    fields: dict[str, Any] = field(default_factory=dict)
    key_value: str | None = None
    lookups: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _MappingStep(NamedTuple):
    problem: str | None  # the object has no such field: reported, nothing rendered
    name: str  # the field's name as the describe spells it
    describe: dict[str, Any] | None
    constant: bool
    value: Any


@dataclass(frozen=True)
class RecordPlan:
    """A Salesforce task's mapping matched against its object's describe, once: per record
    only the piped values are rendered and converted."""

    task: SalesforceTask
    describe: dict[str, Any]
    steps: tuple[_MappingStep, ...]
    record_type_id: str | None
    record_type_problem: str | None

    def render(self, context: PipedTextContext) -> RenderedRecord:
        """The record for this context (see `render_record`)."""
        task = self.task
        renderer = PipedTextRenderer(context)
        record = RenderedRecord()
        fields, problems = record.fields, record.problems
        for step in self.steps:
            if step.problem is not None:
                problems.append(step.problem)
                continue
            raw = step.value if step.constant else renderer.value(step.value)
            try:
                fields[step.name] = to_field_value(raw, step.describe)
            except ValueProblem as exc:
                problems.append(str(exc))
        if task.key_value:
            record.key_value = renderer.text(task.key_value).strip() or None
        elif task.key_field and task.action == "upsert":
            value = fields.get(task.key_field)
            record.key_value = None if value is None else str(value)
        if task.action in ("update", "upsert", "delete") and not record.key_value:
            problems.append(
                f"the key {task.key_field} is empty for this response, so there is no record "
                f"to {task.action}"
            )
        for lookup in task.lookups:
            value = renderer.text(lookup.value).strip()
            record.lookups[lookup.field] = (
                lookup.object,
                lookup.match_field,
                value,
                lookup.when_missing,
            )
        if self.record_type_problem is not None:
            problems.append(self.record_type_problem)
        elif self.record_type_id is not None:
            fields["RecordTypeId"] = self.record_type_id
        return record


RecordPlans = TtlCache[tuple[Any, ...], RecordPlan]


def record_plan(
    plans: RecordPlans, key: tuple[Any, ...], task: SalesforceTask, describe: dict[str, Any]
) -> RecordPlan:
    """The plan of a task for a describe, made once per `key` (the workflow revision and task)
    while the describe stays the same object (a describe fetched anew makes a new plan)."""
    plan = plans.get(key)
    if plan is not None and plan.task is task and plan.describe is describe:
        return plan
    plan = make_record_plan(task, describe)
    plans.set(key, plan)
    return plan


def make_record_plan(task: SalesforceTask, describe: dict[str, Any]) -> RecordPlan:
    """How a task's mappings become a record of the described sObject."""
    by_name = {f["name"].lower(): f for f in describe.get("fields", [])}
    steps = []
    for mapping in task.mappings:
        field_describe = by_name.get(mapping.field.lower())
        if field_describe is None:
            problem = f"{describe.get('name', task.object)} has no field {mapping.field}"
            steps.append(_MappingStep(problem, mapping.field, None, True, None))
        else:
            steps.append(
                _MappingStep(
                    None, field_describe["name"], field_describe, mapping.constant, mapping.value
                )
            )
    record_type_id = problem = None
    if task.record_type:
        record_type_id = _record_type_id(describe, task.record_type)
        if record_type_id is None:
            problem = f"{task.object} has no record type {task.record_type!r}"
    return RecordPlan(task, describe, tuple(steps), record_type_id, problem)


def render_record(
    task: SalesforceTask, context: PipedTextContext, describe: dict[str, Any]
) -> RenderedRecord:
    """The record a Salesforce task sends for this context, values converted to field types.

    Lookups are left as (object, match field, value, when missing) for the batch to resolve in
    one query per lookup.
    """
    return make_record_plan(task, describe).render(context)


def _record_type_id(describe: dict[str, Any], wanted: str) -> str | None:
    for info in describe.get("recordTypeInfos", []):
        if wanted in (info.get("recordTypeId"), info.get("developerName"), info.get("name")):
            return info.get("recordTypeId")
    return None
