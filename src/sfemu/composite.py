"""Composite: up to 25 subrequests in one call, later ones using earlier results via
``@{referenceId.field}`` (``@{refAccount.id}``, ``@{refQuery.records[0].Id}``).

The whole call counts as one API request. With ``allOrNone`` the first failing subrequest
rolls everything back; the others answer 400 PROCESSING_HALTED. Without it, a subrequest that
refers to a failed one fails with PROCESSING_HALTED and the rest proceed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .dml import Caller
from .errors import SalesforceError, json_parser_error
from .restbase import RestContext, RestResult

MAX_SUBREQUESTS = 25
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_URL = re.compile(r"^/services/data/v(\d+\.\d)(/.*)$")
ROLLED_BACK = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same"
        " transaction failed.",
    }
]


class UnresolvedReference(Exception):
    """A ``@{...}`` reference to a result that does not exist or failed."""


def _resolve(expression: re.Match[str], results: dict[str, Any]) -> Any:
    ref_id, path = expression.group(1), expression.group(2)
    if ref_id not in results:
        raise UnresolvedReference(expression.group(0))
    value = results[ref_id]
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = step
        try:
            value = value[int(index)] if index else value[name]
        except (KeyError, IndexError, TypeError):
            raise UnresolvedReference(expression.group(0)) from None
    if value is None or isinstance(value, dict | list):
        raise UnresolvedReference(expression.group(0))
    return value


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace references in a subrequest body or URL (a whole-string reference keeps its type)."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _resolve(whole, results)
        return _REFERENCE.sub(lambda m: str(_resolve(m, results)), value)
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    return value


def handle(ctx: RestContext, payload: Any) -> RestResult:
    """POST /composite."""
    from .rest import RestResult

    if not isinstance(payload, dict) or not isinstance(payload.get("compositeRequest"), list):
        raise json_parser_error(
            'Cannot deserialize the request body: expected an object with "compositeRequest"'
        )
    subrequests = payload["compositeRequest"]
    if not subrequests:
        raise SalesforceError(
            400, "INVALID_BATCH_REQUEST", "compositeRequest must contain at least one subrequest"
        )
    if len(subrequests) > MAX_SUBREQUESTS:
        raise SalesforceError(
            400,
            "LIMIT_EXCEEDED",
            f"Composite requests support at most {MAX_SUBREQUESTS} subrequests;"
            f" got {len(subrequests)}",
        )
    all_or_none = payload.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise json_parser_error(f"Cannot deserialize instance of boolean from value {all_or_none}")
    seen_ids: set[str] = set()
    for index, sub in enumerate(subrequests):
        if not isinstance(sub, dict):
            raise json_parser_error(f"compositeRequest[{index}] is not an object")
        for key in ("method", "url", "referenceId"):
            if not isinstance(sub.get(key), str) or not sub[key]:
                raise SalesforceError(
                    400, "INVALID_BATCH_REQUEST", f"compositeRequest[{index}]: {key} is required"
                )
        if not _REFERENCE_ID.match(sub["referenceId"]) or sub["referenceId"] in seen_ids:
            raise SalesforceError(
                400,
                "INVALID_BATCH_REQUEST",
                f"compositeRequest[{index}]: referenceId {sub['referenceId']!r} must be unique"
                " letters, digits, _",
            )
        seen_ids.add(sub["referenceId"])

    savepoint = ctx.txn.savepoint()
    bodies: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    failed = False
    for sub in subrequests:
        reference_id = sub["referenceId"]
        if failed and all_or_none:
            responses.append(_entry(reference_id, 400, ROLLED_BACK))
            continue
        try:
            url = substitute(sub["url"], bodies)
            body = substitute(sub.get("body"), bodies)
        except UnresolvedReference as missing:
            failed = True
            responses.append(
                _entry(
                    reference_id,
                    400,
                    [
                        {
                            "errorCode": "PROCESSING_HALTED",
                            "message": f"Invalid reference specified. No value for {missing} found"
                            " in the results of earlier"
                            f" subrequests. Provided referenceId ({reference_id}).",
                        }
                    ],
                )
            )
            continue
        result = _run(ctx, str(sub["method"]).upper(), str(url), body)
        if result.status < 300:
            bodies[reference_id] = result.body
        else:
            failed = True
        headers = {k: v for k, v in result.headers.items() if k == "Location"}
        responses.append(_entry(reference_id, result.status, result.body, headers))
    if failed and all_or_none:
        ctx.txn.rollback(savepoint)
        for response in responses:
            if response["httpStatusCode"] < 300:
                response.update({"body": ROLLED_BACK, "httpHeaders": {}, "httpStatusCode": 400})
    return RestResult(200, {"compositeResponse": responses})


def _entry(
    reference_id: str, status: int, body: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "body": body,
        "httpHeaders": headers or {},
        "httpStatusCode": status,
        "referenceId": reference_id,
    }


def _run(ctx: RestContext, method: str, url: str, body: Any) -> RestResult:
    # Subrequests go through the same router as top-level calls (rest imports this module).
    from .rest import dispatch

    parts = urlsplit(url)
    match = _URL.match(parts.path)
    if match is None or match.group(1) not in ctx.emulator.settings.api_versions:
        error = SalesforceError(
            404, "NOT_FOUND", "The requested resource does not exist", code_first=True
        )
        return RestResult(error.status, error.body())
    path = match.group(2)
    if (
        path.rstrip("/") == "/composite"
        or path.startswith("/composite/batch")
        or path.startswith("/composite/tree")
    ):
        error = SalesforceError(
            400, "INVALID_BATCH_REQUEST", "Composite subrequests cannot be composite requests"
        )
        return RestResult(error.status, error.body())
    caller = Caller(ctx.caller.org, ctx.caller.user, match.group(1), ctx.caller.system)
    sub_ctx = RestContext(ctx.emulator, caller, ctx.txn, ctx.headers)
    savepoint = ctx.txn.savepoint()
    try:
        return dispatch(
            sub_ctx,
            method,
            path,
            parse_qs(parts.query, keep_blank_values=True),
            body if body is not None else b"",
        )
    except SalesforceError as exc:
        ctx.txn.rollback(savepoint)
        return RestResult(exc.status, exc.body())
    finally:
        # A subrequest handles one record, a Collections subrequest its records.
        ctx.records += max(1, sub_ctx.records)
