"""Admin UI forms over HTTP, on both databases: bad input refused beside its input with nothing
stored; linking started from a page comes back to that page."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.models import Connection
from cxloop.services import connections, surveys
from cxloop.services.access import Actor
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import CALLBACK, link, org, sign_in
from tests.integration.test_pages import login

PASSWORD = "a long enough passphrase"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def _actor(person: Person) -> Actor:
    return Actor(id=person.id, email=person.email, is_admin=False)


def test_creating_a_survey_without_a_name_stores_nothing(
    client: TestClient, container: Container, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    csrf = _csrf(client.get("/surveys").text)
    for name in ("", "   ", "x" * 201):
        reply = client.post("/surveys", data={"csrf": csrf, "name": name})
        assert reply.status_code == 422
        assert 'id="error-name"' in reply.text and 'aria-invalid="true"' in reply.text
    assert surveys.list_surveys(container.db, _actor(alice)).items == []


def test_importing_a_bad_file_stores_nothing_and_says_why_beside_the_file(
    client: TestClient, container: Container, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    csrf = _csrf(client.get("/surveys").text)
    for filename, body in (
        ("notes.txt", b"hello"),
        ("empty.json", b""),
        ("broken.json", b"{nope"),
        ("broken.qsf", b"<not qsf>"),
        ("wrong.yaml", b"questions: 3"),
    ):
        reply = client.post(
            "/surveys/import", data={"csrf": csrf}, files={"file": (filename, body)}
        )
        assert reply.status_code == 422, (filename, reply.text)
        assert 'id="error-file"' in reply.text, filename
    reply = client.post("/surveys/import", data={"csrf": csrf})
    assert reply.status_code == 422 and 'id="error-file"' in reply.text
    assert surveys.list_surveys(container.db, _actor(alice)).items == []


def test_forms_without_the_session_token_change_nothing(
    client: TestClient, container: Container, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    reply = client.post("/surveys", data={"csrf": "forged", "name": "Sneaky"})
    assert reply.status_code == 403 and "expired" in reply.text
    reply = client.post("/surveys", data={"name": "Sneaky"}, headers={"X-CSRF-Token": "forged"})
    assert reply.status_code == 403
    assert surveys.list_surveys(container.db, _actor(alice)).items == []


def test_htmx_requests_carry_the_token_in_a_header(
    client: TestClient, container: Container, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    csrf = _csrf(client.get("/surveys").text)
    reply = client.post(
        "/surveys",
        data={"name": "Via htmx"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        follow_redirects=False,
    )
    assert reply.status_code == 204 and reply.headers["HX-Redirect"].startswith("/surveys/SV_")


def test_linking_started_on_a_page_comes_back_to_it_with_the_new_account(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    sign_in(web, owner.email)
    csrf = _csrf(web.get("/accounts/new").text)
    back_to = "/surveys/SV_x/workflows/WF_y?task=2"
    started = web.post(
        "/accounts/new",
        data={
            "csrf": csrf,
            "connection_type": "custom",
            "login_url": org(emulator, "acme")["login_url"],
            "account_name": "Acme",
            "return_to": back_to,
        },
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    to_salesforce = web.get(urlsplit(started.headers["location"]).path, follow_redirects=False)
    assert to_salesforce.status_code == 303
    at_salesforce = httpx.get(to_salesforce.headers["location"], follow_redirects=False)
    callback = at_salesforce.headers["location"]
    assert callback.startswith(CALLBACK)
    finished = web.get(
        f"/oauth/salesforce/callback?{urlsplit(callback).query}", follow_redirects=False
    )
    assert finished.status_code == 303
    target = urlsplit(finished.headers["location"])
    (account,) = connections.list_connections(linked.db, _actor(owner))
    assert target.path == "/surveys/SV_x/workflows/WF_y"
    assert parse_qs(target.query) == {"task": ["2"], "connected": [account.id]}


def test_linking_never_returns_off_site(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    sign_in(web, owner.email)
    csrf = _csrf(web.get("/accounts/new").text)
    started = web.post(
        "/accounts/new",
        data={
            "csrf": csrf,
            "connection_type": "custom",
            "login_url": org(emulator, "acme")["login_url"],
            "account_name": "Acme",
            "return_to": "//evil.example/steal",
        },
        follow_redirects=False,
    )
    to_salesforce = web.get(urlsplit(started.headers["location"]).path, follow_redirects=False)
    at_salesforce = httpx.get(to_salesforce.headers["location"], follow_redirects=False)
    query = urlsplit(at_salesforce.headers["location"]).query
    finished = web.get(f"/oauth/salesforce/callback?{query}", follow_redirects=False)
    assert finished.headers["location"].startswith("/accounts?connected=")


def test_a_failed_linking_comes_back_with_the_reason(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    sign_in(web, owner.email)
    csrf = _csrf(web.get("/accounts/new").text)
    started = web.post(
        "/accounts/new",
        data={
            "csrf": csrf,
            "connection_type": "custom",
            "login_url": org(emulator, "acme")["login_url"],
            "account_name": "Acme",
        },
        follow_redirects=False,
    )
    to_salesforce = web.get(urlsplit(started.headers["location"]).path, follow_redirects=False)
    state = parse_qs(urlsplit(to_salesforce.headers["location"]).query)["state"][0]
    finished = web.get(
        f"/oauth/salesforce/callback?state={state}&error=access_denied", follow_redirects=False
    )
    assert finished.status_code == 303 and finished.headers["location"] == "/accounts"
    page = web.get("/accounts")
    assert "Access was not granted" in page.text
    assert connections.list_connections(linked.db, _actor(owner)) == []


def test_check_setup_of_an_account_that_needs_a_login_offers_to_reconnect(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    account = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    page = web.get(f"/accounts/{account['id']}/check")
    assert page.status_code == 200 and "Reconnect Acme" not in page.text
    with linked.db.uow() as uow:
        row = uow.session.get(Connection, account["id"])
        row.status, row.status_reason = "needs_reauth", "The refresh token was refused."
        uow.commit()
    page = web.get(f"/accounts/{account['id']}/check")
    assert "The refresh token was refused." in page.text
    assert f'action="/accounts/{account["id"]}/refresh"' in page.text
    assert "Reconnect Acme" in page.text


def test_check_setup_says_the_doctors_findings_in_german_on_a_german_page(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    account = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    english = web.get(f"/accounts/{account['id']}/check").text
    assert "The refresh token works." in english and "The user has API access." in english
    web.headers["Accept-Language"] = "de"
    german = web.get(f"/accounts/{account['id']}/check").text
    web.headers["Accept-Language"] = "en"
    assert "Der Refresh-Token funktioniert." in german and "Der Benutzer hat API-Zugriff." in german
    assert "täglichen API-Anfragen übrig" in german
    assert "The refresh token works." not in german and "daily API requests" not in german
    with linked.db.uow() as uow:
        row = uow.session.get(Connection, account["id"])
        row.status, row.status_reason = "needs_reauth", "The refresh token was refused."
        uow.commit()
    web.headers["Accept-Language"] = "de"
    german = web.get(f"/accounts/{account['id']}/check").text
    web.headers["Accept-Language"] = "en"
    assert "Verbinden Sie es erneut: `cxloop connections refresh Acme`." in unescape(german)
    assert "Reconnect it" not in german
