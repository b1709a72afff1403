"""HTTP helpers shared by the routers: JSON responses, Salesforce error responses, and dropping
a connection on purpose (fault injection)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import Request, Response

from .errors import OAuthError, SalesforceError

JSON_TYPE = "application/json;charset=UTF-8"
RAW_SEND_KEY = "sfemu.raw_send"


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised to an in-process (ASGI) client where a real server would close the connection:
    the same exception family httpx raises for a server that disconnects without answering."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with Salesforce's content type; 204 has no body."""
    if status == 204 or body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type=JSON_TYPE,
        headers=headers,
    )


def error_response(error: SalesforceError, headers: dict[str, str] | None = None) -> Response:
    """The REST error envelope for a SalesforceError."""
    merged = dict(error.headers)
    merged.update(headers or {})
    return json_response(error.body(), error.status, merged)


def oauth_error_response(error: OAuthError) -> Response:
    """The OAuth error object."""
    return json_response(
        error.body(), error.status, {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"}
    )


def revoke_error_response(error: OAuthError) -> Response:
    """A revoke endpoint error: Salesforce answers these form-encoded, not as JSON
    (``error=unsupported_token_type&error_description=this%20token%20type%20is%20not%20supported``;
    jsforce's OAuth2.revokeToken parses the body as a query string)."""
    body = "&".join(
        f"{name}={quote(value, safe='')}"
        for name, value in (("error", error.error), ("error_description", error.description))
    )
    return Response(
        content=body,
        status_code=error.status,
        media_type="application/x-www-form-urlencoded;charset=UTF-8",
        headers={"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"},
    )


def request_base_url(request: Request) -> str:
    """The scheme://host[:port] the client used, with any root path, without a trailing slash."""
    return str(request.base_url).rstrip("/")


async def drop_connection(request: Request) -> Response:
    """Close the client's connection without an answer.

    Under uvicorn the raw ASGI ``send`` belongs to the connection's request cycle, which holds
    the transport: aborting it resets the connection before any byte of a response is written
    (uvicorn then ignores what the app sends). In process there is no socket; the closest
    equivalent is raising the exception an httpx client gets for a dropped connection.
    """
    raw_send = request.scope.get(RAW_SEND_KEY)
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        # Let the event loop run connection_lost so uvicorn marks the cycle disconnected.
        for _ in range(3):
            await asyncio.sleep(0)
        return Response(status_code=500)
    raise ConnectionDropped("Server disconnected without sending a response.")
