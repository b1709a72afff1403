"""The admin UI's shell over HTTP: sign-in redirects, CSRF on every form, the language, error
pages in the person's language."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.conftest import Person
from tests.integration.test_pages import login

PASSWORD = "a long enough passphrase"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_a_page_sends_a_stranger_to_login_and_back(client: TestClient, alice: Person) -> None:
    reply = client.get("/accounts?x=1", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/login?next=/accounts%3Fx%3D1"
    assert login(client, alice.email, PASSWORD, "/accounts?x=1").headers["location"] == (
        "/accounts?x=1"
    )


def test_htmx_requests_without_a_session_are_sent_to_login(client: TestClient) -> None:
    reply = client.get(
        "/accounts",
        headers={"HX-Request": "true", "HX-Current-URL": "/accounts"},
        follow_redirects=False,
    )
    assert reply.status_code == 204 and reply.headers["HX-Redirect"] == "/login?next=/accounts"


def test_language_follows_the_browser_then_the_persons_choice(
    client: TestClient, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    german = client.get("/surveys", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="de">' in german.text and "Umfragen" in german.text
    csrf = _csrf(german.text)
    client.post("/language", data={"lang": "en", "csrf": csrf, "next": "/accounts"})
    english = client.get("/surveys", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in english.text and "Surveys" in english.text


def test_language_choice_survives_login(client: TestClient, alice: Person) -> None:
    csrf = _csrf(client.get("/login").text)
    client.post("/language", data={"lang": "de", "csrf": csrf, "next": "/login"})
    assert "Anmelden" in client.get("/login").text
    login(client, alice.email, PASSWORD)
    assert '<html lang="de">' in client.get("/surveys").text


def test_language_switch_needs_the_form_token_and_a_known_language(
    client: TestClient, alice: Person
) -> None:
    login(client, alice.email, PASSWORD)
    client.post("/language", data={"lang": "de", "csrf": "forged", "next": "/"})
    assert '<html lang="en">' in client.get("/surveys").text
    csrf = _csrf(client.get("/surveys").text)
    client.post("/language", data={"lang": "xx", "csrf": csrf, "next": "/"})
    assert '<html lang="en">' in client.get("/surveys").text
    reply = client.post(
        "/language",
        data={"lang": "de", "csrf": csrf, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert reply.headers["location"] == "/"


def test_unknown_pages_of_the_ui_are_a_page_not_json(client: TestClient, alice: Person) -> None:
    login(client, alice.email, PASSWORD)
    reply = client.get("/surveys?cursor=not-a-cursor", headers={"Accept-Language": "de"})
    assert reply.status_code in (400, 422)
    assert reply.headers["content-type"].startswith("text/html")
    assert '<html lang="de">' in reply.text


def test_a_form_posted_after_the_session_ended_returns_to_its_page_after_login(
    client: TestClient, alice: Person
) -> None:
    reply = client.post(
        "/surveys/import",
        data={"csrf": "whatever"},
        headers={"Referer": "http://testserver/surveys?q=nps"},
        follow_redirects=False,
    )
    assert (
        reply.status_code == 303 and reply.headers["location"] == "/login?next=/surveys%3Fq%3Dnps"
    )
    foreign = client.post(
        "/surveys", headers={"Referer": "https://evil.example/x"}, follow_redirects=False
    )
    assert foreign.headers["location"] == "/login"
