"""The built-in mail catcher of `cxloop demo` (and tests): an SMTP server that keeps what it is
sent, in memory, and a small web view of it.

    catcher = MailCatcher(smtp_port=8025, web_port=8026)
    catcher.start()            # SMTP on 127.0.0.1:8025, the web view on http://127.0.0.1:8026
    ...                        # point CXLOOP_SMTP_HOST / CXLOOP_SMTP_PORT at it
    catcher.mailbox.messages() # what arrived, oldest first
    catcher.stop()

The web view: `/` lists the mails, `/messages/{n}` shows one (the text part escaped with its
links made clickable; the HTML part, which is untrusted, only inside a sandboxed iframe with
no scripts, forms or same-origin access), `/api/messages` and `/api/messages/{n}` are JSON,
`DELETE /api/messages` empties the mailbox. Nothing is delivered anywhere: every mail stays
here, at most `capacity` of them and `max_total_bytes` in all (the oldest go first), each at most
`max_message_bytes`.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from types import MappingProxyType
from typing import Any

from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cxloop.web.background import BackgroundServer

DEFAULT_CAPACITY = 500
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 100 * 1024 * 1024
_URL = re.compile(r"https?://[^\s<>\"'`\x00-\x1f\x7f]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_SECURITY_HEADERS = MappingProxyType(
    {
        # The page itself needs only its inline style; a mail's HTML inherits this policy inside
        # its srcdoc frame, so it loads nothing from anywhere (no tracking pixels, no scripts).
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
)


@dataclass(frozen=True)
class CaughtMail:
    """One mail as it arrived, with its parts decoded."""

    number: int
    received_at: datetime
    envelope_from: str
    envelope_to: list[str]
    from_: str
    to: str
    subject: str
    text: str
    html: str | None
    size: int
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def links(self) -> list[str]:
        """The http(s) links in the text part, in order."""
        return [_trim_url(m.group(0)) for m in _URL.finditer(self.text)]

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "received_at": self.received_at.isoformat(),
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "from": self.from_,
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "links": self.links,
            "size": self.size,
            "headers": [list(h) for h in self.headers],
        }


def parse_mail(
    number: int, content: bytes, envelope_from: str, envelope_to: list[str]
) -> CaughtMail:
    """Decode a raw message; a malformed one is kept with what could be read of it."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)

    def header(name: str) -> str:
        try:
            return str(message.get(name, "") or "")
        except Exception:  # a header the parser cannot decode: show it raw
            return str(message.get_all(name, [""])[0])

    text, html_part = "", None
    try:
        plain = message.get_body(preferencelist=("plain",))
        if plain is not None:
            text = str(plain.get_content()).replace("\r\n", "\n")
        rich = message.get_body(preferencelist=("html",))
        if rich is not None:
            html_part = str(rich.get_content()).replace("\r\n", "\n")
    except Exception:  # undecodable parts: the raw text is better than nothing
        text = content.decode("utf-8", errors="replace")
    if not text and html_part is None and not message.is_multipart():
        text = content.decode("utf-8", errors="replace")
    try:
        headers = [(name, str(value)) for name, value in message.items()]
    except Exception:  # a header the policy cannot decode: keep the raw text
        headers = [(name, str(value)) for name, value in message.raw_items()]
    return CaughtMail(
        number=number,
        received_at=datetime.now(UTC),
        envelope_from=envelope_from,
        envelope_to=list(envelope_to),
        from_=header("From"),
        to=header("To"),
        subject=header("Subject"),
        text=text,
        html=html_part,
        size=len(content),
        headers=headers,
    )


class Mailbox:
    """The caught mails, newest last, safe to use from any thread. Bounded: at most `capacity`
    mails and `max_total_bytes` of raw mail; the oldest go first."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    ) -> None:
        self._mails: deque[CaughtMail] = deque(maxlen=capacity)
        self._max_total_bytes = max_total_bytes
        self._next_number = 1
        self._changed = threading.Condition()

    def add(
        self, content: bytes, envelope_from: str = "", envelope_to: list[str] | None = None
    ) -> CaughtMail:
        """Keep one raw message; returns it decoded."""
        with self._changed:
            mail = parse_mail(self._next_number, content, envelope_from, envelope_to or [])
            self._next_number += 1
            self._mails.append(mail)
            total = sum(m.size for m in self._mails)
            while len(self._mails) > 1 and total > self._max_total_bytes:
                total -= self._mails.popleft().size
            self._changed.notify_all()
        return mail

    def messages(self) -> list[CaughtMail]:
        with self._changed:
            return list(self._mails)

    def get(self, number: int) -> CaughtMail | None:
        with self._changed:
            return next((m for m in self._mails if m.number == number), None)

    def clear(self) -> None:
        with self._changed:
            self._mails.clear()

    def wait_for(self, matches: Callable[[CaughtMail], bool], timeout: float) -> CaughtMail | None:
        """The first mail that matches, waiting up to `timeout` seconds for it; else None."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((m for m in self._mails if matches(m)), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def __len__(self) -> int:
        with self._changed:
            return len(self._mails)


class _Handler:
    """aiosmtpd's handler: every accepted mail goes into the mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", errors="replace")
        self.mailbox.add(content, envelope.mail_from or "", list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


# -- the web view ----------------------------------------------------------------------------


def _trim_url(url: str) -> str:
    while url and url[-1] in _TRAILING:
        url = url[:-1]
    return url


def linkify(text: str) -> str:
    """Plain text as HTML: everything escaped, http(s) links made clickable."""
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = _trim_url(match.group(0))
        out.append(html.escape(text[position : match.start()]))
        out.append(
            f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer" '
            f'target="_blank">{html.escape(url)}</a>'
        )
        position = match.start() + len(url)
    out.append(html.escape(text[position:]))
    return "".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;border-bottom:1px
solid #ddd;vertical-align:top}pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;
padding:1rem}iframe{width:100%;height:30rem;border:1px solid #ccc}dt{font-weight:bold}
dd{margin:0 0 .4rem 0}.muted{color:#666}
"""


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(document, headers=_SECURITY_HEADERS)


def create_web_app(mailbox: Mailbox) -> Starlette:
    """The mail catcher's web view and JSON API over `mailbox`."""

    async def index(_request: Request) -> Response:
        mails = list(reversed(mailbox.messages()))
        if mails:
            rows = "".join(
                f'<tr><td><a href="/messages/{m.number}">#{m.number}</a></td>'
                f"<td>{html.escape(m.to or ', '.join(m.envelope_to))}</td>"
                f'<td><a href="/messages/{m.number}">{html.escape(m.subject or "(no subject)")}'
                f"</a></td><td>{m.received_at:%Y-%m-%d %H:%M:%S} UTC</td></tr>"
                for m in mails
            )
            listing = (
                "<table><thead><tr><th>#</th><th>To</th><th>Subject</th><th>Received</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>"
            )
        else:
            listing = '<p class="muted">No mail yet. This page refreshes every 5 seconds.</p>'
        return _page(
            "Mail catcher",
            f"<h1>Mail catcher</h1><p class=muted>{len(mails)} mail(s); nothing here is "
            f"delivered anywhere.</p>{listing}",
            refresh=True,
        )

    async def show(request: Request) -> Response:
        mail = _mail_of(request)
        if mail is None:
            return _page("Not found", "<h1>No such mail</h1><p><a href='/'>All mails</a></p>")
        facts = "".join(
            f"<dt>{label}</dt><dd>{html.escape(value)}</dd>"
            for label, value in (
                ("From", mail.from_),
                ("To", mail.to),
                ("Subject", mail.subject),
                ("Received", f"{mail.received_at:%Y-%m-%d %H:%M:%S} UTC"),
                ("Envelope", f"{mail.envelope_from} → {', '.join(mail.envelope_to)}"),
            )
        )
        body = (
            f"<p><a href='/'>← All mails</a></p><h1>{html.escape(mail.subject or '(no subject)')}"
            f"</h1><dl>{facts}</dl><h2>Text</h2><pre>{linkify(mail.text)}</pre>"
        )
        if mail.html is not None:
            # Untrusted HTML: only in a sandbox (no scripts, forms, popups or same origin).
            body += (
                '<h2>HTML</h2><iframe sandbox="" referrerpolicy="no-referrer" title="HTML part" '
                f'srcdoc="{html.escape(mail.html, quote=True)}"></iframe>'
            )
        return _page(mail.subject or "Mail", body)

    async def api_list(_request: Request) -> Response:
        return JSONResponse([m.as_json() for m in mailbox.messages()], headers=_SECURITY_HEADERS)

    async def api_show(request: Request) -> Response:
        mail = _mail_of(request)
        if mail is None:
            return JSONResponse({"error": "no such mail"}, status_code=404)
        return JSONResponse(mail.as_json(), headers=_SECURITY_HEADERS)

    async def api_clear(_request: Request) -> Response:
        mailbox.clear()
        return Response(status_code=204)

    def _mail_of(request: Request) -> CaughtMail | None:
        text = request.path_params["number"]
        return mailbox.get(int(text)) if text.isdecimal() and len(text) < 12 else None

    return Starlette(
        routes=[
            Route("/", index),
            Route("/messages/{number}", show),
            Route("/api/messages", api_list, methods=["GET"]),
            Route("/api/messages", api_clear, methods=["DELETE"]),
            Route("/api/messages/{number}", api_show),
        ]
    )


# -- both servers together -------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MailCatcher:
    """The SMTP server and the web view, each in its own thread. Port 0 picks a free port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        web_port: int | None = 0,
        capacity: int = DEFAULT_CAPACITY,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.host = host
        self.mailbox = Mailbox(capacity)
        # aiosmtpd checks it is up by connecting to the port it was given: it needs a real one.
        self.smtp_port = smtp_port or free_port(host)
        self._controller = Controller(
            _Handler(self.mailbox),
            hostname=host,
            port=self.smtp_port,
            data_size_limit=max_message_bytes,
            enable_SMTPUTF8=True,
        )
        self._web_port = web_port
        self._web: BackgroundServer | None = None

    @property
    def web_url(self) -> str | None:
        return self._web.url if self._web else None

    def start(self) -> MailCatcher:
        self._controller.start()
        if self._web_port is not None:
            try:
                self._web = BackgroundServer(
                    host=self.host, port=self._web_port, name="mail-catcher-web"
                )
                self._web.start(create_web_app(self.mailbox), grace_s=1.0)
            except BaseException:
                self._controller.stop()
                raise
        return self

    def stop(self) -> None:
        try:
            if self._web is not None:
                self._web.stop()
        finally:
            self._controller.stop()

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
