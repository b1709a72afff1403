"""ASGI middleware: request ids and access logs, metrics, a limit on body size, page sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxloop import metrics
from cxloop.logs import REDACTED, redact_text

log = structlog.get_logger("cxloop.http")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Path parameters that are credentials: the outbound listener's and the opt-out page's token.
_SECRET_PATH_PARAMS = frozenset({"token"})
_TEMPLATE_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_UNLOGGED_ROUTES = frozenset({"/livez", "/readyz", "/metrics"})  # probes and scrapes


def loggable_path(scope: Scope) -> str:
    """The request's path as a log may show it: a matched route's secret parameters, and
    anything in an unmatched path that looks like a secret, masked. Never the query string."""
    template = getattr(scope.get("route"), "path", None)
    params = scope.get("path_params") or {}
    if template and _SECRET_PATH_PARAMS & params.keys():
        return _TEMPLATE_PARAM.sub(
            lambda m: REDACTED if m[1] in _SECRET_PATH_PARAMS else str(params.get(m[1], m[0])),
            template,
        )
    return redact_text(scope["path"])


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()


def _has_nul(scope: Scope) -> bool:
    # No database stores NUL in text (PostgreSQL refuses it outright): stop it at the door.
    raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
    return b"%00" in raw or b"\x00" in raw or "\x00" in scope["path"]


class RequestContextMiddleware:
    """Gives each request an id (kept from X-Request-ID when sane), logs and measures it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The metrics' children by (method, route, status): looking a child up by its labels
        # costs more than counting. Bounded: routes, methods and statuses are few.
        self._counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            body = _error_body("bad_request", "The address contains a NUL character (%00).")
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            count, latency = self._children(scope["method"], route_path, status)
            count.inc()
            latency.observe(elapsed)
            # The line's fields (the path masked) are made only for a line that is logged.
            if route_path not in _UNLOGGED_ROUTES and log.is_enabled_for(logging.INFO):
                log.info(
                    "http.request",
                    method=scope["method"],
                    route=route_path,
                    path=loggable_path(scope),
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def _children(self, method: str, route_path: str, status: int) -> tuple[Any, Any]:
        """The request counter's and the latency histogram's children for these labels."""
        key = (method, route_path, status)
        children = self._counted.get(key)
        if children is None:
            children = self._counted[key] = (
                metrics.HTTP_REQUESTS.labels(method, route_path, str(status)),
                metrics.HTTP_LATENCY.labels(method, route_path),
            )
        return children


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, whether or not Content-Length was sent.

    Not on `/hooks/`: the outbound-message listener reads at most its own, smaller limit and
    answers a SOAP fault, the only refusal Salesforce's delivery log shows in words.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing untouched and
                    # reaches the error handlers, which shape it like every other error.
                    raise HTTPException(413, detail=self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:  # raised where no handler runs (e.g. outside a route)
            if exc.status_code != 413 or response_started:
                raise
            await self._refuse(send)

    def _message(self) -> str:
        limit_mib = self.max_bytes / (1024 * 1024)
        return f"The request body is larger than this server accepts ({limit_mib:g} MiB)."

    async def _refuse(self, send: Send) -> None:
        body = _error_body("body_too_large", self._message())
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RequestReadTimeoutMiddleware:
    """Answers 408 (and closes the connection) when a request's body stalls: no part of it
    arrives for `timeout_s`. (The headers' deadline is the server protocol's: web/protocol.py.)"""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # now only a disconnect can come, whenever it comes
                return await receive()
            try:
                # A deadline on this very task (not wait_for's task per message).
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                # Like the body size limit: the error handlers shape it; the connection is
                # closed, or the rest of the body would be read as the next request.
                raise HTTPException(
                    408,
                    detail=f"The request body stalled: nothing arrived for {self.timeout_s:g} s.",
                    headers={"Connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class PageSessionMiddleware(SessionMiddleware):
    """Signed-cookie sessions for the web pages. The API (bearer tokens) and the listener never
    use one, and skip its cookie parsing and signing on every request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/api/", "/hooks/")):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


# The pages load their scripts and styles from /static only: no inline script, style or handler.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self' {form_targets}; frame-ancestors {ancestors}"
)
# The API explorers (/docs: Swagger UI, /redoc: Redoc) style themselves inline and Redoc runs a
# worker from a blob: they keep every other rule, but not those on scripts, styles and workers
# (not yet tried in a browser under a stricter policy).
_CSP_API_EXPLORER = "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
_API_EXPLORERS = ("/docs", "/redoc")
_LOOPBACK_HTTP = ("http://127.0.0.1:*", "http://localhost:*")  # CSP has no IPv6 literals


class SecurityHeadersMiddleware:
    """Adds the browser's security headers to every answer: a Content-Security-Policy (pages
    cannot be framed, except survey pages by the origins in `frame_ancestors`), nosniff, no
    referrer (a personal link's token must not leave in a Referer), and HSTS over https."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        frame_ancestors: list[str],
        https: bool,
        salesforce_hosts: Sequence[str] = (),
        survey_image_hosts: Sequence[str] = (),
    ) -> None:
        self.app = app
        # Survey texts may show images from the hosts an admin allowed (`survey_image_hosts`).
        self.survey_images = " ".join(
            ["'self' data:", *(f"https://{h}" for h in survey_image_hosts)]
        )
        self.survey_ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
        self.hsts = https
        # A form may lead to Salesforce's login (linking an account posts, then is redirected
        # there, and browsers hold redirects to form-action): any https host, and the extra
        # hosts of custom and emulator connections.
        # A local emulator (its login host may come from the database, not the settings) answers
        # on loopback over http.
        self.form_targets = " ".join(["https:", *_LOOPBACK_HTTP, *salesforce_hosts])

        # Three policies, one per kind of path: built once, not on every answer.
        self._explorer_headers = self._headers(_CSP_API_EXPLORER)
        self._survey_headers = self._headers(
            _CSP.format(
                ancestors=self.survey_ancestors,
                form_targets=self.form_targets,
                images=self.survey_images,
            )
        )
        self._other_headers = self._headers(
            _CSP.format(ancestors="'none'", form_targets=self.form_targets, images="'self' data:")
        )

    def headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        """The security headers for an answer to `path`."""
        if path.startswith(_API_EXPLORERS):
            return list(self._explorer_headers)
        if path.startswith("/s/"):
            return list(self._survey_headers)
        return list(self._other_headers)

    def _headers(self, policy: str) -> tuple[tuple[bytes, bytes], ...]:
        headers = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if "frame-ancestors 'none'" in policy:  # for browsers that predate frame-ancestors
            headers.append((b"x-frame-options", b"DENY"))
        if self.hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        return tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(header for header in extra if header[0] not in given),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
