"""Bulk API 1.0 and 2.0: not emulated; calls get an answer that says so in each API's own error
shape, so that a client can tell "not emulated" from a wrong URL.

Bulk API 2.0 lives under the REST API (``/services/data/vNN.0/jobs/ingest|query``) and errs in
the REST envelope; ``rest.dispatch`` sends its ``jobs`` paths to :func:`bulk2`. Bulk API 1.0
lives under ``/services/async/NN.0/`` and errs with ``<error><exceptionCode>`` in XML (or the
same keys in JSON when the client speaks JSON); :data:`router` answers it. To emulate Bulk API
2.0 later, replace :func:`bulk2` and leave the rest alone.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response

from .errors import SalesforceError
from .httputil import json_response

router = APIRouter()

BULK1_NAMESPACE = "http://www.force.com/2009/06/asyncapi/dataload"
BULK1_MESSAGE = (
    "Bulk API 1.0 is not emulated by sfemu. Use the REST API instead: sObject Collections"
    " (/services/data/vNN.0/composite/sobjects) write up to 200 records per call."
)
BULK2_MESSAGE = (
    "Bulk API 2.0 is not emulated by sfemu yet. Use sObject Collections"
    " (/services/data/vNN.0/composite/sobjects, up to 200 records per call) or SOQL queries"
    " (/services/data/vNN.0/query) instead."
)


def bulk2(_parts: list[str], _method: str, _body: Any) -> SalesforceError:
    """The answer to any Bulk API 2.0 call (``/jobs/...``): 400 FEATURENOTENABLED, the REST
    envelope Bulk API 2.0 uses for its errors, with a message saying it is not emulated."""
    return SalesforceError(400, "FEATURENOTENABLED", BULK2_MESSAGE, code_first=True)


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
