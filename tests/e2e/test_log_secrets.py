"""No secret in any log line of real server processes (issue 12, finding 5), and the server's
deadlines for slow clients (finding 10).

Every kind of secret the server sees is exercised through real sockets: API tokens, a password,
the outbound listener's URL token, opt-out tokens, personal link tokens, OAuth codes, states and
the access and refresh tokens behind a real linking (through the emulator, in `cxloop demo`),
the secret key, the encryption keys and the SMTP password. Then every line the processes wrote
is searched for every one of them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from tests.e2e.test_processes import free_port

from cxloop import security
from cxloop.bootstrap import build_container
from cxloop.db.models import Connection
from cxloop.demo.seed import ORG
from cxloop.services import directory, personal_links, surveys, users
from cxloop.services.access import Actor
from cxloop.settings import Settings

CXLOOP = [sys.executable, "-m", "cxloop"]
PASSWORD = "correct horse battery staple " + secrets.token_hex(4)
# A query parameter or address segment that still shows a value where a secret may be.
UNMASKED = re.compile(
    r"[?&](t|code|state|token|access_token|refresh_token)=(?!\*{10})[^&\s\"]+"
    r"|/optout/(?!\*{10}|\{token\})[^\s\"/?]+"
    r"|/hooks/salesforce/outbound/(?!\*{10}|\{token\})[^\s\"/?]+"
)


def assert_no_secret_in(log: str, found_secrets: dict[str, str]) -> None:
    assert log.strip(), "the processes logged nothing: the test would prove nothing"
    for line in log.splitlines():
        for what, secret in found_secrets.items():
            assert secret not in line, f"{what} in a log line: {line[:400]}"
        assert not UNMASKED.search(line), f"an unmasked secret in a log line: {line[:400]}"


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `cxloop serve` with every secret given, and DEBUG logs."""
    return os.environ | {
        "CXLOOP_DATA_DIR": str(tmp_path / "data"),
        "CXLOOP_LOG_JSON": "true",
        "CXLOOP_LOG_LEVEL": "DEBUG",
        "CXLOOP_SECRET_KEY": secrets.token_urlsafe(48),
        "CXLOOP_ENCRYPTION_KEYS": ",".join(Fernet.generate_key().decode() for _ in range(2)),
        "CXLOOP_SMTP_PASSWORD": "smtp-" + secrets.token_urlsafe(16),
        "CXLOOP_SALESFORCE_CLIENT_SECRET": "sf-" + secrets.token_urlsafe(16),
    }


class Served:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CXLOOP, "serve", "--port", str(self.port), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_ready(self.base, self.proc, log)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.log.read_text()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    started: list[Served] = []

    def start(env: dict[str, str], *args: str) -> Served:
        started.append(Served(env, tmp_path / f"serve{len(started)}.log", *args))
        return started[-1]

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


def test_serve_with_two_processes_logs_no_secret(
    server_env: dict[str, str], serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server_env.items():
        if name.startswith("CXLOOP_"):
            monkeypatch.setenv(name, value)
    built = build_container(Settings(), upgrade_sqlite=True)
    try:
        admin = users.create_user(built.db, "admin@example.com", PASSWORD, is_admin=True)
        api_token = users.create_token(built.db, admin.email, "logs").token
        actor = Actor.of(admin)
        survey = surveys.create_survey(built.db, actor, "Logs", "")
        surveys.update_survey(built.db, actor, survey.id, {"status": "active"})
        people = directory.create_directory(built.db, actor, "People")
        contact = directory.create_contact(
            built.db, actor, people.id, directory.ContactFields(email="jo@example.com")
        )
        link_token, link_path = personal_links.create_personal_link(built.db, survey.id, {})
    finally:
        built.close()
    secret_key = server_env["CXLOOP_SECRET_KEY"]
    opt_out = security.opt_out_token(secret_key, contact.id)
    outbound_token = secrets.token_urlsafe(32)
    code, state = "code-" + secrets.token_urlsafe(16), "state-" + secrets.token_urlsafe(16)
    wrong_token = "cxl_" + secrets.token_urlsafe(32)

    served = serve(server_env, "--processes", "2")
    bearer = {"Authorization": f"Bearer {api_token}"}
    with httpx.Client(base_url=served.base, timeout=30) as web:
        assert web.get("/api/v1/users/me", headers=bearer).status_code == 200
        assert (
            web.get("/api/v1/users/me", headers={"Authorization": wrong_token}).status_code == 401
        )
        assert web.get(f"/api/v1/surveys?token={api_token}", headers=bearer).status_code == 200
        assert web.get(link_path).status_code == 200
        assert web.get(f"/s/{survey.id}?t=forged{link_token[::-1]}").status_code < 500
        assert web.get(f"/optout/{opt_out}").status_code == 200
        assert web.post(f"/optout/{opt_out}").status_code == 200
        assert web.get(f"/optout/{opt_out}/more").status_code == 404
        assert (
            web.post(f"/hooks/salesforce/outbound/{outbound_token}", content=b"<x/>").status_code
            == 404
        )
        assert web.get(f"/hooks/salesforce/outbound/{outbound_token}").status_code == 405
        assert web.post(f"/hooks/salesforce/outbound/{outbound_token}/x").status_code == 404
        web.get("/oauth/salesforce/callback", params={"code": code, "state": state})
        login = web.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        for password in (PASSWORD + "x", PASSWORD):
            web.post("/login", data={"email": admin.email, "password": password, "csrf": csrf[1]})
        web.get(f"/docs?access_token={api_token}&refresh_token={api_token}")
    log = served.stop()
    assert '"http.request"' in log and '"route": "/optout/{token}"' in log, log[-5000:]
    assert_no_secret_in(
        log,
        {
            "API token": api_token,
            "a wrong API token": wrong_token,
            "password": PASSWORD,
            "personal link token": link_token,
            "opt-out signature": opt_out.split(".", 1)[1],
            "outbound token": outbound_token,
            "OAuth code": code,
            "OAuth state": state,
            "secret key": secret_key,
            "SMTP password": server_env["CXLOOP_SMTP_PASSWORD"],
            "Salesforce client secret": server_env["CXLOOP_SALESFORCE_CLIENT_SECRET"],
            **{
                f"encryption key {i}": key
                for i, key in enumerate(server_env["CXLOOP_ENCRYPTION_KEYS"].split(","))
            },
        },
    )


def test_demo_logs_no_secret_of_the_whole_loop(tmp_path: Path) -> None:
    """The demo runs the real loop: an OAuth linking, outbound messages, mail, personal links."""
    data_dir = tmp_path / "demo"
    out, err = tmp_path / "demo.out", tmp_path / "demo.log"
    ports = ["--port", "0", "--emulator-port", "0", "--smtp-port", "0", "--mail-port", "0"]
    env = os.environ | {"CXLOOP_LOG_JSON": "true", "CXLOOP_LOG_LEVEL": "DEBUG"}
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [*CXLOOP, "demo", *ports, "--data-dir", str(data_dir)],
            stdout=stdout, stderr=stderr, env=env, text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in out.read_text():
            assert proc.poll() is None, out.read_text() + err.read_text()
            assert time.monotonic() < deadline, out.read_text() + err.read_text()
            time.sleep(0.2)
        shown = out.read_text()
        api_token = re.search(r"API token\s+(cxl_\S+)", shown)[1]
        password = re.search(r"as \S+@\S+ / (\S+)", shown)[1]
        outbound_url = re.search(r"outbound endpoint\s+(\S+)", shown)[1]
        case_url = re.search(r"the Case\s+(\S+)", shown)[1]
        mail_url = re.search(r"Mail catcher\S*\s+(http\S+)", shown)[1]
        base = re.search(r"cxloop\S*\s+(http://\S+)", shown)[1]
        case_id = case_url.rstrip("/").rsplit("/", 1)[1]
        emulator = case_url.split("/__emulator__/")[0]
        with httpx.Client(timeout=30) as web:
            web.patch(
                f"{emulator}/__emulator__/records/{ORG}/{case_id}", json={"Status": "Closed"}
            ).raise_for_status()
            mail = _wait_for_mail(web, mail_url)
            link = next(u for u in mail["links"] if "/s/" in u and "?t=" in u)
            # The opt-out link: in the text, or at least in the List-Unsubscribe header.
            opt_out = re.search(r"https?://[^\s<>\"\\]+/optout/[^\s<>\"\\]+", json.dumps(mail))[0]
            assert web.get(link).status_code == 200
            assert web.get(opt_out).status_code == 200
            assert (
                web.get(
                    f"{base}/api/v1/runs", headers={"Authorization": f"Bearer {api_token}"}
                ).status_code
                == 200
            )
            login = web.get(f"{base}/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)[1]
            web.post(
                f"{base}/login",
                data={"email": "demo@example.com", "password": password, "csrf": csrf},
            )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = {
        "API token": api_token,
        "password": password,
        "outbound token": urlsplit(outbound_url).path.rsplit("/", 1)[1],
        "personal link token": link.split("?t=", 1)[1].split("&")[0],
        "opt-out signature": opt_out.rsplit("/", 1)[1].split(".", 1)[1],
        "secret key": (data_dir / "secret_key").read_text().strip(),
        **{
            f"encryption key {i}": key
            for i, key in enumerate((data_dir / "encryption_keys").read_text().strip().split(","))
        },
    }
    built = build_container(Settings(data_dir=data_dir))
    try:
        with built.db.uow() as uow:
            for connection in uow.session.scalars(select(Connection)):
                found[f"{connection.name} access token"] = connection.access_token
                found[f"{connection.name} refresh token"] = connection.refresh_token
    finally:
        built.close()
    assert any("access token" in what for what in found), "the demo linked no connection"
    log = err.read_text()
    assert '"http.request"' in log  # DEBUG: the access log is on
    assert_no_secret_in(log, {k: v for k, v in found.items() if v})


def _wait_for_mail(web: httpx.Client, mail_url: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mails = web.get(f"{mail_url}/api/messages").json()
        if mails:
            return mails[-1]
        time.sleep(0.3)
    raise AssertionError("no invitation arrived in the mail catcher")


# --- slow clients (finding 10) -----------------------------------------------------------------


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within `seconds`, and what it sent."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


def test_a_slow_client_is_cut_off_after_the_read_timeout(server_env: dict[str, str], serve) -> None:
    served = serve(server_env | {"CXLOOP_REQUEST_READ_TIMEOUT_S": "1"})
    # Headers that never end: the connection is closed.
    with socket.create_connection(("127.0.0.1", served.port)) as slow:
        slow.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed, _ = _closed_within(slow, 5)
        assert closed and time.monotonic() - started < 3
    # A body that stalls: 408, then the connection is closed.
    with socket.create_connection(("127.0.0.1", served.port)) as slow:
        slow.sendall(
            b"POST /api/v1/surveys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"name": '
        )
        closed, answer = _closed_within(slow, 5)
        assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"request_timeout"' in answer
    # A prompt client, kept alive, is not hurried between its requests' headers.
    with socket.create_connection(("127.0.0.1", served.port)) as prompt:
        for _ in range(2):
            prompt.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            prompt.settimeout(5)
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += prompt.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
    served.stop()
