"""POST /hooks/salesforce/outbound/{token}: where Salesforce delivers Outbound Messages.

No session, cookie or API token: the unguessable token in the address names the workflow, and
services/outbound.py checks the rest. Every answer is SOAP (`text/xml`): the Ack with 200, or a
fault with 500 (404 for an unknown token, 413 for a body over the size limit), never an HTML or
JSON error page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cxloop import metrics
from cxloop.domain.outbound_message import MAX_MESSAGE_BYTES, render_fault
from cxloop.services import outbound, salesforce_apps
from cxloop.web.deps import get_container

router = APIRouter(include_in_schema=False)

SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


@router.post("/hooks/salesforce/outbound/{token}")
async def salesforce_outbound(request: Request, token: str) -> Response:
    body = await _read_limited(request)
    if body is None:
        metrics.OUTBOUND_REJECTED.labels("too_large").inc()
        return _soap(
            413,
            render_fault(
                f"The message is larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB; an "
                "outbound message of 100 notifications is far smaller: send fewer fields."
            ),
        )
    container = get_container(request)
    result = await run_in_threadpool(
        outbound.receive,
        container.db,
        token,
        body,
        request.client.host if request.client else None,
        extra_hosts=await run_in_threadpool(
            salesforce_apps.trusted_hosts_of, container.db, container.settings
        ),
    )
    return _soap(result.status, result.body)


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None as soon as it is larger than an outbound message may be."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_MESSAGE_BYTES:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)


def _soap(status: int, body: bytes) -> Response:
    return Response(content=body, status_code=status, media_type=SOAP_CONTENT_TYPE)
