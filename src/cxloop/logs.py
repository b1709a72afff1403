"""Structured logs: console lines on a TTY, JSON lines otherwise; secrets never printed."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(
    r"(password|secret|token|authorization|access_token|refresh_token|cookie|api_key|key)s?$",
    re.IGNORECASE,
)
REDACTED = "**********"
# Secrets that travel inside text: a bearer token, an API token, the secret segment of an
# address (the outbound listener's and the opt-out page's tokens), and query parameters that
# carry a personal link's token or an OAuth code, state or token. Libraries (uvicorn, httpx,
# SQLAlchemy) and exception messages print addresses with these in them.
_SECRET_TEXT = (
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=!-]+"), r"\1" + REDACTED),
    (re.compile(r"\bcxl_[A-Za-z0-9_-]+"), "cxl_" + REDACTED),
    # (A route's template, `/optout/{token}`, is left as it is.)
    (re.compile(r"(/hooks/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/)(?!\{)[^/?#\s\"'<>]+"), r"\1" + REDACTED),
    (re.compile(r"(/optout/)(?!\{)[^/?#\s\"'<>]+"), r"\1" + REDACTED),
    (
        re.compile(
            r"([?&;](?:t|token|code|state|access_token|refresh_token|id_token|password|"
            r"client_secret|secret|key|sig|signature)=)[^&#\s\"'<>]+",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
)


def redact_text(text: str) -> str:
    """`text` with every secret it may carry (see `_SECRET_TEXT`) masked."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor masking values whose key names a secret, and secrets in text
    (the message itself included: a library's log line is all message)."""
    for key, value in list(event.items()):
        if key != "event" and _SECRET_KEYS.search(key) and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Set up structlog and the standard library's logging to print the same way."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # Dropped first when below the level: the access log's line per request would
        # otherwise be stamped and redacted only for logging to throw it away.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if as_json else (lambda _l, _m, e: e),
                # A traceback's text (formatted just above) may quote an address or a value.
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates ours (which carries the request id).
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's full address at INFO, query string included (an outbound
    # message's delivery, a token exchange), and aiosmtpd (the demo's mail catcher) every line
    # of every mail at DEBUG, links and all: only their warnings are worth a line.
    for chatty in ("httpx", "httpcore", "mail.log"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
    # Huey logs every task it runs; the sweeper alone would fill the log every few seconds.
    logging.getLogger("huey").setLevel(max(root.level, logging.WARNING))
