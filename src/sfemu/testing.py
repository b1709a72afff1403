"""Helpers for test suites: an emulator server in a thread, an in-process app, pytest fixtures.

    from sfemu.testing import run_in_thread

    with run_in_thread() as sf:                 # sf is the base URL (a str) with extras
        httpx.get(f"{sf}/services/data/")
        sf.control.post("/faults", json={"org": "acme", "error": "UNABLE_TO_LOCK_ROW", "count": 3})
        token = sf.token("integration@example.com")["access_token"]

    with run_in_thread(tls=True) as sf:          # https; sf.ca_file is the CA bundle to trust
        httpx.get(f"{sf}/services/data/", verify=sf.verify)

In process (no socket): ``InProcessEmulator`` gives the app, the Emulator and clients (a sync
``httpx.Client`` over ``SyncASGITransport``, starlette's ``TestClient``, and an
``httpx.AsyncClient`` over ``httpx.ASGITransport``). pytest fixtures
``sfemu_server``, ``sfemu_tls_server`` and ``sfemu_in_process`` are defined here; import them
into a conftest.py (``from sfemu.testing import sfemu_server  # noqa: F401``).
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .app import EmulatorApp, create_app
from .emulator import Emulator
from .server import BackgroundServer, plan_server
from .settings import EmulatorSettings

IN_PROCESS_BASE_URL = "http://sfemu.test"


def fast_settings(**overrides: Any) -> EmulatorSettings:
    """Settings for tests: in-memory, outbound retry intervals and horizon shrunk 10,000 times
    (first retry after 1.5 ms, cap 0.72 s, horizon 8.6 s)."""
    values: dict[str, Any] = {"outbound_time_scale": 1e-4, "outbound_timeout_s": 5.0}
    values.update(overrides)
    return EmulatorSettings(**values)


class EmulatorServer(str):
    """The base URL of a running emulator (it *is* the string), with what tests need besides.

    ``emulator`` is the live Emulator (direct Python control), ``ca_file`` the CA bundle when
    TLS is on, ``control`` an httpx client on ``/__emulator__``.
    """

    emulator: Emulator
    ca_file: str | None
    control: httpx.Client

    def __new__(cls, base_url: str, emulator: Emulator, ca_file: str | None) -> EmulatorServer:
        instance = super().__new__(cls, base_url)
        instance.emulator = emulator
        instance.ca_file = ca_file
        instance.control = httpx.Client(
            base_url=f"{base_url}/__emulator__", verify=instance.verify, timeout=30
        )
        return instance

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify``: an SSL context trusting the CA when TLS is on."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    @property
    def base_url(self) -> str:
        """The base URL as a plain str."""
        return str.__str__(self)

    def info(self) -> dict[str, Any]:
        """GET /__emulator__/info."""
        return self.control.get("/info").raise_for_status().json()

    def token(
        self, username: str = "admin@example.com", *, refresh_token: bool = False
    ) -> dict[str, Any]:
        """A token response for a user, without the OAuth dance."""
        return (
            self.control.post(
                "/tokens", json={"username": username, "refresh_token": refresh_token}
            )
            .raise_for_status()
            .json()
        )

    def client(self, username: str = "admin@example.com", **kwargs: Any) -> httpx.Client:
        """An httpx client on this emulator with a bearer token of the user."""
        token = self.token(username)["access_token"]
        return httpx.Client(
            base_url=self.base_url,
            verify=self.verify,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )


@contextmanager
def run_in_thread(
    settings: EmulatorSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    **overrides: Any,
) -> Iterator[EmulatorServer]:
    """A real uvicorn server in a background thread on a free port (or ``port``).

    ``settings`` defaults to ``fast_settings(**overrides)``. Certificates (``tls=True``) go to a
    temporary directory that is removed afterwards.
    """
    settings = settings or fast_settings(**overrides)
    plan = plan_server(settings, host=host, port=port, tls=tls)
    server = BackgroundServer(plan)
    server.start()
    url = EmulatorServer(
        plan.base_url, plan.emulator, str(plan.certificates.ca_file) if plan.certificates else None
    )
    try:
        yield url
    finally:
        url.control.close()
        server.stop()


class SyncASGITransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in this thread, on its own event
    loop (no server, no thread hop per request, unlike starlette's TestClient)."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run the request through the app and read the whole answer."""

        async def call() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, request=request
            )

        return self._loop.run_until_complete(call())

    def close(self) -> None:
        """Close the event loop."""
        self._loop.close()


class InProcessEmulator:
    """The app and its Emulator, no socket. Use ``client()`` (sync) or ``async_client()``."""

    def __init__(self, settings: EmulatorSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or fast_settings(**overrides)
        if self.settings.public_url is None:
            self.settings.public_url = IN_PROCESS_BASE_URL
        self.emulator = Emulator(self.settings)
        self.app: EmulatorApp = create_app(emulator=self.emulator)
        self.base_url = self.settings.public_url

    def client(self, **kwargs: Any) -> httpx.Client:
        """A sync httpx.Client on the app (no socket; redirects are not followed by default)."""
        return httpx.Client(transport=SyncASGITransport(self.app), base_url=self.base_url, **kwargs)

    def test_client(self, **kwargs: Any) -> Any:
        """starlette's TestClient on the app (runs the lifespan; follows redirects)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # starlette's notice about httpx2
            from starlette.testclient import TestClient
        return TestClient(self.app, base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx.AsyncClient over httpx.ASGITransport."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=self.base_url, **kwargs
        )

    def token(self, username: str = "admin@example.com") -> str:
        """An access token for a user."""
        with self.emulator.lock:
            return self.emulator.issue_session(username)[2].token

    def close(self) -> None:
        """Stop the outbound thread and close the database."""
        self.emulator.close()


@contextmanager
def in_process(
    settings: EmulatorSettings | None = None, **overrides: Any
) -> Iterator[InProcessEmulator]:
    """An InProcessEmulator that is closed afterwards."""
    instance = InProcessEmulator(settings, **overrides)
    try:
        yield instance
    finally:
        instance.close()


@contextmanager
def temporary_database() -> Iterator[str]:
    """A SQLite file path in a temporary directory (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="sfemu-db-") as directory:
        yield str(Path(directory) / "sfemu.sqlite3")


try:
    import pytest
except ImportError:  # pytest is a test dependency; the helpers above work without it
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def sfemu_server() -> Iterator[EmulatorServer]:
        """A fresh emulator over HTTP on 127.0.0.1 (fast outbound retries)."""
        with run_in_thread() as url:
            yield url

    @pytest.fixture
    def sfemu_tls_server() -> Iterator[EmulatorServer]:
        """A fresh emulator over HTTPS on 127.0.0.1; ``.ca_file`` is the CA to trust."""
        with run_in_thread(tls=True) as url:
            yield url

    @pytest.fixture
    def sfemu_in_process() -> Iterator[InProcessEmulator]:
        """A fresh in-process emulator."""
        with in_process() as instance:
            yield instance
