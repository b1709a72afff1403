"""Bulk API 1.0 (not emulated) and Bulk API 2.0 (ingest and query jobs).

Bulk API 1.0 lives under ``/services/async/NN.0/`` and errs with ``<error><exceptionCode>`` in
XML (or the same keys in JSON when the client speaks JSON); :data:`router` answers every call
with ``FeatureNotEnabled`` saying it is not emulated, so a client can tell that from a wrong URL.

Bulk API 2.0 lives under the REST API (``/services/data/vNN.0/jobs/ingest|query``) and errs in
the REST envelope; ``rest.dispatch`` sends its ``jobs`` paths to :func:`handle`, and the jobs
live in :class:`sfemu.bulk2.BulkJobs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response

from .httputil import json_response

if TYPE_CHECKING:
    from .restbase import RestContext, RestResult

router = APIRouter()

BULK1_NAMESPACE = "http://www.force.com/2009/06/asyncapi/dataload"
BULK1_MESSAGE = (
    "Bulk API 1.0 is not emulated by sfemu. Use Bulk API 2.0"
    " (/services/data/vNN.0/jobs/ingest) or sObject Collections"
    " (/services/data/vNN.0/composite/sobjects, up to 200 records per call) instead."
)


def handle(
    ctx: RestContext, method: str, parts: list[str], params: dict[str, list[str]], body: Any
) -> RestResult:
    """A Bulk API 2.0 call (``/jobs/...``; ``parts`` is the path after ``jobs``)."""
    return ctx.emulator.bulk.handle(ctx, method, parts, params, body)


def _wants_json(request: Request) -> bool:
    # Bulk API 1.0 answers in the format of the request: JSON for application/json bodies
    # (jobs created with contentType JSON), XML otherwise.
    kinds = f"{request.headers.get('content-type', '')} {request.headers.get('accept', '')}"
    return "json" in kinds.lower()


async def bulk1(request: Request) -> Response:
    """Any Bulk API 1.0 call: 400 ``FeatureNotEnabled`` saying it is not emulated."""
    code = "FeatureNotEnabled"
    if _wants_json(request):
        return json_response({"exceptionCode": code, "exceptionMessage": BULK1_MESSAGE}, 400)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<error xmlns="{BULK1_NAMESPACE}">'
        f"<exceptionCode>{code}</exceptionCode>"
        f"<exceptionMessage>{escape(BULK1_MESSAGE)}</exceptionMessage>"
        "</error>"
    )
    return Response(content=xml, status_code=400, media_type="application/xml;charset=UTF-8")


router.add_route(
    "/services/async/{bulk_path:path}",
    bulk1,
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
