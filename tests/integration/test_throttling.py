"""Throttling of logins, API token checks and public submissions (issue #12, finding 4).

Before: 50 wrong passwords in 5.5 s were all answered 401, and the right one worked at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from cxloop.bootstrap import Container, build_container
from cxloop.cli.serve import proxy_options
from cxloop.db.models import AuditEntry
from cxloop.errors import TooManyAttempts
from cxloop.services import survey_content, surveys, throttle
from cxloop.services.access import Actor
from cxloop.web.app import create_app
from cxloop.web.background import bind
from tests.conftest import Person, make_settings
from tests.integration.test_pages import _csrf

RIGHT = "a long enough passphrase"


def login(client: TestClient, email: str, password: str):
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": _csrf(client.get("/login").text)},
        follow_redirects=False,
    )


def limits(container: Container, **values: float) -> None:
    """Small limits for a test (the defaults are in settings.py)."""
    settings = container.settings
    settings.auth_free_failures = 100
    settings.auth_lockout_failures_per_account = 100
    settings.auth_lockout_failures_per_address = 100
    for name, value in values.items():
        setattr(settings, name, value)


def lockouts(kind: str) -> float:
    return REGISTRY.get_sample_value("cxloop_auth_lockouts_total", {"kind": kind}) or 0.0


def test_wrong_passwords_lock_the_account_and_the_right_one_waits_too(
    client: TestClient, container: Container, alice: Person
) -> None:
    limits(container, auth_lockout_failures_per_account=5, auth_lockout_s=2)
    before = lockouts("login_account")
    for _ in range(5):
        assert login(client, alice.email, "not the password at all").status_code == 401
    locked = login(client, alice.email, RIGHT)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 2
    assert "Too many failed attempts" in locked.text and "try again in" in locked.text
    assert lockouts("login_account") == before + 1
    with container.db.reader() as uow:
        entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "auth.lockout"))
    assert entry is not None and entry.details["kind"] == "login_account"
    assert entry.object_id == alice.email
    time.sleep(2.1)
    assert login(client, alice.email, RIGHT).status_code == 303


def test_failures_back_off_exponentially(
    client: TestClient, container: Container, alice: Person
) -> None:
    limits(container, auth_free_failures=2, auth_backoff_base_s=1, auth_lockout_s=60)
    assert login(client, alice.email, "wrong password one").status_code == 401
    assert login(client, alice.email, "wrong password two").status_code == 401
    waited = login(client, alice.email, RIGHT)
    assert waited.status_code == 429 and waited.headers["retry-after"] == "1"
    time.sleep(1.1)
    assert login(client, alice.email, "wrong password three").status_code == 401
    assert login(client, alice.email, RIGHT).headers["retry-after"] == "2"  # doubled
    time.sleep(2.1)
    assert login(client, alice.email, RIGHT).status_code == 303
    # The right password clears the account's count; the address keeps its own.
    guard = throttle.Throttle(container.db, container.settings)
    account, address = guard.login_subjects(alice.email, "testclient")
    guard.check([account])
    with pytest.raises(TooManyAttempts):
        guard.failed([address])
        guard.check([address])


def test_one_address_trying_many_accounts_is_locked_out(
    client: TestClient, container: Container, alice: Person
) -> None:
    limits(container, auth_lockout_failures_per_address=4, auth_lockout_s=60)
    for n in range(4):
        assert login(client, f"guess{n}@example.com", "not the password at all").status_code == 401
    refused = login(client, alice.email, RIGHT)
    assert refused.status_code == 429 and "retry-after" in refused.headers


def test_api_token_guessing_is_throttled_per_address(
    client: TestClient, container: Container, alice: Person, bob: Person
) -> None:
    limits(container, auth_lockout_failures_per_address=5, auth_lockout_s=2)
    for n in range(5):
        reply = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer cxl_guess{n}"})
        assert reply.status_code == 401
    throttled = client.get("/api/v1/users/me", headers=bob.headers)  # even a right one, unseen
    assert throttled.status_code == 429, throttled.text
    assert 1 <= int(throttled.headers["retry-after"]) <= 2
    body = throttled.json()
    assert body["error"]["code"] == "too_many_attempts" and body["error"]["message"]
    assert set(body["error"]) == {"code", "message", "details"}
    assert lockouts("token_address") >= 1
    time.sleep(2.1)
    assert client.get("/api/v1/users/me", headers=bob.headers).status_code == 200


def test_a_valid_token_costs_no_throttle_write(
    client: TestClient, container: Container, alice: Person
) -> None:
    for _ in range(20):
        assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    with container.db.reader() as uow:
        from cxloop.db.models import ThrottleCounter

        assert uow.session.scalars(select(ThrottleCounter)).all() == []


@pytest.fixture
def second_process(tmp_path: Path, container: Container) -> Iterator[Container]:
    """Another server process on the same database (its own container, engine and cache)."""
    other = build_container(
        make_settings(
            tmp_path / "other",
            container.settings.effective_database_url,
            f"sqlite:///{tmp_path / 'other-queue.db'}",
            secret_key=container.settings.secret_key,
        )
    )
    yield other
    other.close()


def test_counters_are_shared_by_processes_on_the_same_database(
    client: TestClient, container: Container, second_process: Container, alice: Person
) -> None:
    for built in (container, second_process):
        limits(built, auth_lockout_failures_per_account=4, auth_lockout_s=60)
    with TestClient(create_app(second_process), raise_server_exceptions=False) as other:
        for browser in (client, other, client, other):
            assert login(browser, alice.email, "not the password at all").status_code == 401
        assert login(other, alice.email, RIGHT).status_code == 429
        assert login(client, alice.email, RIGHT).status_code == 429
    guard = throttle.Throttle(second_process.db, second_process.settings)
    with pytest.raises(TooManyAttempts):
        guard.check(guard.login_subjects(alice.email, "198.51.100.7"))


def test_public_submissions_are_limited_per_address(
    client: TestClient, container: Container, alice: Person
) -> None:
    container.settings.submissions_per_address_per_minute = 3
    survey_id = _open_survey(container, alice)
    for _ in range(3):
        assert client.post(f"/s/{survey_id}", data={"_page": "1"}).status_code != 429
    refused = client.post(f"/s/{survey_id}", data={"_page": "1"})
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Please wait" in refused.text


def test_public_submissions_are_limited_per_survey(
    client: TestClient, container: Container, alice: Person
) -> None:
    container.settings.submissions_per_address_per_minute = 0  # no limit per address
    container.settings.submissions_per_survey_per_minute = 2
    busy, quiet = _open_survey(container, alice), _open_survey(container, alice)
    for _ in range(2):
        assert client.post(f"/s/{busy}", data={"_page": "1"}).status_code != 429
    assert client.post(f"/s/{busy}", data={"_page": "1"}).status_code == 429
    assert client.post(f"/s/{quiet}", data={"_page": "1"}).status_code != 429


def test_bad_limit_settings_are_refused() -> None:
    from pydantic import ValidationError

    from cxloop.settings import Settings

    for bad in (
        {"auth_lockout_s": 0},
        {"auth_free_failures": 0},
        {"submissions_per_survey_per_minute": -1},
        {"auth_backoff_base_s": 0},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


def _open_survey(container: Container, person: Person) -> str:
    actor = Actor(id=person.id, email=person.email, is_admin=False)
    survey = surveys.create_survey(container.db, actor, "Throttled")
    survey_content.put_content(
        container.db,
        actor,
        survey.id,
        {"format_version": 1, "questions": [{"qid": "QID1", "type": "text_entry", "text": "?"}]},
    )
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    return survey.id


def _serve(app: object, **options: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("trusted", "rotating_evades"), [([], False), (["127.0.0.1"], True)], ids=["none", "local"]
)
def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    container: Container, trusted: list[str], rotating_evades: bool
) -> None:
    limits(container, auth_lockout_failures_per_address=3, auth_lockout_s=60)
    server, thread, base = _serve(create_app(container), **proxy_options(trusted))
    try:
        codes = [
            httpx.get(
                f"{base}/api/v1/users/me",
                headers={"Authorization": "Bearer cxl_guess", "X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(5)
        ]
    finally:
        server.should_exit = True
        thread.join(10)
    assert (429 not in codes) is rotating_evades, codes
