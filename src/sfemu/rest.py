"""The REST API under /services/data: versions, resources, sObjects, query, limits, describe.

One catch-all route does what every call shares (version, session, faults, API allocation,
Sforce-Limit-Info, the transaction) and hands the rest of the path to ``dispatch``, which
Composite also uses for its subrequests.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request, Response

from . import bulk, composite, ids
from . import collections as sobject_collections
from .describe import basic_info, describe_global, describe_object
from .dml import MultipleMatches, RecordFailure, render_record
from .errors import SalesforceError, not_found
from .httputil import drop_connection, error_response, json_response, request_base_url
from .limits import limit_info_header, limits_body
from .permissions import can_see
from .restbase import RestContext, RestResult, allow, parse_json_body
from .schema import FieldDef, SObjectDef
from .validation import coerce

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger("sfemu.rest")

router = APIRouter()

_VERSION = re.compile(r"^v(\d+\.\d)(/.*)?$")


def version_label(version: str) -> str:
    """The release name of an API version: 21.0 is Spring '11, 62.0 is Winter '25."""
    index = int(float(version)) - 21
    season = ("Spring", "Summer", "Winter")[index % 3]
    year = 11 + index // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02d}"


def versions_body(versions: list[str]) -> list[dict[str, str]]:
    """GET /services/data/."""
    return [
        {"label": version_label(v), "url": f"/services/data/v{v}", "version": v} for v in versions
    ]


def dispatch(
    ctx: RestContext, method: str, path: str, params: dict[str, list[str]], body: Any
) -> RestResult:
    """Route one call (a top-level call or a Composite subrequest) by method and path."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    method = method.upper()
    head = parts[0] if parts else ""
    if not parts:
        allow(method, "GET")
        return RestResult(200, resources_body(ctx.version))
    if head == "limits" and len(parts) == 1:
        allow(method, "GET")
        used = ctx.emulator.usage[ctx.caller.org.id].used()
        return RestResult(
            200, limits_body(used, ctx.caller.org.daily_api_limit, ctx.caller.version_number)
        )
    if head == "sobjects":
        return _sobjects(ctx, method, parts[1:], params, body)
    if head in ("query", "queryAll") and len(parts) <= 2:
        allow(method, "GET")
        return _query(ctx, head == "queryAll", parts[1] if len(parts) == 2 else None, params)
    if head == "jobs":
        return bulk.handle(ctx, method, parts[1:], params, body)
    if head == "composite":
        if len(parts) >= 2 and parts[1] == "sobjects":
            return sobject_collections.handle(ctx, method, parts[2:], params, body)
        if len(parts) == 1:
            allow(method, "POST")
            return composite.handle(ctx, parse_json_body(body))
    raise not_found()


def resources_body(version: str) -> dict[str, str]:
    """GET /services/data/vXX.X/: the resources this version offers."""
    base = f"/services/data/v{version}"
    return {
        name: f"{base}/{name}"
        for name in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
    }


# -- sObjects -------------------------------------------------------------------------------


def _sobjects(
    ctx: RestContext, method: str, parts: list[str], params: dict[str, list[str]], body: Any
) -> RestResult:
    if not parts:
        allow(method, "GET")
        return RestResult(200, describe_global(ctx.caller))
    sobject = ctx.sobject(parts[0])
    if len(parts) == 1:
        allow(method, "GET", "POST")
        if method == "GET":
            return RestResult(200, basic_info(ctx.caller, sobject))
        return _create(ctx, sobject, parse_json_body(body))
    if len(parts) == 2 and parts[1] == "describe":
        allow(method, "GET")
        return RestResult(200, describe_object(ctx.caller, sobject))
    if len(parts) == 2:
        allow(method, "GET", "PATCH", "DELETE")
        return _by_id(ctx, method, sobject, parts[1], params, body)
    if len(parts) == 3:
        allow(method, "GET", "PATCH", "DELETE")
        return _by_external_id(ctx, method, sobject, parts[1], parts[2], params, body)
    raise not_found()


def _create(ctx: RestContext, sobject: SObjectDef, body: Any) -> RestResult:
    values = ctx.dml.read_body(sobject, body)
    try:
        record_id = ctx.dml.create(sobject, values)
    except RecordFailure as failure:
        raise SalesforceError.from_record_error(failure.error) from None
    return RestResult(
        201,
        {"id": record_id, "success": True, "errors": []},
        {"Location": f"/services/data/v{ctx.version}/sobjects/{sobject.name}/{record_id}"},
    )


def _not_external_id(value: str) -> SalesforceError:
    return not_found(f"Provided external ID field does not exist or is not accessible: {value}")


def _record_id_for(sobject: SObjectDef, value: str) -> str | None:
    normalized = ids.try_normalize(value)
    if normalized is None or normalized[:3] != sobject.key_prefix:
        return None
    return normalized


def _visible(ctx: RestContext, sobject: SObjectDef, record_id: str) -> dict[str, Any]:
    record = ctx.emulator.table(ctx.caller.org, sobject).get(record_id)
    view = ctx.caller.view(sobject)
    if record is None or not can_see(view, ctx.caller.user.id, record):
        raise not_found()
    if record.get("IsDeleted"):
        raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [], code_first=True)
    return record


def _fields_param(
    ctx: RestContext, sobject: SObjectDef, params: dict[str, list[str]]
) -> list | None:
    raw = params.get("fields")
    if not raw:
        return None
    view = ctx.caller.view(sobject)
    fields = []
    for name in ",".join(raw).split(","):
        name = name.strip()
        if not name:
            continue
        fdef = view.field(name)
        if fdef is None:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{sobject.name}'. If you are attempting to use"
                " a custom field, be sure to append the '__c' after the custom field name. Please"
                " reference your WSDL or the"
                " describe call for the appropriate names.",
            )
        fields.append(fdef)
    return fields


def _get(
    ctx: RestContext, sobject: SObjectDef, record: dict[str, Any], params: dict[str, list[str]]
) -> RestResult:
    view = ctx.caller.view(sobject)
    return RestResult(
        200, render_record(view, record, ctx.version, _fields_param(ctx, sobject, params))
    )


def _by_id(
    ctx: RestContext,
    method: str,
    sobject: SObjectDef,
    value: str,
    params: dict[str, list[str]],
    body: Any,
) -> RestResult:
    record_id = _record_id_for(sobject, value)
    if record_id is None:
        raise _not_external_id(value)
    record = _visible(ctx, sobject, record_id)
    if method == "GET":
        return _get(ctx, sobject, record, params)
    try:
        if method == "PATCH":
            ctx.dml.update(sobject, record_id, ctx.dml.read_body(sobject, parse_json_body(body)))
        else:
            ctx.dml.delete(record_id, sobject)
    except RecordFailure as failure:
        raise SalesforceError.from_record_error(failure.error) from None
    return RestResult(204)


def _external_field(ctx: RestContext, sobject: SObjectDef, name: str) -> FieldDef:
    fdef = ctx.caller.view(sobject).field(name)
    if fdef is None or not (
        fdef.external_id or fdef.name == "Id" or (fdef.id_lookup and fdef.unique)
    ):
        raise _not_external_id(name)
    return fdef


def _multiple(ctx: RestContext, sobject: SObjectDef, matches: list[str]) -> RestResult:
    return RestResult(
        300, [f"/services/data/v{ctx.version}/sobjects/{sobject.name}/{rid}" for rid in matches]
    )


def _by_external_id(
    ctx: RestContext,
    method: str,
    sobject: SObjectDef,
    field_name: str,
    raw_value: str,
    params: dict[str, list[str]],
    body: Any,
) -> RestResult:
    fdef = _external_field(ctx, sobject, field_name)
    if method == "PATCH":
        values = ctx.dml.read_body(sobject, parse_json_body(body))
        key_value = coerce(fdef, raw_value) if fdef.name != "Id" else raw_value
        try:
            record_id, created = ctx.dml.upsert(sobject, fdef, key_value, values)
        except MultipleMatches as multiple:
            return _multiple(ctx, sobject, multiple.record_ids)
        except RecordFailure as failure:
            if failure.error.code == "INVALID_CROSS_REFERENCE_KEY" and fdef.name == "Id":
                raise not_found() from None
            raise SalesforceError.from_record_error(failure.error) from None
        modern = ctx.caller.version_number >= 46.0
        if created:
            result = {"id": record_id, "success": True, "errors": []}
            if modern:
                result["created"] = True
            return RestResult(201, result)
        if modern:
            return RestResult(
                200, {"id": record_id, "success": True, "errors": [], "created": False}
            )
        return RestResult(204)
    if fdef.name == "Id":
        return _by_id(ctx, method, sobject, raw_value, params, body)
    matches = ctx.dml.find_by_key(sobject, fdef, coerce(fdef, raw_value))
    if not matches:
        raise not_found()
    if len(matches) > 1:
        return _multiple(ctx, sobject, matches)
    record = _visible(ctx, sobject, matches[0])
    if method == "GET":
        return _get(ctx, sobject, record, params)
    try:
        ctx.dml.delete(matches[0], sobject)
    except RecordFailure as failure:
        raise SalesforceError.from_record_error(failure.error) from None
    return RestResult(204)


# -- query ----------------------------------------------------------------------------------


def _query(
    ctx: RestContext, include_deleted: bool, locator: str | None, params: dict[str, list[str]]
) -> RestResult:
    queries = ctx.emulator.queries
    if locator:
        return RestResult(200, queries.more(ctx.caller, locator))
    text = (params.get("q") or [""])[0]
    if not text.strip():
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
    batch_size = ctx.emulator.settings.query_batch_size
    options = ctx.headers.get("sforce-query-options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", options)
    if match:
        batch_size = max(200, min(2000, int(match.group(1))))
    return RestResult(
        200, queries.run(ctx.caller, text, include_deleted=include_deleted, batch_size=batch_size)
    )


# -- the HTTP entry point -------------------------------------------------------------------


def _fault_result(
    fault: Any, method: str, path: str, params: dict[str, list[str]], body: bytes
) -> RestResult:
    """What a firing error fault answers: Collections writes fail per record (HTTP 200)."""
    is_collection_write = path.startswith("/composite/sobjects") and method in (
        "POST",
        "PATCH",
        "DELETE",
    )
    if fault.error == "UNABLE_TO_LOCK_ROW" and is_collection_write:
        return RestResult(200, sobject_collections.lock_failures(method, params, body))
    # Salesforce names the locked record when the call is about one.
    last_segment = path.rstrip("/").rsplit("/", 1)[-1]
    error = fault.rest_error(ids.try_normalize(last_segment) or "")
    return RestResult(error.status, error.body())


async def list_versions(request: Request) -> Response:
    """The versions list: no session needed, not counted against the allocation."""
    emulator: Emulator = request.app.state.emulator
    return json_response(versions_body(emulator.settings.api_versions))


async def rest_call(request: Request) -> Response:
    """Every versioned REST call."""
    rest_path: str = request.path_params["rest_path"]
    emulator: Emulator = request.app.state.emulator
    emulator.note_base_url(request_base_url(request))
    match = _VERSION.match(rest_path)
    if match is None or match.group(1) not in emulator.settings.api_versions:
        return error_response(not_found())
    version, sub_path = match.group(1), match.group(2) or "/"
    raw_body = await request.body()
    with emulator.lock:
        try:
            org, user, _session = emulator.authenticate(request.headers.get("authorization"))
        except SalesforceError as exc:
            return error_response(exc)
    # The concurrency rule counts this call from here until it answers.
    try:
        ticket = emulator.in_flight.enter(org.id, org.latency)
    except SalesforceError as exc:
        return error_response(exc)
    try:
        return await _counted_call(request, emulator, org, user, version, sub_path, raw_body)
    finally:
        emulator.in_flight.leave(org.id, ticket)


async def _counted_call(
    request: Request,
    emulator: Emulator,
    org: Any,
    user: Any,
    version: str,
    sub_path: str,
    raw_body: bytes,
) -> Response:
    method = request.method
    with emulator.lock:
        decision = emulator.faults.decide("rest", org.id, user.username, method, sub_path)
    # The latency model's fixed delay, then a fault's: awaited, so other calls go on meanwhile.
    delay = org.latency.call_delay_s() + decision.latency_ms / 1000
    if delay:
        await asyncio.sleep(delay)
    if decision.mode == "drop":
        return await drop_connection(request)
    fault = decision.fault
    if fault is not None and fault.mode == "error" and fault.error == "INVALID_SESSION_ID":
        return error_response(fault.rest_error())
    records = 0
    with emulator.lock:
        try:
            used = emulator.count_call(org)
        except SalesforceError as exc:
            used = emulator.usage[org.id].used()
            return error_response(
                exc, {"Sforce-Limit-Info": limit_info_header(used, org.daily_api_limit)}
            )
        limit_header = {"Sforce-Limit-Info": limit_info_header(used, org.daily_api_limit)}
        params = parse_qs(request.url.query, keep_blank_values=True)
        if fault is not None and fault.mode == "error":
            result = _fault_result(fault, method, sub_path, params, raw_body)
        else:
            ctx = RestContext(
                emulator,
                emulator.caller(org, user, version),
                emulator.transaction(),
                {k.lower(): v for k, v in request.headers.items()},
            )
            try:
                result = dispatch(
                    ctx, "GET" if method == "HEAD" else method, sub_path, params, raw_body
                )
                ctx.txn.commit()
            except SalesforceError as exc:
                ctx.txn.rollback()
                result = RestResult(exc.status, exc.body(), exc.headers)
            except Exception:
                # Never a bare 500 page: Salesforce answers UNKNOWN_EXCEPTION with an envelope.
                log.exception("unexpected error in %s %s", method, sub_path)
                ctx.txn.rollback()
                result = RestResult(
                    500,
                    [
                        {
                            "message": "An unexpected error occurred in sfemu; see its log.",
                            "errorCode": "UNKNOWN_EXCEPTION",
                        }
                    ],
                )
            records = ctx.records
    # The per-record delay of a Collections or Composite call (Bulk jobs sleep per chunk).
    delay = org.latency.records_delay_s(records)
    if delay:
        await asyncio.sleep(delay)
    if decision.mode == "commit_then_drop":
        return await drop_connection(request)
    headers = {k: v for k, v in result.headers.items() if k != "Location"}
    headers.update(limit_header)
    if method == "HEAD":
        return Response(status_code=result.status, headers=headers)
    if result.content is not None:
        return Response(
            content=result.content,
            status_code=result.status,
            media_type=result.content_type,
            headers=headers,
        )
    return json_response(result.body, result.status, headers)


# Plain Starlette routes rather than FastAPI endpoints: no dependency injection to solve on the
# hot path (it is most of a small call's cost), and the REST API is not part of the OpenAPI page.
router.add_route("/services/data", list_versions, methods=["GET"], include_in_schema=False)
router.add_route("/services/data/", list_versions, methods=["GET"], include_in_schema=False)
router.add_route(
    "/services/data/{rest_path:path}",
    rest_call,
    methods=["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"],
    include_in_schema=False,
)
