"""sObject Collections: up to 200 records per call, one result per record in request order.

POST (create), PATCH (update), DELETE (by ``ids``), PATCH ``/{object}/{externalIdField}``
(upsert) and GET/POST ``/{object}`` (retrieve). A malformed request fails as a whole (400);
otherwise the answer is 200 with per-record results whose errors use ``statusCode``. With
``allOrNone`` a single failure rolls every record back, the others reporting
ALL_OR_NONE_OPERATION_ROLLED_BACK.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from . import ids
from .dml import MultipleMatches, RecordFailure, render_record
from .errors import RecordError, SalesforceError, json_parser_error, not_found, unknown_sobject_type
from .permissions import can_see
from .restbase import RestContext, RestResult, allow, parse_json_body
from .schema import SObjectDef

MAX_RECORDS = 200
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone"
    " header",
)


def _result(status: int, body: Any) -> RestResult:
    return RestResult(status, body)


def _too_many() -> SalesforceError:
    return SalesforceError(
        400,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )


def handle(
    ctx: RestContext, method: str, parts: list[str], params: dict[str, list[str]], body: Any
) -> RestResult:
    """Route a /composite/sobjects call."""
    if not parts:
        allow(method, "POST", "PATCH", "DELETE")
        if method == "DELETE":
            return _delete(ctx, params)
        payload = parse_json_body(body)
        return _create(ctx, payload) if method == "POST" else _update(ctx, payload)
    sobject = ctx.sobject(parts[0])
    if len(parts) == 1:
        allow(method, "GET", "POST")
        if method == "GET":
            return _retrieve(ctx, sobject, _split(params.get("ids")), _split(params.get("fields")))
        payload = parse_json_body(body)
        if not isinstance(payload, dict):
            raise json_parser_error("Expected an object with ids and fields")
        return _retrieve(
            ctx, sobject, list(payload.get("ids") or []), list(payload.get("fields") or [])
        )
    if len(parts) == 2:
        allow(method, "PATCH")
        return _upsert(ctx, sobject, parts[1], parse_json_body(body))
    raise not_found()


def _split(values: list[str] | None) -> list[str]:
    return [item.strip() for item in ",".join(values or []).split(",") if item.strip()]


def _records_payload(payload: Any) -> tuple[list[Any], bool]:
    if not isinstance(payload, dict):
        raise json_parser_error(
            'Cannot deserialize the request body: expected an object with "records"'
        )
    records = payload.get("records")
    if not isinstance(records, list):
        raise json_parser_error('Cannot deserialize the request body: "records" must be an array')
    all_or_none = payload.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise json_parser_error(f"Cannot deserialize instance of boolean from value {all_or_none}")
    if len(records) > MAX_RECORDS:
        raise _too_many()
    return records, all_or_none


def _typed_records(
    ctx: RestContext, records: list[Any], forced: SObjectDef | None = None
) -> list[tuple[SObjectDef, dict[str, Any], Any]]:
    """Deserialise every record first: a type or field problem fails the whole call."""
    parsed = []
    for record in records:
        if not isinstance(record, dict):
            raise json_parser_error(
                "Cannot deserialize instance of SObject from a non-object value"
            )
        attributes = record.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if not type_name:
            if forced is None:
                raise SalesforceError(
                    400,
                    "INVALID_TYPE",
                    "Must specify a type in the attributes field for each record",
                )
            type_name = forced.name
        sobject = ctx.caller.org.sobject(str(type_name))
        if sobject is None or not ctx.caller.view(sobject).perms.read:
            raise SalesforceError(400, "INVALID_TYPE", unknown_sobject_type(str(type_name)))
        values = ctx.dml.read_body(sobject, record)
        # read_body resolves field names case-insensitively ("id", "ID", "Id" are all the Id
        # field, as in Salesforce, whose own update example sends "id").
        parsed.append((sobject, values, values.get("Id")))
    return parsed


def _finish(
    ctx: RestContext, results: list[dict[str, Any]], all_or_none: bool, savepoint: int
) -> RestResult:
    ctx.records += len(results)
    if all_or_none and any(not r["success"] for r in results):
        ctx.txn.rollback(savepoint)
        for result in results:
            if result["success"]:
                result.clear()
                result.update(_failure(ROLLED_BACK))
    return _result(200, results)


def _create(ctx: RestContext, payload: Any) -> RestResult:
    records, all_or_none = _records_payload(payload)
    parsed = _typed_records(ctx, records)
    savepoint = ctx.txn.savepoint()
    results: list[dict[str, Any]] = []
    create = ctx.dml.create
    for sobject, values, given_id in parsed:
        if given_id:
            error = RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            results.append(_failure(error))
            continue
        try:
            results.append({"id": create(sobject, values), "success": True, "errors": []})
        except RecordFailure as failure:
            results.append(_failure(failure.error))
    return _finish(ctx, results, all_or_none, savepoint)


def _update(ctx: RestContext, payload: Any) -> RestResult:
    records, all_or_none = _records_payload(payload)
    parsed = _typed_records(ctx, records)
    savepoint = ctx.txn.savepoint()
    results: list[dict[str, Any]] = []
    for sobject, values, given_id in parsed:
        if not given_id:
            error = RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            results.append({"id": None, **_failure(error)})
            continue
        try:
            record_id = ctx.dml.update(sobject, str(given_id), values)
            results.append({"id": record_id, "success": True, "errors": []})
        except RecordFailure as failure:
            results.append(_failed(given_id, failure))
    return _finish(ctx, results, all_or_none, savepoint)


def _delete(ctx: RestContext, params: dict[str, list[str]]) -> RestResult:
    record_ids = _split(params.get("ids"))
    if not record_ids:
        raise SalesforceError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(record_ids) > MAX_RECORDS:
        raise _too_many()
    all_or_none = (params.get("allOrNone") or ["false"])[0].lower() == "true"
    savepoint = ctx.txn.savepoint()
    results: list[dict[str, Any]] = []
    for record_id in record_ids:
        try:
            deleted = ctx.dml.delete(record_id)
            results.append({"id": deleted, "success": True, "errors": []})
        except RecordFailure as failure:
            results.append(_failed(record_id, failure))
    return _finish(ctx, results, all_or_none, savepoint)


def _failed(given_id: Any, failure: RecordFailure) -> dict[str, Any]:
    """A record's failed result, under the id it was given by (normalised to 18 characters
    when it is an id at all)."""
    shown = ids.try_normalize(given_id) or given_id
    return {"id": shown, **_failure(failure.error)}


def _failure(error: RecordError) -> dict[str, Any]:
    """A record's failed result in a Collections reply (its id, when it has one, goes first)."""
    return {"success": False, "errors": [error.as_collection()]}


def _upsert(ctx: RestContext, sobject: SObjectDef, field_name: str, payload: Any) -> RestResult:
    fdef = ctx.caller.view(sobject).field(field_name)
    if fdef is None or not (fdef.external_id or fdef.name == "Id"):
        raise SalesforceError(
            400,
            "INVALID_FIELD",
            f"Provided external ID field does not exist or is not accessible: {field_name}",
        )
    records, all_or_none = _records_payload(payload)
    parsed = _typed_records(ctx, records, forced=sobject)
    for record_type, _values, _id in parsed:
        if record_type is not sobject:
            raise SalesforceError(
                400, "INVALID_TYPE", f"All records must be of type {sobject.name}"
            )
    keys = [values.get(fdef.name) if fdef.name != "Id" else given for _t, values, given in parsed]
    # Two records of one call with the same key (as the field compares them) both fail.
    compared_keys = [
        None if key is None else (key if fdef.case_sensitive else str(key).lower()) for key in keys
    ]
    times = Counter(k for k in compared_keys if k is not None)
    savepoint = ctx.txn.savepoint()
    results: list[dict[str, Any]] = []
    for (_sobject, values, _given), key, compared in zip(parsed, keys, compared_keys, strict=True):
        if compared is not None and times[compared] > 1:
            error = RecordError(
                "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", [fdef.name]
            )
            results.append(_failure(error))
            continue
        try:
            record_id, created = ctx.dml.upsert(sobject, fdef, key, values)
            results.append({"id": record_id, "success": True, "errors": [], "created": created})
        except MultipleMatches as multiple:
            error = RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"more than one record found for external id field: {multiple.record_ids}",
                [fdef.name],
            )
            results.append(_failure(error))
        except RecordFailure as failure:
            results.append(_failure(failure.error))
    return _finish(ctx, results, all_or_none, savepoint)


def _retrieve(
    ctx: RestContext, sobject: SObjectDef, record_ids: list[str], field_names: list[str]
) -> RestResult:
    if not record_ids:
        raise SalesforceError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if not field_names:
        raise SalesforceError(400, "MISSING_ARGUMENT", "fields parameter is required")
    if len(record_ids) > 2000:
        raise _too_many()
    view = ctx.caller.view(sobject)
    fields = []
    for name in field_names:
        fdef = view.field(name)
        if fdef is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'"
            )
        fields.append(fdef)
    table = ctx.emulator.table(ctx.caller.org, sobject)
    out: list[Any] = []
    for raw in record_ids:
        record_id = ids.try_normalize(raw)
        if record_id is None:
            raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw}")
        record = table.get(record_id)
        if (
            record is None
            or record.get("IsDeleted")
            or not can_see(view, ctx.caller.user.id, record)
        ):
            out.append(None)
        else:
            out.append(render_record(view, record, ctx.version, fields))
    ctx.records += len(out)
    return _result(200, out)


def _given_id(record: Any) -> Any:
    """The record's Id under any spelling of the key ("Id", "id", "ID"), or None."""
    if not isinstance(record, dict):
        return None
    return next((value for key, value in record.items() if key.lower() == "id"), None)


def lock_failures(method: str, params: dict[str, list[str]], body: bytes) -> list[dict[str, Any]]:
    """Per-record UNABLE_TO_LOCK_ROW results for a faulted Collections write (nothing written)."""
    message = "unable to obtain exclusive access to this record or 1 records"
    if method == "DELETE":
        record_ids = _split(params.get("ids"))
        return [
            {"id": rid, **_failure(RecordError("UNABLE_TO_LOCK_ROW", f"{message}: {rid}"))}
            for rid in record_ids
        ] or [_failure(RecordError("UNABLE_TO_LOCK_ROW", message))]
    try:
        records = json.loads(body or b"{}").get("records") or []
    except (ValueError, AttributeError):
        records = []
    results = []
    for record in records:
        record_id = _given_id(record)
        entry = _failure(
            RecordError("UNABLE_TO_LOCK_ROW", f"{message}: {record_id}" if record_id else message)
        )
        if record_id:
            entry = {"id": record_id, **entry}
        results.append(entry)
    return results
