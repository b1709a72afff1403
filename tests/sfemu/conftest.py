"""Fixtures for the emulator's own tests: an in-process emulator per test, REST helpers, the
reference samples of ../shared, and a SOAP listener for outbound messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfemu.testing import InProcessEmulator, in_process
from tests.conftest import reference_sample

PROJECT_ROOT = Path(__file__).resolve().parents[2]

VERSION = "62.0"

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


def reference_file(name: str) -> Path:
    """A file of ../shared/reference/salesforce; missing, the test skips saying why (fails under
    CI=true)."""
    return reference_sample("salesforce", name)


@pytest.fixture
def emu() -> Iterator[InProcessEmulator]:
    """A fresh in-process emulator (default org file, in-memory SQLite)."""
    with in_process() as instance:
        yield instance


@pytest.fixture
def client(emu: InProcessEmulator) -> Iterator[Any]:
    """A sync HTTP client on the in-process app."""
    with emu.client() as test_client:
        yield test_client


class Api:
    """REST calls as one user: paths are relative to /services/data/vNN.0."""

    def __init__(self, client: Any, token: str, version: str = VERSION) -> None:
        self.client = client
        self.token = token
        self.version = version

    def url(self, path: str) -> str:
        return f"/services/data/v{self.version}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def query(self, soql: str) -> httpx.Response:
        return self.get("/query", params={"q": soql})

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self.post(f"/sobjects/{sobject}", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]


@pytest.fixture
def admin(emu: InProcessEmulator, client: Any) -> Api:
    """REST as admin@example.com (System Administrator)."""
    return Api(client, emu.token("admin@example.com"))


@pytest.fixture
def integration(emu: InProcessEmulator, client: Any) -> Api:
    """REST as integration@example.com (the limited cxloop Integration profile)."""
    return Api(client, emu.token("integration@example.com"))


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The single entry of a REST error envelope (asserting the envelope's shape)."""
    body = response.json()
    assert isinstance(body, list) and len(body) == 1, body
    assert set(body[0]) <= {"message", "errorCode", "fields"}, body
    return body[0]


@dataclass
class Listener:
    """A SOAP endpoint for outbound messages on 127.0.0.1: records requests, answers as told."""

    url: str
    received: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    # Each answer is (status, body); the last one repeats.
    answers: list[tuple[int, str]] = field(default_factory=lambda: [(200, ACK)])
    event: threading.Event = field(default_factory=threading.Event)
    delay_s: float = 0.0  # how long the listener takes before answering

    def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Wait until `count` messages arrived."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} outbound messages, got {len(self.received)}"
                )
            self.event.wait(0.05)
            self.event.clear()
        return self.received


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A listener answering Ack true (change `answers` to fail)."""
    state = Listener(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if state.delay_s:
                import time

                time.sleep(state.delay_s)
            index = len(state.received)
            state.received.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            status, answer = state.answers[min(index, len(state.answers) - 1)]
            payload = answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            state.event.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (timeout tests) is expected here

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/salesforce/outbound/test-token"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))
