"""Execute a directory task run: upsert the contact, then invite them by email with a personal
link.

One transaction settles the contact, the mailing list, opt-out and the frequency rule, the
distribution and the invitation (services.distributions.prepare_invitation). Then the mail goes
out through SMTP and the invitation is marked sent. A retried task run finds its invitation
again: one already sent is not sent again. Transient SMTP trouble is retried through the ledger
as for email tasks. (A worker that dies after the mail server took the mail but before the
invitation was marked sent leaves it pending; the retry then sends it once more.)
"""

from __future__ import annotations

import dataclasses
import re
from email.utils import formataddr
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from cxloop.db.models import Survey
from cxloop.db.run_models import TaskRun
from cxloop.domain.piped_text import PipedTextContext, render
from cxloop.domain.workflow import DirectoryTask
from cxloop.engine.render import task_and_context
from cxloop.errors import InvalidInput, NotFound
from cxloop.ledger import claims
from cxloop.ledger.claims import Outcome
from cxloop.mail.sender import MailError, build_message, one_line, send
from cxloop.services import distributions
from cxloop.services.directory import ContactFields, opt_out_url
from cxloop.services.distributions import PreparedInvitation
from cxloop.services.personal_links import link_url

if TYPE_CHECKING:
    from email.message import EmailMessage

    from cxloop.engine.parts import EngineParts
    from cxloop.settings import Settings

_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_ERROR_CODES = MappingProxyType(
    {
        "invalid_email": "INVALID_EMAIL",
        "email_taken": "EMAIL_TAKEN",
        "invalid_embedded_data": "INVALID_EMBEDDED_DATA",
    }
)


def execute(container: EngineParts, task_run: TaskRun) -> Outcome:
    """Upsert the contact and send its invitation (unless skipped or sent before).
    Raises RunGone once the workflow is deleted."""
    settings = container.settings
    task, context = task_and_context(container.db, task_run)
    assert isinstance(task, DirectoryTask)
    fields = contact_fields(task, context)
    link_data = link_embedded_data(task, context)
    try:
        with container.db.uow() as uow:
            survey = uow.session.get(Survey, task_run.run.survey_id)
            if survey is None:
                return Outcome.permanent_failure(
                    task_run.id, "SURVEY_DELETED", "The survey was deleted."
                )
            survey_id = survey.id
            prepared = distributions.prepare_invitation(
                uow.session, survey, task, task_run.id, fields, link_data
            )
            uow.commit()
    except InvalidInput as exc:
        code = _ERROR_CODES.get(exc.code, "INVALID_CONTACT")
        return Outcome.permanent_failure(
            task_run.id, code, f"Task '{task.id}': {exc}", payload=_payload(fields)
        )
    except NotFound as exc:  # a directory named by an id that does not exist
        return Outcome.permanent_failure(
            task_run.id, "DIRECTORY_NOT_FOUND", f"Task '{task.id}': {exc}"
        )
    except IntegrityError:
        # Another task run added the same contact at this very moment: try again shortly,
        # when this one finds it.
        return _retry_soon(container, task_run, "the contact was being added by another run")
    payload = _payload(fields) | {"contact_id": prepared.contact_id}
    if prepared.skipped_reason is not None:
        return Outcome(
            task_run.id,
            "skipped",
            reason=prepared.skipped_reason,
            payload=payload,
            result=prepared.output,
        )
    if task.distribute is None or prepared.already_sent:
        return _succeeded(task_run, prepared, payload)
    assert prepared.invitation_id is not None and prepared.link_token is not None
    message = invitation_message(settings, task, context, prepared, survey_id)
    payload |= {"to": message["To"], "subject": message["Subject"]}
    try:
        send(settings, message)
    except MailError as exc:
        return _mail_failed(container, task_run, prepared, exc, payload)
    with container.db.uow() as uow:
        distributions.mark_sent(uow.session, prepared.invitation_id, message["Message-ID"])
        uow.commit()
    prepared.message_id = message["Message-ID"]
    return _succeeded(task_run, prepared, payload)


def contact_fields(task: DirectoryTask, context: PipedTextContext) -> ContactFields:
    """The contact the task upserts, its piped text rendered for this run."""
    mapping = task.contact
    return ContactFields(
        email=render(mapping.email, context).strip(),
        first_name=render(mapping.first_name, context),
        last_name=render(mapping.last_name, context),
        phone=render(mapping.phone, context),
        language=render(mapping.language, context),
        external_ref=render(mapping.external_ref, context),
        embedded_data={name: render(v, context) for name, v in task.embedded_data.items()},
    )


def link_embedded_data(task: DirectoryTask, context: PipedTextContext) -> dict[str, str]:
    """The personal link's embedded data (what the response carries back)."""
    if task.distribute is None:
        return {}
    return {name: render(v, context) for name, v in task.distribute.embedded_data.items()}


def invitation_context(
    context: PipedTextContext, recipient: dict[str, Any], survey_link: str, opt_out_link: str
) -> PipedTextContext:
    """The run's context plus the recipient (`${m://...}`) and the links (`${l://...}`)."""
    links = {"SurveyLink": survey_link, "OptOutLink": opt_out_link}
    return dataclasses.replace(context, recipient=recipient, links=links)


def render_invitation(task: DirectoryTask, context: PipedTextContext) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of the invitation; HTML values are escaped.

    A body written as HTML is kept as HTML; plain text gets its line breaks as `<br>`.
    """
    assert task.distribute is not None
    subject = one_line(render(task.distribute.subject, context))
    template = task.distribute.body
    text = render(template, context)
    html = render(template, context, html=True)
    if not _HTML_TAG.search(template):
        html = html.replace("\r\n", "\n").replace("\n", "<br>\n")
    return subject, text, f"<!doctype html>\n<html><body>\n{html}\n</body></html>\n"


def invitation_message(
    settings: Settings,
    task: DirectoryTask,
    context: PipedTextContext,
    prepared: PreparedInvitation,
    survey_id: str,
) -> EmailMessage:
    """The invitation as it goes out: personal link, opt-out link and List-Unsubscribe."""
    assert task.distribute is not None and prepared.link_token is not None
    secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
    opt_out = opt_out_url(settings.base_url, secret, prepared.contact_id)
    survey_link = link_url(survey_id, prepared.link_token, settings.base_url)
    subject, text, html = render_invitation(
        task, invitation_context(context, prepared.recipient, survey_link, opt_out)
    )
    distribute = task.distribute
    message = build_message(
        settings,
        to=[_address(prepared)],
        subject=subject,
        body=text,
        html=html,
        from_name=distribute.from_name or None,
        from_address=distribute.from_address or None,
        reply_to=distribute.reply_to or None,
    )
    # A URL cannot be folded: without this a long one would go out as encoded words, which
    # mail clients do not read as a link (998 is the line limit of RFC 5322).
    message.policy = message.policy.clone(max_line_length=998)
    message["List-Unsubscribe"] = f"<{one_line(opt_out)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def _address(prepared: PreparedInvitation) -> str:
    name = one_line(f"{prepared.first_name} {prepared.last_name}")
    return formataddr((name, prepared.email)) if name else prepared.email


def _mail_failed(
    container: EngineParts,
    task_run: TaskRun,
    prepared: PreparedInvitation,
    exc: MailError,
    payload: dict[str, Any],
) -> Outcome:
    settings = container.settings
    error = {"kind": "permanent" if exc.permanent else "transient", "message": str(exc)}
    at = None
    if not exc.permanent:
        at = claims.next_retry_at(settings, task_run)
        if at is not None:
            return Outcome(
                task_run.id,
                "waiting_retry",
                reason=str(exc),
                error=error,
                payload=payload,
                retry_at=at,
            )
    reason = str(exc) if exc.permanent else f"Gave up: {exc}"
    reason = f"The invitation to {prepared.email} was not sent: {reason}"
    assert prepared.invitation_id is not None
    with container.db.uow() as uow:
        distributions.mark_failed(uow.session, prepared.invitation_id, reason)
        uow.commit()
    return Outcome(task_run.id, "failed", reason=reason, error=error, payload=payload)


def _retry_soon(container: EngineParts, task_run: TaskRun, reason: str) -> Outcome:
    settings = container.settings
    at = claims.next_retry_at(settings, task_run)
    error = {"kind": "transient", "message": reason}
    if at is None:
        return Outcome(task_run.id, "failed", reason=f"Gave up: {reason}", error=error)
    return Outcome(task_run.id, "waiting_retry", reason=reason, error=error, retry_at=at)


def _succeeded(task_run: TaskRun, prepared: PreparedInvitation, payload: dict[str, Any]) -> Outcome:
    result = prepared.output
    if prepared.message_id:
        result["MessageID"] = prepared.message_id
    return Outcome(
        task_run.id,
        "succeeded",
        record_id=prepared.contact_id,
        result=result,
        payload=payload,
        reply={"already_sent": True} if prepared.already_sent else None,
    )


def _payload(fields: ContactFields) -> dict[str, Any]:
    return {"contact": {"email": fields.email, "external_ref": fields.external_ref}}
