"""Execute an email task run: render to, subject and body, send through SMTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxloop.db.run_models import TaskRun
from cxloop.domain.piped_text import render
from cxloop.domain.workflow import EmailTask
from cxloop.engine.render import task_and_context
from cxloop.ledger import claims
from cxloop.ledger.claims import Outcome
from cxloop.mail.sender import MailError, build_message, parse_addresses, send

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts


def execute(container: EngineParts, task_run: TaskRun) -> Outcome:
    """Send the mail; transient SMTP trouble is retried through the ledger.
    Raises RunGone once the workflow is deleted."""
    settings = container.settings
    task, context = task_and_context(container.db, task_run)
    assert isinstance(task, EmailTask)
    to = parse_addresses(render(task.to, context))
    cc = parse_addresses(render(task.cc, context)) if task.cc else []
    payload = {"to": to, "cc": cc, "subject": render(task.subject, context)}
    if not to:
        return Outcome.permanent_failure(
            task_run.id, "NO_RECIPIENT", f"'{task.to}' gives no email address here"
        )
    message = build_message(
        settings, to=to, cc=cc, subject=payload["subject"], body=render(task.body, context)
    )
    try:
        send(settings, message)
    except MailError as exc:
        error = {"kind": "permanent" if exc.permanent else "transient", "message": str(exc)}
        if exc.permanent:
            return Outcome(task_run.id, "failed", reason=str(exc), error=error, payload=payload)
        at = claims.next_retry_at(settings, task_run)
        if at is None:
            return Outcome(task_run.id, "failed", reason=f"Gave up: {exc}", error=error)
        return Outcome(
            task_run.id, "waiting_retry", reason=str(exc), error=error, payload=payload, retry_at=at
        )
    return Outcome(
        task_run.id,
        "succeeded",
        result={"message_id": message["Message-ID"]},
        payload=payload,
        reply={"accepted": True},
    )
