"""The dry run: what a workflow would do with a response, shown exactly, nothing sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cxloop.db.models import Response
from cxloop.db.workflow_models import Workflow
from cxloop.domain.conditions import evaluate
from cxloop.domain.piped_text import PipedTextContext, render
from cxloop.domain.workflow import DirectoryTask, EmailTask, SalesforceTask, SurveyResponseEvent
from cxloop.engine.directory_task import (
    contact_fields,
    invitation_context,
    link_embedded_data,
    render_invitation,
)
from cxloop.engine.render import render_record
from cxloop.errors import InvalidInput, NotFound
from cxloop.ledger import (
    ResponseFacts,
    event_field_resolver,
    response_metadata,
    response_start_decision,
)
from cxloop.salesforce.errors import SalesforceError
from cxloop.services.access import Actor, SurveyAccess, access_to, get_survey_for
from cxloop.services.connection_grants import pickable_connections
from cxloop.services.directory import clean_contact_fields
from cxloop.services.distributions import recipient_fields
from cxloop.services.personal_links import link_url
from cxloop.services.salesforce_clients import ConnectionUnusable, client_for
from cxloop.services.workflows import paused_task_reasons, resolve_connection

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts


MAX_EVENT_FIELDS = 200


def dry_run(
    container: EngineParts,
    actor: Actor,
    workflow_id: str,
    response_id: str | None = None,
    *,
    event_fields: dict[str, Any] | None = None,
    response_event: str = "created",
) -> dict[str, Any]:
    """Evaluate the event and conditions, and render every task's record or mail.

    A `survey_response` workflow is tried on a stored response (`response_id`) as the
    `response_event` (`created` or `updated`) would find it, by the matcher's own rule
    (`response_start_decision`); an outbound message workflow on a record's fields as
    Salesforce would send them (`event_fields`, e.g. {"Id": "500...", "SuppliedEmail": "..."}).
    """
    if (response_id is None) == (event_fields is None):
        raise InvalidInput(
            "Give either a response (for a survey_response workflow) or the record's fields of "
            "an outbound message (for a salesforce_outbound_message workflow).",
            code="dry_run_input",
        )
    if event_fields is not None:
        event_fields = _checked_event_fields(event_fields)
    with container.db.reader() as uow:
        workflow = uow.session.get(Workflow, workflow_id)
        if workflow is None:
            raise NotFound(f"No workflow {workflow_id!r}.", subject="workflow")
        # Editors and up: the dry run reads Salesforce with the owner's connection.
        survey = get_survey_for(uow.session, workflow.survey_id, actor, SurveyAccess.EDIT)
        response = None
        if response_id is not None:
            response = uow.session.get(Response, response_id)
            if response is None or response.survey_id != survey.id:
                raise NotFound(
                    f"No response {response_id!r} in this workflow's survey.", subject="response"
                )
        document = uow.ledger.workflow_document(workflow.id, workflow.revision, workflow.document)
        content = uow.ledger.contents.of(survey)
        # Only a connection the actor may pick (an editor: one the owner allowed for this
        # survey) is used, and none for a task paused until the owner picks one.
        pickable = {
            c.id for c in pickable_connections(uow.session, survey, access_to(survey, actor))
        }
        paused = paused_task_reasons(uow.session, workflow.id)
        connections: dict[str, Any] = {}
        blocked: dict[str, str] = {}
        for t in document.tasks:
            if not isinstance(t, SalesforceTask):
                continue
            found = resolve_connection(uow.session, survey, t.connection)
            if t.id in paused:
                blocked[t.id] = f"the task is paused: {paused[t.id]}"
            elif found is not None and found.id not in pickable:
                blocked[t.id] = (
                    f"connection {t.connection!r} has not been allowed for this survey by its "
                    f"owner ({survey.owner.email}), so it is not used for your dry run"
                )
            connections[t.id] = found
        owner_email = survey.owner.email
    placeholders = {t.id: {"Id": f"<Id from task {t.id}>"} for t in document.tasks}
    if response is not None:
        decision = response_start_decision(
            document, content, ResponseFacts.of(response), response_event, explain=True
        )
        matched, notes = decision.starts, list(decision.why_not)
        context = PipedTextContext(
            survey_content=content,
            answers=response.values or {},
            embedded_data=response.embedded_data or {},
            metadata=response_metadata(response),
            task_outputs=placeholders,
        )
    else:
        assert event_fields is not None
        notes = []
        if isinstance(document.event, SurveyResponseEvent):
            notes.append("the workflow starts on responses, not on Salesforce outbound messages")
        context = PipedTextContext(
            survey_content=content,
            event_fields=event_fields,
            metadata={"SurveyID": survey.id},
            task_outputs=placeholders,
        )
        if document.conditions is not None and not evaluate(
            document.conditions, event_field_resolver(survey.id, event_fields)
        ):
            notes.append("the conditions do not hold for this record")
        matched = not notes
    tasks = []
    for task in document.tasks:
        if isinstance(task, EmailTask):
            tasks.append(
                {
                    "id": task.id,
                    "type": "email",
                    "to": render(task.to, context),
                    "cc": render(task.cc, context),
                    "subject": render(task.subject, context),
                    "body": render(task.body, context),
                }
            )
        elif isinstance(task, DirectoryTask):
            tasks.append(directory_preview(container, task, context, survey.id))
        elif task.id in blocked:
            tasks.append(_blocked_preview(task, blocked[task.id]))
        else:
            tasks.append(
                _salesforce_preview(container, task, context, connections[task.id], owner_email)
            )
    preview: dict[str, Any] = {"workflow_id": workflow_id}
    if response is not None:
        preview["response_id"] = response_id
        preview["channel"] = response.channel  # what an m://Channel condition tests
    else:
        preview["event_fields"] = event_fields
    return preview | {"would_run": matched, "why_not": notes, "tasks": tasks}


def _checked_event_fields(fields: Any) -> dict[str, Any]:
    """A record's fields as an outbound message carries them: names to text (or null)."""
    if not isinstance(fields, dict) or not fields:
        raise InvalidInput(
            'The record\'s fields must be a non-empty object, e.g. {"Id": "500..."}.',
            code="dry_run_input",
        )
    if len(fields) > MAX_EVENT_FIELDS:
        raise InvalidInput(
            f"A record has at most {MAX_EVENT_FIELDS} fields here.", code="dry_run_input"
        )
    for name, value in fields.items():
        if not isinstance(name, str) or not name or len(name) > 80:
            raise InvalidInput(
                "Field names must be Salesforce API names (1 to 80 characters).",
                code="dry_run_input",
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(
                f"The field {name!r} must hold text, a number or a boolean.", code="dry_run_input"
            )
    return {name: None if value is None else str(value) for name, value in fields.items()}


def _salesforce_task_summary(task: SalesforceTask) -> dict[str, Any]:
    """What every preview of a Salesforce task starts with: the task and what it writes."""
    return {
        "id": task.id,
        "type": "salesforce",
        "object": task.object,
        "action": task.action,
        "key_field": task.key_field,
    }


def _blocked_preview(task: SalesforceTask, problem: str) -> dict[str, Any]:
    return {**_salesforce_task_summary(task), "problems": [problem]}


def _salesforce_preview(
    container: EngineParts,
    task: SalesforceTask,
    context: PipedTextContext,
    connection: Any,
    owner_email: str,
) -> dict[str, Any]:
    if connection is None:
        return _blocked_preview(
            task, f"{task.connection!r} is not one of {owner_email}'s connections"
        )
    try:
        with client_for(
            container.db, container.settings, connection.id, container.describe_cache
        ) as client:
            describe = client.describe(task.object)
    except (ConnectionUnusable, SalesforceError) as exc:
        return _blocked_preview(task, f"cannot read {task.object}'s fields from Salesforce: {exc}")
    record = render_record(task, context, describe)
    return {
        **_salesforce_task_summary(task),
        "record": {"attributes": {"type": task.object}, **record.fields},
        "key_value": record.key_value,
        "lookups": [
            {"field": f, "query": f"SELECT Id FROM {o} WHERE {m} = '{v}'", "when_missing": w}
            for f, (o, m, v, w) in record.lookups.items()
        ],
        "problems": record.problems,
    }


def directory_preview(
    container: EngineParts, task: DirectoryTask, context: PipedTextContext, survey_id: str
) -> dict[str, Any]:
    """The contact the task would upsert and the invitation it would send, with placeholder
    links; nothing is stored or sent (opt-out and the frequency rule are decided when it runs)."""
    fields = contact_fields(task, context)
    preview: dict[str, Any] = {
        "id": task.id,
        "type": "directory",
        "directory": task.directory,
        "match_on": task.match_on,
        "mailing_list": task.mailing_list,
        "problems": [],
    }
    try:
        contact = clean_contact_fields(fields)
    except InvalidInput as exc:
        preview["contact"] = {"email": fields.email}
        preview["problems"].append(str(exc))
        return preview
    preview["contact"] = contact
    if task.distribute is None:
        return preview
    base_url = container.settings.base_url
    survey_link = link_url(survey_id, "PERSONAL-LINK", base_url)
    opt_out = f"{base_url.rstrip('/')}/optout/OPT-OUT-LINK"
    recipient = recipient_fields(
        contact["email"],
        contact["first_name"],
        contact["last_name"],
        contact["external_ref"] or "",
        contact["language"],
    )
    subject, body, _html = render_invitation(
        task, invitation_context(context, recipient, survey_link, opt_out)
    )
    preview["invitation"] = {
        "to": contact["email"],
        "from": task.distribute.from_address or container.settings.mail_from,
        "reply_to": task.distribute.reply_to,
        "subject": subject,
        "body": body,
        "link_embedded_data": link_embedded_data(task, context),
        "link_expiry_days": task.distribute.link_expiry_days,
    }
    return preview
