"""The outbound-message listener: Salesforce's messages become inbox rows and runs, once each;
anything malformed or foreign is a SOAP fault and stores nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from cxloop.bootstrap import Container
from cxloop.cli.main import app as cli
from cxloop.db.base import utcnow
from cxloop.db.run_models import OutboundNotification, Run, TaskRun
from cxloop.domain.outbound_message import render_ack
from cxloop.ledger import claims
from cxloop.services import outbound, surveys, workflows
from cxloop.web.app import create_app
from sfemu.testing import EmulatorServer
from tests.conftest import Person, reference_sample
from tests.integration.conftest import org

ACME = "00D5g00000SfEmUEAV"
SOAP = "text/xml; charset=utf-8"


def workflow_document(**event: Any) -> dict[str, Any]:
    return {
        "name": "Closed case survey",
        "event": {
            "type": "salesforce_outbound_message",
            "connection": "Acme",
            "object": "Case",
            **event,
        },
        "tasks": [
            {
                "id": "alert",
                "type": "email",
                "to": "am@example.com",
                "subject": "Case ${event://Field/CaseNumber} closed",
                "body": "Status: ${event://Field/Status}",
            }
        ],
    }


@pytest.fixture
def make_workflow(linked: Container, setup: dict[str, Any]) -> Callable[..., tuple[str, str]]:
    """Create an outbound workflow; returns (workflow id, token)."""

    def make(document: dict[str, Any] | None = None, **event: Any) -> tuple[str, str]:
        view = workflows.create_workflow(
            linked.db, setup["actor"], setup["survey_id"], document or workflow_document(**event)
        )
        endpoint = workflows.outbound_endpoint(
            linked.db, setup["actor"], setup["survey_id"], view.workflow.id, base_url="http://x"
        )
        return view.workflow.id, endpoint.url.rsplit("/", 1)[1]

    return make


def message(
    notifications: list[dict[str, str]],
    *,
    org_id: str = ACME,
    sobject: str = "Case",
    session_id: str | None = None,
) -> bytes:
    session = (
        f"<SessionId>{session_id}</SessionId>" if session_id else '<SessionId xsi:nil="true"/>'
    )
    items = "".join(
        f"<Notification><Id>{n['nid']}</Id>"
        f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        + "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in n.items() if k != "nid")
        + "</sObject></Notification>"
        for n in notifications
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k5g0000000001AAA</ActionId>"
        f"{session}<EnterpriseUrl>https://evil.example/c</EnterpriseUrl>"
        f"<PartnerUrl>https://evil.example/u</PartnerUrl>{items}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def case(number: int, status: str = "Closed") -> dict[str, str]:
    return {
        "nid": f"04l5g{number:013d}",
        "Id": f"5005g{number:013d}",
        "CaseNumber": f"{number:08d}",
        "Status": status,
    }


def counts(container: Container) -> tuple[int, int, int]:
    with container.db.reader() as uow:
        return (
            uow.session.scalar(select(func.count()).select_from(OutboundNotification)),
            uow.session.scalar(select(func.count()).select_from(Run)),
            uow.session.scalar(select(func.count()).select_from(TaskRun)),
        )


def faultstring(body: bytes) -> str:
    return SafeET.fromstring(body).find(".//faultstring").text or ""


def test_the_reference_sample_is_acknowledged_once_and_a_replay_changes_nothing(
    linked: Container, web: TestClient, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    _, token = make_workflow(object="Contact")
    sample = reference_sample("salesforce", "outbound_message_notifications_contact.xml")
    sample = sample.read_bytes()
    sample = sample.replace(b"012345678901234", ACME.encode())
    reply = web.post(f"/hooks/salesforce/outbound/{token}", content=sample)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == SOAP
    assert reply.content == render_ack()
    assert counts(linked) == (2, 2, 2)
    with linked.db.reader() as uow:
        runs = list(uow.session.scalars(select(Run).order_by(Run.event_key)))
        inbox = list(uow.session.scalars(select(OutboundNotification)))
    assert {r.event_key for r in runs} == {
        "outbound:00D5g00000SfEmU:04l1I000000fztEQAQ",
        "outbound:00D5g00000SfEmU:04l1I000000fzt9QAA",
    }
    assert {r.event_type for r in runs} == {"salesforce_outbound_message"}
    assert {r.event_data["Id"] for r in runs} == {"0031I0000081tbPQAQ", "0031I0000081tb0QAA"}
    assert {(i.org_id, i.sobject) for i in inbox} == {("00D5g00000SfEmU", "Contact")}
    # Salesforce delivers at least once: the same message again is acknowledged, not rerun.
    again = web.post(f"/hooks/salesforce/outbound/{token}", content=sample)
    assert again.status_code == 200 and again.content == render_ack()
    assert counts(linked) == (2, 2, 2)


def _billion_laughs() -> bytes:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    return f'<?xml version="1.0"?><!DOCTYPE x [{entities}]><x>&l9;</x>'.encode()


def test_hostile_and_foreign_messages_are_faults_that_store_nothing(
    linked: Container, web: TestClient, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    _, token = make_workflow()
    good = message([case(1)])
    xxe = good.replace(
        b"<soapenv:Envelope",
        b'<!DOCTYPE soapenv:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]><soapenv:Envelope',
    ).replace(b"Closed</sf:Status>", b"&x;</sf:Status>")
    bad = {
        "xxe": xxe,
        "billion laughs": _billion_laughs(),
        "external dtd": b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">' + good,
        "10 MB": good.replace(b"Closed</sf:Status>", b"x" * 10_000_000 + b"</sf:Status>"),
        "not SOAP": b'{"Id": "5005g0000000000001"}',
        "garbage": bytes(range(256)) * 4,
        "wrong namespace": good.replace(b"2005/09/outbound", b"2005/09/elsewhere"),
        "101 notifications": message([case(n) for n in range(101)]),
        "no notifications": message([]),
        "wrong org": message([case(1)], org_id="00D000000000001AAA"),
        "wrong object": message([case(1)], sobject="Contact"),
    }
    words = {
        "xxe": "DTD",
        "billion laughs": "DTD",
        "external dtd": "DTD",
        "10 MB": "5 MB",
        "not SOAP": "not well-formed",
        "garbage": "not well-formed",
        "wrong namespace": "namespace",
        "101 notifications": "more than 100",
        "no notifications": "no Notification",
        "wrong org": f"00D000000000001AAA, but the cxloop workflow 'Closed case survey' "
        f"accepts messages from the org {ACME}",
        "wrong object": "expects Case records",
    }
    for name, body in bad.items():
        reply = web.post(f"/hooks/salesforce/outbound/{token}", content=body)
        assert reply.status_code == (413 if name == "10 MB" else 500), name
        assert reply.headers["content-type"] == SOAP, name
        assert words[name] in faultstring(reply.content), (name, faultstring(reply.content))
        assert "root:" not in reply.text and "Traceback" not in reply.text
    # Without a Content-Length (chunked), the body is read only up to the limit.
    chunked = web.post(f"/hooks/salesforce/outbound/{token}", content=iter([b"x" * 1_000_000] * 7))
    assert chunked.status_code == 413 and "5 MB" in faultstring(chunked.content)
    # Beyond the server's general body limit too, it is a SOAP fault, not the API's 413.
    huge = web.post(f"/hooks/salesforce/outbound/{token}", content=b"x" * 12_000_000)
    assert huge.status_code == 413 and huge.headers["content-type"] == SOAP
    assert "5 MB" in faultstring(huge.content)
    assert counts(linked) == (0, 0, 0)
    # The one good message after all that still goes through.
    assert web.post(f"/hooks/salesforce/outbound/{token}", content=good).status_code == 200
    assert counts(linked) == (1, 1, 1)


def test_unknown_rotated_and_disabled_endpoints_refuse_and_viewers_cannot_see_the_url(
    linked: Container,
    web: TestClient,
    setup: dict[str, Any],
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
    make_workflow: Callable[..., tuple[str, str]],
) -> None:
    workflow_id, token = make_workflow()
    base = f"/api/v1/surveys/{setup['survey_id']}/workflows/{workflow_id}/outbound"
    unknown = web.post("/hooks/salesforce/outbound/" + "x" * 43, content=message([case(1)]))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == SOAP
    assert "not known to cxloop" in faultstring(unknown.content)

    shown = web.get(base, headers=owner.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["url"] == f"http://127.0.0.1:8000/hooks/salesforce/outbound/{token}"
    assert shown.json()["fields"] == ["Id", "CaseNumber", "Status"]
    assert any("record-triggered Flow" in step for step in shown.json()["steps"])
    viewer = make_person_in(linked, "viewer@example.com")
    surveys.add_collaborator(
        linked.db, setup["actor"], setup["survey_id"], "viewer@example.com", "viewer"
    )
    assert web.get(base, headers=viewer.headers).status_code == 403
    assert web.post(base + "/rotate", headers=viewer.headers).status_code == 403
    workflow = web.get(
        f"/api/v1/surveys/{setup['survey_id']}/workflows/{workflow_id}", headers=owner.headers
    )
    assert token not in workflow.text  # the URL is only at .../outbound, for editors

    rotated = web.post(base + "/rotate", headers=owner.headers)
    assert rotated.status_code == 200
    new_token = rotated.json()["url"].rsplit("/", 1)[1]
    assert new_token != token
    old = web.post(f"/hooks/salesforce/outbound/{token}", content=message([case(1)]))
    assert old.status_code == 404
    assert (
        web.post(f"/hooks/salesforce/outbound/{new_token}", content=message([case(1)])).status_code
        == 200
    )

    # An update keeps the URL; a disabled workflow refuses (Salesforce retries meanwhile).
    document = workflow_document(verify_session_id=False, allowed_ips=[])
    workflows.update_workflow(linked.db, setup["actor"], workflow_id, document)
    workflows.set_enabled(linked.db, setup["actor"], workflow_id, False)
    disabled = web.post(f"/hooks/salesforce/outbound/{new_token}", content=message([case(2)]))
    assert disabled.status_code == 500 and "disabled" in faultstring(disabled.content)
    # Changing the event to responses takes the URL away.
    document["event"] = {"type": "survey_response"}
    document["tasks"][0]["subject"] = document["tasks"][0]["body"] = "A response"
    workflows.update_workflow(linked.db, setup["actor"], workflow_id, document)
    assert web.get(base, headers=owner.headers).status_code == 422
    assert counts(linked)[0] == 1


def test_source_addresses_outside_allowed_ips_are_refused(
    linked: Container, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    _, token = make_workflow(allowed_ips=["13.108.0.0/14", "2001:db8::/32"])
    body = message([case(1)])
    for address in ("192.0.2.1", None, "not-an-ip", "2001:db9::1"):
        refused = outbound.receive(linked.db, token, body, address)
        assert refused.status == 500 and refused.reason == "ip_not_allowed", address
    assert counts(linked) == (0, 0, 0)
    assert outbound.receive(linked.db, token, body, "::ffff:13.110.1.2").status == 200
    assert outbound.receive(linked.db, token, message([case(2)]), "2001:db8::5").status == 200
    assert counts(linked) == (2, 2, 2)


def test_session_ids_are_confirmed_with_the_connections_org(
    linked: Container, emulator: EmulatorServer, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    _, token = make_workflow(verify_session_id=True)
    hosts = list(linked.settings.salesforce_extra_hosts)
    real = emulator.token("integration@example.com")["access_token"]
    bogus = "00D5g00000SfEmU!AQ" + "x" * 90
    other_org = emulator.control.post(
        "/tokens", json={"username": org(emulator, "acme-sandbox")["users"][0]["username"]}
    ).json()["access_token"]
    for session_id, reason in ((None, "session_missing"), (bogus, "session_rejected")):
        refused = outbound.receive(
            linked.db, token, message([case(1)], session_id=session_id), None, extra_hosts=hosts
        )
        assert refused.reason == reason and refused.status == 500
    sandbox = outbound.receive(
        linked.db, token, message([case(1)], session_id=other_org), None, extra_hosts=hosts
    )
    assert sandbox.reason == "session_rejected"
    assert "belongs to the org" in faultstring(sandbox.body)
    assert counts(linked) == (0, 0, 0)
    accepted = outbound.receive(
        linked.db, token, message([case(1)], session_id=real), None, extra_hosts=hosts
    )
    assert accepted.status == 200, faultstring(accepted.body)
    assert counts(linked) == (1, 1, 1)


def test_conditions_on_event_fields_choose_which_records_start_a_run(
    linked: Container, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    document = workflow_document()
    document["conditions"] = {
        "join": "and",
        "conditions": [
            {"field": "event://Field/Status", "operator": "equals", "value": "Closed"},
            {"field": "e://Field/CaseId", "operator": "is_empty"},
        ],
    }
    _, token = make_workflow(document)
    body = message([case(1), case(2, "New"), case(3), case(1)])
    result = outbound.receive(linked.db, token, body, None)
    assert result.status == 200
    assert (result.accepted, result.duplicates, result.runs) == (3, 1, 2)
    assert counts(linked) == (3, 2, 2)


# --- the emulator delivering by itself


@pytest.fixture
def server_url(linked: Container) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(linked), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _wait(check: Callable[[], Any], what: str, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_emulator_closing_a_case_delivers_retries_and_redelivers_once(
    linked: Container,
    emulator: EmulatorServer,
    setup: dict[str, Any],
    server_url: str,
    make_workflow: Callable[..., tuple[str, str]],
) -> None:
    workflow_id, token = make_workflow(verify_session_id=True)
    workflows.set_enabled(linked.db, setup["actor"], workflow_id, False)  # the first try fails
    control = emulator.control
    control.patch(
        "/outbound/rules/Case_Closed_Survey",
        json={"active": True, "endpoint_url": f"{server_url}/hooks/salesforce/outbound/{token}"},
    ).raise_for_status()
    cases = control.get("/records", params={"org": "acme", "sobject": "Case"}).json()
    case_id = cases["records"][0]["Id"] if isinstance(cases, dict) else cases[0]["Id"]
    control.patch(f"/records/acme/{case_id}", json={"Status": "Closed"}).raise_for_status()

    def queue() -> list[dict[str, Any]]:
        return control.get("/outbound", params={"org": "acme"}).json()["notifications"]

    _wait(lambda: [n for n in queue() if n["attempts"] >= 1], "a first, refused delivery")
    assert counts(linked) == (0, 0, 0)
    workflows.set_enabled(linked.db, setup["actor"], workflow_id, True)
    # Salesforce retries until it is acknowledged.
    [notification] = _wait(
        lambda: [n for n in queue() if n["deliveries"] == 1 and n["status"] == "delivered"],
        "the retry",
    )
    assert notification["attempts"] >= 2
    # Forced redelivery, then the duplicate fault delivers that acknowledged message once more.
    control.post("/faults", json={"target": "outbound", "mode": "duplicate", "count": 1})
    control.post(f"/outbound/{notification['id']}/redeliver").raise_for_status()
    _wait(
        lambda: [n for n in queue() if n["deliveries"] >= 3 and n["status"] == "delivered"],
        "the forced redelivery and the duplicate",
    )
    assert counts(linked) == (1, 1, 1)
    with linked.db.reader() as uow:
        run = uow.session.scalars(select(Run)).one()
    assert run.event_data["Id"] == case_id and run.event_data["Status"] == "Closed"
    assert run.event_data["CaseNumber"]


def test_cli_prints_the_url_and_steps_and_rotates(
    linked: Container,
    setup: dict[str, Any],
    owner: Person,
    make_workflow: Callable[..., tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id, token = make_workflow()
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(linked.settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", linked.settings.effective_database_url)
    monkeypatch.setenv("CXLOOP_BASE_URL", "https://cx.example.com")
    runner = CliRunner()
    args = ["workflows", "outbound-url", workflow_id, "--user", owner.email]
    shown = runner.invoke(cli, [*args, "--survey", setup["survey_id"]])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"https://cx.example.com/hooks/salesforce/outbound/{token}\n")
    assert "Fields to send: Id, CaseNumber, Status." in shown.stdout
    rotated = runner.invoke(cli, [*args, "--rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert token not in rotated.stdout
    assert outbound.receive(linked.db, token, message([case(1)]), None).status == 404


def test_old_inbox_rows_go_with_old_runs_and_metrics_count_outcomes(
    linked: Container, make_workflow: Callable[..., tuple[str, str]]
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        sample("cxloop_outbound_notifications_total", outcome="duplicate"),
        sample("cxloop_outbound_messages_rejected_total", reason="wrong_org"),
        sample("cxloop_outbound_ack_seconds_count"),
    )
    _, token = make_workflow()
    outbound.receive(linked.db, token, message([case(1), case(2)]), None)
    outbound.receive(linked.db, token, message([case(1)]), None)
    outbound.receive(linked.db, token, message([case(1)], org_id="00D000000000001"), None)
    after = (
        sample("cxloop_outbound_notifications_total", outcome="duplicate"),
        sample("cxloop_outbound_messages_rejected_total", reason="wrong_org"),
        sample("cxloop_outbound_ack_seconds_count"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 3]
    with linked.db.uow() as uow:
        uow.session.execute(
            update(OutboundNotification)
            .where(OutboundNotification.notification_id == case(1)["nid"])
            .values(received_at=utcnow() - timedelta(days=400))
        )
        uow.commit()
    claims.delete_old_runs(linked.db, 365)
    with linked.db.reader() as uow:
        left = list(uow.session.scalars(select(OutboundNotification.notification_id)))
    assert left == [case(2)["nid"]]
