"""A directory task run whose workflow is deleted before a worker takes it fails at once with
WORKFLOW_DELETED (the worker turns the missing revision into that outcome), and mails nobody."""

from __future__ import annotations

from email.message import Message
from typing import Any

from cxloop.bootstrap import Container
from cxloop.db.directory_models import Contact
from cxloop.db.models import Survey
from cxloop.db.workflow_models import Workflow
from cxloop.domain.workflow import parse_document
from cxloop.ledger import RunEvent
from cxloop.services import workflows
from tests.integration.test_directory_task import (  # noqa: F401  (fixtures)
    case,
    count,
    inbox,
    only_task_run,
    outbound,
    setup,
)
from tests.integration.test_engine import add_workflow, drain


def test_a_directory_task_of_a_deleted_workflow_fails_as_workflow_deleted(
    container: Container,
    setup: dict[str, Any],  # noqa: F811  (the fixture imported above)
    inbox: list[Message],  # noqa: F811
) -> None:
    workflow_id = add_workflow(container, setup, outbound())
    event = case()
    with container.db.uow() as uow:
        survey = uow.session.get(Survey, setup["survey_id"])
        workflow = uow.session.get(Workflow, workflow_id)
        uow.ledger.record_outbound_message(
            uow,
            survey,
            workflow.id,
            workflow.revision,
            parse_document(workflow.document),
            [RunEvent(f"outbound:00D000000000001:{event['Id']}", event)],
            event_type="salesforce_outbound_message",
        )
        uow.commit()
    workflows.delete_workflow(container.db, setup["actor"], workflow_id)
    drain(container)

    task_run = only_task_run(container)
    assert task_run.status == "failed"
    assert task_run.error["error_code"] == "WORKFLOW_DELETED"
    assert task_run.error["kind"] == "permanent"
    assert "was deleted" in task_run.status_reason
    assert inbox == [] and count(container, Contact) == 0
