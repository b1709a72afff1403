"""Running the emulator as an HTTP(S) server: in the foreground (CLI) or in a background thread
(tests). Both bind the socket first, so port 0 picks a free port and the real one is known
before the first request."""

from __future__ import annotations

import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .control import info
from .emulator import Emulator
from .settings import EmulatorSettings
from .tls import Certificates, generate_certificates


@dataclass
class ServerPlan:
    """A bound socket, the URL it answers at, and the app to serve."""

    sock: socket.socket
    base_url: str
    emulator: Emulator
    app: Any
    certificates: Certificates | None = None
    tls_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def plan_server(
    settings: EmulatorSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    tls_dir: str | Path | None = None,
) -> ServerPlan:
    """Bind, work out the public URL, generate certificates if asked, build the app."""
    settings = settings or EmulatorSettings()
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("localhost" if host == "::" else host)
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    scheme = "https" if tls else "http"
    base_url = f"{scheme}://{shown_host}:{bound_port}"
    if settings.public_url is None:
        settings.public_url = base_url
    certificates = None
    temp_dir = None
    if tls:
        if tls_dir is None:
            temp_dir = tempfile.TemporaryDirectory(prefix="sfemu-tls-")
            tls_dir = temp_dir.name
        certificates = generate_certificates(
            tls_dir, [host] if host not in ("0.0.0.0", "::", "") else []
        )
    emulator = Emulator(settings)
    return ServerPlan(
        sock, settings.public_url, emulator, create_app(emulator=emulator), certificates, temp_dir
    )


def uvicorn_config(
    plan: ServerPlan, log_level: str = "warning", access_log: bool = False, grace_s: float = 5.0
) -> uvicorn.Config:
    """The uvicorn configuration for a plan."""
    kwargs: dict[str, Any] = {}
    if plan.certificates is not None:
        kwargs = {
            "ssl_certfile": str(plan.certificates.cert_file),
            "ssl_keyfile": str(plan.certificates.key_file),
        }
    return uvicorn.Config(
        plan.app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=grace_s,
        **kwargs,
    )


def essentials(plan: ServerPlan) -> dict[str, Any]:
    """What a person needs to connect: base URL, CA file, orgs and the connected app."""
    data = info(plan.emulator, plan.base_url)
    data["ca_file"] = str(plan.certificates.ca_file) if plan.certificates else None
    return data


def serve_forever(plan: ServerPlan, log_level: str = "info") -> None:
    """Run in the foreground until interrupted."""
    server = uvicorn.Server(uvicorn_config(plan, log_level=log_level, access_log=True))
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; with the default
    # handler that would end the process before the cleanup below (state saved, certificates
    # removed), so make it an ordinary exit instead.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        server.run(sockets=[plan.sock])
    finally:
        plan.emulator.close()
        if plan.tls_dir is not None:
            plan.tls_dir.cleanup()


class BackgroundServer:
    """A uvicorn server in a daemon thread (see sfemu.testing.run_in_thread)."""

    def __init__(self, plan: ServerPlan) -> None:
        self.plan = plan
        # Tests stop servers while clients may still hold idle keep-alive (TLS) connections:
        # waiting long for them to close would only slow the suite down.
        self.server = uvicorn.Server(uvicorn_config(plan, grace_s=0.2))
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [plan.sock]},
            name="sfemu-server",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the sfemu server thread died while starting; see the log above")
            if time.monotonic() > deadline:
                raise TimeoutError("the sfemu server did not start in time")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and the emulator, remove generated certificates."""
        self.server.should_exit = True
        self.thread.join(10)
        try:
            self.plan.emulator.close()
        finally:
            self.plan.sock.close()
            if self.plan.tls_dir is not None:
                self.plan.tls_dir.cleanup()
