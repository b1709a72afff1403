"""The directory task: a closed Case (or a response) upserts a contact and mails them a personal
link, once, never to someone who opted out, within the frequency rule."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from email.message import Message
from email.utils import getaddresses
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from cxloop import security
from cxloop.bootstrap import Container
from cxloop.db.directory_models import Contact, Invitation, MailingList, MailingListMember
from cxloop.db.models import Survey
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.workflow_models import Workflow
from cxloop.domain.workflow import parse_document
from cxloop.engine.dry_run import dry_run
from cxloop.ledger import RunEvent
from cxloop.services import directory, responses, survey_content, surveys, users
from cxloop.services.access import Actor
from tests.integration.conftest import smtp_catcher
from tests.integration.survey_helpers import hidden_fields
from tests.integration.test_engine import add_workflow, drain, task_runs

CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}, {"name": "Email"}],
    "questions": [{"qid": "QID1", "type": "nps", "text": "How likely...?", "required": True}],
}

OUTBOUND: dict[str, Any] = {
    "name": "Closed case survey",
    "event": {"type": "salesforce_outbound_message", "connection": "Acme", "object": "Case"},
    "tasks": [
        {
            "id": "invite",
            "type": "directory",
            "contact": {
                "email": "${event://Field/SuppliedEmail}",
                "first_name": "${event://Field/SuppliedName}",
                "external_ref": "${event://Field/ContactId}",
            },
            "embedded_data": {"LastCase": "${event://Field/Id}"},
            "mailing_list": "Closed cases",
            "distribute": {
                "subject": "How did we do on ${event://Field/Subject}, ${m://FirstName}?",
                "body": "Hello ${m://FirstName},\nTell us: ${l://SurveyLink}\n"
                "No more mails: ${l://OptOutLink}",
                "from_name": "Acme Support",
                "from_address": "support@acme.example",
                "reply_to": "help@acme.example",
                "embedded_data": {"CaseId": "${event://Field/Id}"},
            },
        }
    ],
}


@pytest.fixture
def setup(container: Container) -> Iterator[dict[str, Any]]:
    container.settings.batch_linger_s = 0
    container.settings.retry_base_s = 0.05
    container.settings.retry_cap_s = 0.2
    user = users.create_user(container.db, "owner@example.com", "a long enough passphrase")
    issued = users.create_token(container.db, "owner@example.com", "test")
    actor = Actor(id=user.id, email=user.email, is_admin=False)
    survey = surveys.create_survey(container.db, actor, "Case NPS")
    survey_content.put_content(container.db, actor, survey.id, CONTENT)
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    yield {
        "actor": actor,
        "survey_id": survey.id,
        "headers": {"Authorization": f"Bearer {issued.token}"},
    }


@pytest.fixture
def inbox(container: Container) -> Iterator[list[Message]]:
    with smtp_catcher(container) as caught:
        yield caught


def outbound(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(OUTBOUND)
    document["tasks"][0].update(changes)
    return document


def case(number: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "Id": f"500000000000{number:03d}AAA",
        "SuppliedEmail": "Jeraldine@Example.com",
        "SuppliedName": "Jeraldine",
        "ContactId": "003000000000001AAA",
        "Subject": "Broken login",
        **fields,
    }


def deliver(
    container: Container, setup: dict[str, Any], workflow_id: str, event: dict[str, Any]
) -> str:
    """What the outbound listener writes for one notification: a run and its task runs."""
    with container.db.uow() as uow:
        survey = uow.session.get(Survey, setup["survey_id"])
        workflow = uow.session.get(Workflow, workflow_id)
        document = parse_document(workflow.document)
        uow.ledger.record_outbound_message(
            uow,
            survey,
            workflow.id,
            workflow.revision,
            document,
            [RunEvent(f"outbound:00D000000000001:{event['Id']}", event)],
            event_type="salesforce_outbound_message",
        )
        uow.commit()
    drain(container)
    return event["Id"]


def only_task_run(container: Container) -> TaskRun:
    (task_run,) = task_runs(container)
    return task_run


def part(mail: Message, content_type: str) -> str:
    payload = next(p for p in mail.walk() if p.get_content_type() == content_type)
    return payload.get_payload(decode=True).decode().replace("\r\n", "\n")


def text_part(mail: Message) -> str:
    return part(mail, "text/plain")


def html_part(mail: Message) -> str:
    return part(mail, "text/html")


def count(container: Container, model: Any) -> int:
    with container.db.reader() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def test_a_closed_case_becomes_a_contact_and_one_mail_whose_link_carries_the_case(
    container: Container,
    client: TestClient,
    setup: dict[str, Any],
    inbox: list[Message],
) -> None:
    workflow_id = add_workflow(container, setup, outbound())
    case_id = deliver(container, setup, workflow_id, case())

    task_run = only_task_run(container)
    assert task_run.status == "succeeded", task_run.status_reason
    with container.db.reader() as uow:
        contact = uow.session.scalar(select(Contact))
        assert (contact.email, contact.first_name, contact.external_ref) == (
            "jeraldine@example.com",
            "Jeraldine",
            "003000000000001AAA",
        )
        assert contact.embedded_data == {"LastCase": case_id}
        (listed,) = uow.session.scalars(select(MailingListMember))
        assert listed.contact_id == contact.id
        assert uow.session.get(MailingList, listed.mailing_list_id).name == "Closed cases"
        invitation = uow.session.scalar(select(Invitation))
        assert invitation.status == "sent" and invitation.sent_at is not None
    assert task_run.record_id == contact.id
    assert task_run.result["DistributionID"] == invitation.distribution_id
    assert task_run.result["InvitationID"] == invitation.id

    (mail,) = inbox
    assert mail["To"] == "Jeraldine <jeraldine@example.com>"
    assert mail["From"] == "Acme Support <support@acme.example>"
    assert mail["Reply-To"] == "help@acme.example"
    assert mail["Subject"] == "How did we do on Broken login, Jeraldine?"
    assert mail.is_multipart()
    body = text_part(mail)
    assert body.startswith("Hello Jeraldine,\nTell us: http://127.0.0.1:8000/s/")
    survey_link = re.search(r"Tell us: (\S+)", body).group(1)
    assert f'<a href="{survey_link}">' in html_part(mail) and "<br>" in html_part(mail)

    # the opt-out link: in the body and as the List-Unsubscribe header, signed for this contact
    opt_out = mail["List-Unsubscribe"].strip("<>")
    assert f"No more mails: {opt_out}" in body
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = urlsplit(opt_out).path.rsplit("/", 1)[1]
    secret = container.settings.secret_key.get_secret_value()
    assert security.contact_id_of_opt_out_token(secret, token) == contact.id

    # the personal link opens the survey; the answer carries the case and the contact back
    link = urlsplit(survey_link)
    page = client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200, page.text
    data = {**hidden_fields(page.text), "QID1": "9", "_action": "next"}
    done = client.post(link.path, data=data)
    assert done.status_code == 200 and "Thank you" in done.text
    (response,) = responses.list_responses(container.db, setup["actor"], setup["survey_id"]).items
    assert response.embedded_data["CaseId"] == case_id
    assert (response.contact_id, response.distribution_id) == (
        contact.id,
        invitation.distribution_id,
    )

    # the API shows the distribution and its invitation
    listed = client.get(
        f"/api/v1/surveys/{setup['survey_id']}/distributions", headers=setup["headers"]
    )
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["invitation_counts"] == {"sent": 1} and item["task_run_id"] == task_run.id
    shown = client.get(
        f"/api/v1/surveys/{setup['survey_id']}/distributions/{item['id']}",
        headers=setup["headers"],
    )
    assert shown.status_code == 200, shown.text
    (invited,) = shown.json()["invitations"]
    assert (invited["email"], invited["status"]) == ("jeraldine@example.com", "sent")
    assert "link_token" not in invited and invited["sent_at"]
    # one click on the opt-out link (as a mail client does with List-Unsubscribe-Post), and the
    # next closed case of this contact mails nothing
    unsubscribed = client.post(urlsplit(opt_out).path, content=b"List-Unsubscribe=One-Click")
    assert unsubscribed.status_code == 200, unsubscribed.text
    deliver(container, setup, workflow_id, case(2))
    later = max(task_runs(container), key=lambda t: t.created_at)
    assert later.status == "skipped" and "opted out" in later.status_reason
    assert len(inbox) == 1

    users.create_user(container.db, "stranger@example.com", "a long enough passphrase")
    stranger = users.create_token(container.db, "stranger@example.com", "test").token
    for path in ("", f"/{item['id']}"):
        hidden = client.get(
            f"/api/v1/surveys/{setup['survey_id']}/distributions{path}",
            headers={"Authorization": f"Bearer {stranger}"},
        )
        assert hidden.status_code == 404, hidden.text


def test_a_response_workflow_invites_and_a_later_task_reads_the_contact_id(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    document = {
        "name": "Invite the respondent's colleague",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {
                "id": "invite",
                "type": "directory",
                "contact": {"email": "${e://Field/Email}"},
                "distribute": {
                    "subject": "Your turn",
                    "body": "<p>Case ${e://Field/CaseId}: ${l://SurveyLink?d=Answer}</p>",
                    "embedded_data": {"CaseId": "${e://Field/CaseId}"},
                },
            },
            {
                "id": "note",
                "type": "email",
                "to": "am@example.com",
                "subject": "Invited",
                "body": "Contact ${task://invite/Id} (${task://invite/Email})",
            },
        ],
    }
    add_workflow(container, setup, document)
    responses.submit_response(
        container.db, setup["actor"], setup["survey_id"],
        {"values": {"QID1": 3}, "embedded_data": {"Email": "ann@example.com", "CaseId": "<b>7"}},
    )  # fmt: skip
    drain(container)
    invitation, note = sorted(inbox, key=lambda m: m["Subject"] != "Your turn")
    assert (
        invitation["To"] == "ann@example.com" and invitation["From"] == container.settings.mail_from
    )
    html = html_part(invitation)
    assert "<p>Case &lt;b&gt;7: <a href=" in html and ">Answer</a></p>" in html
    with container.db.reader() as uow:
        contact = uow.session.scalar(select(Contact))
    assert f"Contact {contact.id} (ann@example.com)" in text_part(note)


def test_a_retried_task_run_mails_once_after_an_smtp_failure(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    from cxloop.engine import worker
    from cxloop.ledger import claims

    workflow_id = add_workflow(container, setup, outbound())
    real_port = container.settings.smtp_port
    container.settings.smtp_port = 9  # nothing listens here
    with container.db.uow() as uow:
        uow.ledger.record_outbound_message(
            uow,
            uow.session.get(Survey, setup["survey_id"]),
            workflow_id,
            uow.session.get(Workflow, workflow_id).revision,
            parse_document(OUTBOUND),
            [RunEvent("outbound:x:1", case())],
            event_type="salesforce_outbound_message",
        )
        uow.commit()
    worker.process(container, claims.overdue_keys(container.db, grace_s=0)[0])
    task_run = only_task_run(container)
    assert task_run.status == "waiting_retry" and "could not be reached" in task_run.status_reason
    with container.db.reader() as uow:
        assert uow.session.scalar(select(Invitation.status)) == "pending"
    container.settings.smtp_port = real_port
    drain(container)
    assert len(inbox) == 1 and only_task_run(container).status == "succeeded"

    # the same task run once more (a redelivery, a replay): nothing more is mailed
    with container.db.uow() as uow:
        uow.session.execute(update(TaskRun).values(status="pending", finished_at=None))
        uow.session.execute(update(Run).values(status="pending"))
        uow.commit()
    drain(container)
    with container.db.reader() as uow:
        again = uow.session.scalar(select(TaskRun))
        assert again.status == "succeeded" and again.attempt_log[-1].reply == {"already_sent": True}
    assert len(inbox) == 1 and count(container, Invitation) == 1


def test_an_opted_out_contact_is_skipped_and_never_mailed(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    with container.db.uow() as uow:
        owned = directory.directory_of_owner(uow.session, setup["actor"].id, "Default")
        contact, _ = directory.upsert_contact(
            uow.session, owned, directory.ContactFields(email="jeraldine@example.com")
        )
        directory.set_opted_out(uow.session, contact)
        uow.commit()
    workflow_id = add_workflow(container, setup, outbound())
    deliver(container, setup, workflow_id, case())
    task_run = only_task_run(container)
    assert task_run.status == "skipped"
    assert "jeraldine@example.com opted out on " in task_run.status_reason
    assert "never mails contacts who opted out" in task_run.status_reason
    with container.db.reader() as uow:
        assert uow.session.scalar(select(Run.status)) == "skipped"
    assert inbox == [] and count(container, Invitation) == 0


def test_the_frequency_rule_skips_a_second_invitation_and_says_why(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    workflow_id = add_workflow(
        container, setup, outbound(frequency={"max_invitations": 1, "days": 30})
    )
    deliver(container, setup, workflow_id, case(1))
    deliver(container, setup, workflow_id, case(2))
    first, second = sorted(task_runs(container), key=lambda t: t.created_at)
    assert first.status == "succeeded" and second.status == "skipped"
    assert second.status_reason.startswith(
        "jeraldine@example.com was invited 1 time in the last 30 days; the rule allows 1."
    )
    assert "(Rule set on the task.)" in second.status_reason
    assert len(inbox) == 1


def test_the_directorys_own_rule_counts_invitations_of_every_workflow(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    with container.db.uow() as uow:
        owned = directory.directory_of_owner(uow.session, setup["actor"].id, "Default")
        owned.frequency_limit, owned.frequency_days = 1, 7
        uow.commit()
    first = add_workflow(container, setup, outbound())
    second = add_workflow(container, setup, outbound() | {"name": "Another workflow"})
    deliver(container, setup, first, case(1))
    deliver(container, setup, second, case(2))
    statuses = [(t.status, t.status_reason) for t in task_runs(container)]
    assert sorted(s for s, _ in statuses) == ["skipped", "succeeded"]
    reason = next(r for s, r in statuses if s == "skipped")
    assert "invited 1 time in the last 7 days" in reason
    assert reason.endswith("(Rule set on the directory 'Default'.)")
    assert len(inbox) == 1


def test_a_task_without_distribute_only_upserts_the_contact(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    workflow_id = add_workflow(container, setup, outbound(distribute=None, mailing_list=None))
    deliver(container, setup, workflow_id, case())
    task_run = only_task_run(container)
    assert task_run.status == "succeeded" and task_run.result["DistributionID"] == ""
    assert count(container, Contact) == 1 and count(container, Invitation) == 0
    assert inbox == []


def test_newlines_in_names_and_subjects_inject_no_headers(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    workflow_id = add_workflow(container, setup, outbound())
    injected = "x\r\nBcc: victim@example.com"
    deliver(container, setup, workflow_id, case(SuppliedName=f"Ann{injected}", Subject=injected))
    (mail,) = inbox
    assert mail["Bcc"] is None
    # the name stays a (quoted) display name: the only recipient is the contact
    assert getaddresses([mail["To"]]) == [("Annx Bcc: victim@example.com", "jeraldine@example.com")]
    subject = "How did we do on x Bcc: victim@example.com, Annx Bcc: victim@example.com?"
    assert mail["Subject"] == subject
    assert "\n" not in mail["Subject"]


def test_a_bad_email_from_the_event_fails_with_a_clear_reason(
    container: Container, setup: dict[str, Any], inbox: list[Message]
) -> None:
    workflow_id = add_workflow(container, setup, outbound())
    deliver(container, setup, workflow_id, case(SuppliedEmail="jeraldine at example"))
    task_run = only_task_run(container)
    assert task_run.status == "failed"
    assert task_run.status_reason.startswith(
        "Task 'invite': 'jeraldine at example' is not an email address"
    )
    assert task_run.error["error_code"] == "INVALID_EMAIL"
    assert inbox == [] and count(container, Contact) == 0


def test_the_dry_run_shows_the_contact_and_the_invitation_and_stores_nothing(
    container: Container, setup: dict[str, Any]
) -> None:
    document = copy.deepcopy(OUTBOUND)
    document["event"] = {"type": "survey_response"}
    document["tasks"][0].update(
        contact={"email": "${e://Field/Email}"}, embedded_data={}, mailing_list=None
    )
    document["tasks"][0]["distribute"].update(
        subject="Case ${e://Field/CaseId}", embedded_data={"CaseId": "${e://Field/CaseId}"}
    )
    workflow_id = add_workflow(container, setup, document)
    with container.db.uow() as uow:  # keep the response, but no run of the workflow
        uow.session.execute(update(Workflow).values(enabled=False))
        uow.commit()
    response = responses.submit_response(
        container.db, setup["actor"], setup["survey_id"],
        {"values": {"QID1": 3}, "embedded_data": {"Email": "Ann@Example.com", "CaseId": "500A"}},
    )  # fmt: skip
    (task,) = dry_run(container, setup["actor"], workflow_id, response.id)["tasks"]
    assert task["contact"]["email"] == "ann@example.com" and task["problems"] == []
    invitation = task["invitation"]
    assert (invitation["to"], invitation["subject"]) == ("ann@example.com", "Case 500A")
    assert "/s/" in invitation["body"] and "t=PERSONAL-LINK" in invitation["body"]
    assert invitation["link_embedded_data"] == {"CaseId": "500A"}
    assert count(container, Contact) == 0 and count(container, Invitation) == 0


def test_an_outbound_workflow_is_tried_on_a_records_fields_over_the_api(
    container: Container, setup: dict[str, Any], client: TestClient
) -> None:
    document = outbound()
    document["conditions"] = {
        "join": "and",
        "conditions": [{"field": "event://Field/Subject", "operator": "is_not_empty"}],
    }
    workflow_id = add_workflow(container, setup, document)
    url = f"/api/v1/surveys/{setup['survey_id']}/workflows/{workflow_id}/test"
    reply = client.post(url, json={"event_fields": case(7)}, headers=setup["headers"])
    assert reply.status_code == 200, reply.text
    preview = reply.json()
    assert preview["would_run"] is True and preview["event_fields"]["Id"] == case(7)["Id"]
    (task,) = preview["tasks"]
    assert task["contact"]["email"] == "jeraldine@example.com"
    assert task["invitation"]["subject"] == "How did we do on Broken login, Jeraldine?"
    assert task["invitation"]["link_embedded_data"] == {"CaseId": case(7)["Id"]}
    quiet = client.post(
        url, json={"event_fields": case(8, Subject=None)}, headers=setup["headers"]
    ).json()
    assert quiet["would_run"] is False
    assert quiet["why_not"] == ["the conditions do not hold for this record"]
    for bad in ({}, {"response_id": "R_x", "event_fields": case(1)}, {"event_fields": {}},
                {"event_fields": {"Id": {"nested": 1}}}, {"event_fields": ["Id"]}):  # fmt: skip
        refused = client.post(url, json=bad, headers=setup["headers"])
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["message"]
    assert count(container, Contact) == 0 and count(container, Run) == 0
