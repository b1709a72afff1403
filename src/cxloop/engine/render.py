"""Render what a task run sends: the piped-text context of its run, then the record or mail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Response, Survey
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.workflow_models import WorkflowRevision
from cxloop.domain.piped_text import PipedTextContext, render, render_value
from cxloop.domain.salesforce_values import ValueProblem, to_field_value
from cxloop.domain.workflow import SalesforceTask, WorkflowDocument
from cxloop.services.runs import (
    parsed_workflow_document,
    response_metadata,
    survey_content_of,
    workflow_document,
)


class RunGone(Exception):
    """The run's workflow revision no longer exists (the workflow was deleted)."""


def run_document(session: Session, run: Run) -> WorkflowDocument:
    """The workflow document the run was started with (its revision, not today's)."""
    gone = RunGone(
        f"The workflow {run.workflow_name!r} (revision {run.workflow_revision}) was deleted."
    )
    if run.workflow_id is None:  # the workflow was deleted (and its revisions with it)
        raise gone
    # Revisions never change: a revision this process has parsed needs no query.
    parsed = parsed_workflow_document(run.workflow_id, run.workflow_revision)
    if parsed is not None:
        return parsed
    revision = session.scalar(
        select(WorkflowRevision).where(
            WorkflowRevision.workflow_id == run.workflow_id,
            WorkflowRevision.revision == run.workflow_revision,
        )
    )
    if revision is None:
        raise gone
    return workflow_document(revision.workflow_id, revision.revision, revision.document)


def run_context(session: Session, run: Run) -> PipedTextContext:
    """Everything piped text may read for this run: the response, event fields, task outputs."""
    return run_contexts(session, [run])[run.id]


def run_contexts(session: Session, runs: Sequence[Run]) -> dict[str, PipedTextContext]:
    """`run_context` of each run (by run id), read with three queries for the whole batch."""
    run_ids = list({run.id for run in runs})
    outputs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for run_id, task_id, record_id, result in session.execute(
        select(TaskRun.run_id, TaskRun.task_id, TaskRun.record_id, TaskRun.result).where(
            TaskRun.run_id.in_(run_ids), TaskRun.status == "succeeded"
        )
    ):
        outputs[run_id][task_id] = {"Id": record_id or "", **(result or {})}
    surveys = {
        survey.id: survey
        for survey in session.scalars(
            select(Survey).where(Survey.id.in_({run.survey_id for run in runs}))
        )
    }
    response_ids = {run.response_id for run in runs if run.response_id}
    responses = (
        {
            response.id: response
            for response in session.scalars(select(Response).where(Response.id.in_(response_ids)))
        }
        if response_ids
        else {}
    )
    now = utcnow()
    contexts: dict[str, PipedTextContext] = {}
    for run in runs:
        survey = surveys.get(run.survey_id)
        content = survey_content_of(survey) if survey is not None else None
        response = responses.get(run.response_id) if run.response_id else None
        if response is None:
            contexts[run.id] = PipedTextContext(
                survey_content=content,
                event_fields=run.event_data or {},
                task_outputs=outputs[run.id],
                metadata={"SurveyID": run.survey_id},
                now=now,
            )
        else:
            contexts[run.id] = PipedTextContext(
                survey_content=content,
                answers=response.values or {},
                embedded_data=response.embedded_data or {},
                metadata=response_metadata(response),
                event_fields=run.event_data or {},
                task_outputs=outputs[run.id],
                now=now,
            )
    return contexts


@dataclass
class RenderedRecord:
    """A Salesforce record as it will be sent, or the problems that stop it."""

    fields: dict[str, Any] = field(default_factory=dict)
    key_value: str | None = None
    lookups: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def render_record(
    task: SalesforceTask, context: PipedTextContext, describe: dict[str, Any]
) -> RenderedRecord:
    """The record a Salesforce task sends for this context, values converted to field types.

    Lookups are left as (object, match field, value, when missing) for the batch to resolve in
    one query per lookup.
    """
    by_name = {f["name"].lower(): f for f in describe.get("fields", [])}
    record = RenderedRecord()
    for mapping in task.mappings:
        field_describe = by_name.get(mapping.field.lower())
        if field_describe is None:
            record.problems.append(
                f"{describe.get('name', task.object)} has no field {mapping.field}"
            )
            continue
        raw = mapping.value if mapping.constant else render_value(mapping.value, context)
        try:
            record.fields[field_describe["name"]] = to_field_value(raw, field_describe)
        except ValueProblem as exc:
            record.problems.append(str(exc))
    if task.key_value:
        record.key_value = render(task.key_value, context).strip() or None
    elif task.key_field and task.action == "upsert":
        value = record.fields.get(task.key_field)
        record.key_value = None if value is None else str(value)
    if task.action in ("update", "upsert", "delete") and not record.key_value:
        record.problems.append(
            f"the key {task.key_field} is empty for this response, so there is no record to "
            f"{task.action}"
        )
    for lookup in task.lookups:
        value = render(lookup.value, context).strip()
        record.lookups[lookup.field] = (
            lookup.object,
            lookup.match_field,
            value,
            lookup.when_missing,
        )
    if task.record_type:
        record_type_id = _record_type_id(describe, task.record_type)
        if record_type_id is None:
            record.problems.append(f"{task.object} has no record type {task.record_type!r}")
        else:
            record.fields["RecordTypeId"] = record_type_id
    return record


def _record_type_id(describe: dict[str, Any], wanted: str) -> str | None:
    for info in describe.get("recordTypeInfos", []):
        if wanted in (info.get("recordTypeId"), info.get("developerName"), info.get("name")):
            return info.get("recordTypeId")
    return None
