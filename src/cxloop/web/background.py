"""An ASGI app served by uvicorn in a daemon thread: the demo's servers and the mail catcher's
web view. The socket is bound first, so port 0 picks a free port and the URL is known before
the first request."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from cxloop.web.protocol import HeaderDeadlineProtocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class BackgroundServer:
    """uvicorn in a daemon thread. The socket is bound at once (`url` is known, port 0 picks a
    free port); `start(app)` serves and waits until it listens; `stop()` lets in-flight
    requests finish and the app's lifespan shut down."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, name: str = "server") -> None:
        self.sock = bind(host, port)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.name = name
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(
        self, app: Any, *, grace_s: float = 5.0, timeout: float = 30.0, log_level: str = "warning"
    ) -> None:
        """Serve `app`; raise when the server does not come up in time."""
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=grace_s,
            http=HeaderDeadlineProtocol,
        )
        self.server = server = uvicorn.Server(config)
        self.thread = thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.sock]}, name=self.name, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{self.name} stopped while starting; see the log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start within {timeout:.0f} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving (gracefully) and close the socket."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout)
        self.sock.close()
