"""/livez, /readyz and /metrics of `cxloop worker` and `cxloop scheduler`, on their own port.

These processes serve no web app, yet Kubernetes probes them and Prometheus scrapes them. A
small HTTP server in a thread (the standard library's; three fixed paths need nothing more)
answers on `--health-port` / CXLOOP_HEALTH_PORT. `/readyz` checks what this process needs: the
database at the newest schema and the queue; `/metrics` serves this process's metrics, so the
histograms a worker observes (such as cxloop_submit_to_record_seconds) reach Prometheus.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cxloop import metrics
from cxloop.engine.queue import queue_depth
from cxloop.services.readiness import readiness

log = structlog.get_logger(__name__)


class ProbeServer:
    """Serves the probes of one process on `host:port` until stopped."""

    def __init__(self, container: Any, port: int, host: str = "0.0.0.0") -> None:
        handler = _handler_for(container)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cxloop-probes", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("probes.started", port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(container: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/livez":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                self._json(*readiness(container, with_processes=False))
            elif path == "/metrics":
                try:
                    metrics.QUEUE_DEPTH.set(queue_depth(container.huey))
                except Exception:
                    metrics.QUEUE_DEPTH.set(float("nan"))
                self._reply(200, generate_latest(metrics.registry()), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no such path"}})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._reply(status, json.dumps(body).encode(), "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the logs

    return Handler
