"""Fixtures for tests that talk to a Salesforce emulator over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container, build_container
from cxloop.ledger import ResponseFacts
from cxloop.services import survey_content, surveys, users
from cxloop.services.access import Actor
from cxloop.web.app import create_app
from sfemu.testing import EmulatorServer, run_in_thread
from tests.conftest import Person, make_settings

CALLBACK = "http://127.0.0.1:8000/oauth/salesforce/callback"


@pytest.fixture(scope="session")
def sf() -> Iterator[EmulatorServer]:
    with run_in_thread(auto_login="admin@example.com") as server:
        yield server


@pytest.fixture
def emulator(sf: EmulatorServer) -> Iterator[EmulatorServer]:
    sf.control.post("/reset").raise_for_status()
    sf.control.patch("/settings", json={"auto_login": "admin@example.com"}).raise_for_status()
    yield sf


@pytest.fixture
def linked(tmp_path: Path, database_url: str, emulator: EmulatorServer) -> Iterator[Container]:
    """A container whose settings trust the emulator and carry its connected app."""
    app = emulator.info()["connected_apps"][0]
    settings = make_settings(
        tmp_path,
        database_url,
        f"sqlite:///{tmp_path / 'queue.db'}",
        base_url="http://127.0.0.1:8000",
        salesforce_client_id=app["client_id"],
        salesforce_client_secret=app["client_secret"],
        salesforce_extra_hosts=[urlsplit(emulator.base_url).netloc],
    )
    built = build_container(settings)
    yield built
    built.close()


@pytest.fixture
def web(linked: Container) -> Iterator[TestClient]:
    with TestClient(create_app(linked), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def owner(linked: Container, make_person_in: Callable[[Container, str], Person]) -> Person:
    return make_person_in(linked, "owner@example.com")


@pytest.fixture
def make_person_in() -> Callable[[Container, str], Person]:
    def make(container: Container, email: str) -> Person:
        user = users.create_user(container.db, email, "a long enough passphrase")
        issued = users.create_token(container.db, email, "test")
        return Person(id=user.id, email=user.email, token=issued.token)

    return make


PASSWORD = "a long enough passphrase"


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign in to cxloop's web pages in this client (a browser with its cookies)."""
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf, "no login form"
    reply = client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text


def open_in_browser(client: TestClient, person: Person, authorize_url: str) -> str:
    """What the person's browser does with the one-time link: sign in to cxloop, open it (the
    browser gets its one-time cookie); returns the Salesforce login URL it leads to."""
    sign_in(client, person.email)
    reply = client.get(urlsplit(authorize_url).path, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    return reply.headers["location"]


def follow_login(client: TestClient, person: Person, authorize_url: str) -> str:
    """The whole trip in the person's browser: the one-time link, Salesforce's login (automatic
    here), and back: returns the callback's ?code&state to open in the same browser."""
    reply = httpx.get(open_in_browser(client, person, authorize_url), follow_redirects=False)
    assert reply.status_code in (302, 303), reply.text
    location = reply.headers["location"]
    assert location.startswith(CALLBACK), location
    return urlsplit(location).query


def link(client: TestClient, person: Person, name: str, login_url: str) -> dict:
    started = client.post(
        "/api/v1/connections",
        json={"name": name, "type": "emulator", "login_url": login_url},
        headers=person.headers,
    )
    assert started.status_code == 201, started.text
    query = follow_login(client, person, started.json()["authorize_url"])
    finished = client.get(f"/oauth/salesforce/callback?{query}")
    assert finished.status_code == 200, finished.text
    attempt = client.get(
        f"/api/v1/connections/attempts/{started.json()['attempt_id']}", headers=person.headers
    ).json()
    assert attempt["status"] == "completed", attempt
    return client.get(
        f"/api/v1/connections/{attempt['connection_id']}", headers=person.headers
    ).json()


def org(emulator: EmulatorServer, alias: str) -> dict:
    return next(o for o in emulator.info()["orgs"] if o["alias"] == alias)


def actor(person: Person) -> Actor:
    return Actor(id=person.id, email=person.email, is_admin=False)


CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}, {"name": "Email"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely...?", "required": True},
        {"qid": "QID2", "type": "text_entry", "text": "Why?"},
    ],
}


@pytest.fixture
def setup(  # a survey with content, an active status and a linked connection
    linked: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> Iterator[dict[str, Any]]:
    linked.settings.batch_linger_s = 0
    linked.settings.retry_base_s = 0.05
    linked.settings.retry_cap_s = 0.2
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    actor = Actor(id=owner.id, email=owner.email, is_admin=False)
    survey = surveys.create_survey(linked.db, actor, "Support NPS")
    survey_content.put_content(linked.db, actor, survey.id, CONTENT)
    surveys.update_survey(linked.db, actor, survey.id, {"status": "active"})
    yield {"actor": actor, "survey_id": survey.id, "connection": connection}


# --- a real SMTP catcher


@contextmanager
def smtp_catcher(container: Container) -> Iterator[list[Any]]:
    """An SMTP server on a free port that keeps every mail (parsed); the container sends to it."""
    import email

    from aiosmtpd.controller import Controller

    from tests.e2e.test_processes import free_port

    caught: list[Any] = []

    class Catcher:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            caught.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    port = free_port()
    controller = Controller(Catcher(), hostname="127.0.0.1", port=port)
    controller.start()
    container.settings.smtp_host, container.settings.smtp_port = "127.0.0.1", port
    try:
        yield caught
    finally:
        controller.stop()


@pytest.fixture
def mailbox(linked: Container) -> Iterator[list[Any]]:
    """Mail the `linked` container sends, as it arrives."""
    with smtp_catcher(linked) as caught:
        yield caught


class LedgerWatch:
    """What a container's ledger is told of responses: each call's event and response facts,
    and each interest question (survey ids, source). `before(uow, facts, event)` runs inside
    the response's transaction before the ledger does its work (to add to, or fail, it);
    `interested` answers interest questions instead of the ledger when set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[ResponseFacts]]] = []
        self.asked: list[tuple[list[str], str]] = []
        self.before: Callable[[Any, list[ResponseFacts], str], None] | None = None
        self.interested: bool | None = None

    @property
    def sizes(self) -> list[int]:
        return [len(facts) for _, facts in self.calls]


@pytest.fixture
def ledger_watch(container: Container, monkeypatch: pytest.MonkeyPatch) -> LedgerWatch:
    """Watch the `container`'s ledger (its own instance; nothing module-wide is touched)."""
    watch = LedgerWatch()
    ledger = container.ledger
    record, wants = ledger.record_response_events, ledger.wants_responses

    def recording(uow: Any, responses: Any, event: str) -> None:
        facts = [ResponseFacts.of(r) for r in responses]
        watch.calls.append((event, facts))
        if watch.before is not None:
            watch.before(uow, facts, event)
        record(uow, responses, event)

    def asking(session: Any, survey_ids: Any, source: str) -> bool:
        watch.asked.append((list(survey_ids), source))
        if watch.interested is not None:
            return watch.interested
        return wants(session, survey_ids, source)

    monkeypatch.setattr(ledger, "record_response_events", recording)
    monkeypatch.setattr(ledger, "wants_responses", asking)
    return watch


@pytest.fixture
def cli_env(
    tmp_path: Path, container: Container, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The CLI (tests/integration/cli_helpers.py) on the same database and data directory (so
    the same keys) as `container`, with a queue of its own."""
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", database_url)
    monkeypatch.setenv("CXLOOP_QUEUE_URL", f"sqlite:///{tmp_path / 'queue.db'}")
    return tmp_path
