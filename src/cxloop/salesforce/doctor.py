"""The doctor's checks of a Salesforce task against the org's describe. Pure functions.

Each finding says, in plain words, what is wrong and what to change in Salesforce Setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from cxloop.domain.salesforce_task import FieldMapping, SalesforceTaskSpec

Level = Literal["error", "warning", "ok"]

_TEXT_TYPES = {
    "string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox",
    "encryptedstring", "id", "reference",
}  # fmt: skip
_NUMBER_TYPES = {"int", "double", "currency", "percent", "long"}
_COMPATIBLE: dict[str, set[str]] = {
    "text": _TEXT_TYPES,
    "choice": _TEXT_TYPES,
    "number": _NUMBER_TYPES | _TEXT_TYPES,
    "boolean": {"boolean"} | _TEXT_TYPES,
    "date": {"date", "datetime"} | _TEXT_TYPES,
    "datetime": {"datetime"} | _TEXT_TYPES,
}
# Set by Salesforce itself; a mapping can never write them.
_SYSTEM_FIELDS = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                  "LastModifiedById", "SystemModstamp", "OwnerId"}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str
    fix: str = ""


def check_task(spec: SalesforceTaskSpec, describe: dict[str, Any]) -> list[Finding]:
    """Everything wrong with `spec`, given the describe the connection's user sees."""
    findings: list[Finding] = []
    obj = describe.get("name", spec.object)
    label = f"task '{spec.name}'"
    findings += _check_action(spec, describe, obj, label)
    fields = {f["name"].lower(): f for f in describe.get("fields", [])}
    for mapping in spec.mappings:
        findings += _check_mapping(spec, mapping, fields.get(mapping.field.lower()), obj, label)
    if spec.action in ("insert", "upsert"):
        findings += _check_required(spec, describe.get("fields", []), obj, label)
    if spec.key_field:
        findings += _check_key(spec, fields.get(spec.key_field.lower()), obj, label)
    if spec.record_type:
        findings += _check_record_type(spec, describe.get("recordTypeInfos", []), obj, label)
    if not any(f.level == "error" for f in findings):
        findings.append(Finding("ok", "task", f"{label}: {spec.action} on {obj} looks right."))
    return findings


def _check_action(
    spec: SalesforceTaskSpec, describe: dict[str, Any], obj: str, label: str
) -> list[Finding]:
    needed = {
        "insert": ["createable"],
        "update": ["updateable"],
        "upsert": ["createable", "updateable"],
        "delete": ["deletable"],
    }[spec.action]
    words = {"createable": "Create", "updateable": "Edit", "deletable": "Delete"}
    missing = [flag for flag in needed if not describe.get(flag, False)]
    if not missing:
        return []
    rights = " and ".join(words[m] for m in missing)
    return [
        Finding(
            "error",
            "object_permission",
            f"{label}: the Salesforce user may not {spec.action} {obj} records "
            f"(no {rights} permission on {obj}).",
            f"In Setup > Profiles (or a permission set) of the connection's user, grant {rights} "
            f"on {obj} under Object Settings.",
        )
    ]


def _check_mapping(
    spec: SalesforceTaskSpec,
    mapping: FieldMapping,
    field: dict[str, Any] | None,
    obj: str,
    label: str,
) -> list[Finding]:
    name = mapping.field
    if field is None:
        return [
            Finding(
                "error",
                "field_missing",
                f"{label}: {obj} has no field {name} that the connection's user can see.",
                f"Check the spelling (API name, e.g. {name}__c for a custom field); if it exists, "
                f"give the user's profile read and edit access to {obj}.{name} in Field-Level "
                "Security.",
            )
        ]
    findings = []
    if name in _SYSTEM_FIELDS or field.get("calculated"):
        findings.append(
            Finding(
                "error",
                "field_not_writable",
                f"{label}: {obj}.{name} is set by Salesforce and cannot be written.",
                "Remove this mapping.",
            )
        )
        return findings
    flags = {"insert": ["createable"], "update": ["updateable"],
             "upsert": ["createable", "updateable"], "delete": []}[spec.action]  # fmt: skip
    if any(not field.get(flag, False) for flag in flags):
        findings.append(
            Finding(
                "error",
                "field_not_writable",
                f"{label}: {obj}.{name} is read-only for the connection's user "
                f"and cannot be set on {spec.action}.",
                f"In Setup > Object Manager > {obj} > Fields > {name} > Set Field-Level Security, "
                "make it editable (not read-only) for the user's profile; or remove the mapping.",
            )
        )
    field_type = str(field.get("type", "string"))
    if field_type not in _COMPATIBLE[mapping.source_type] and not mapping.constant:
        findings.append(
            Finding(
                "error",
                "type_mismatch",
                f"{label}: {obj}.{name} is a {field_type} field but receives a "
                f"{mapping.source_type} value.",
                f"Map a {field_type}-compatible answer to {name}, or change the mapping's source.",
            )
        )
    if mapping.constant:
        findings += _check_constant(mapping, field, obj, label)
    return findings


def _check_constant(
    mapping: FieldMapping, field: dict[str, Any], obj: str, label: str
) -> list[Finding]:
    field_type, value, name = str(field.get("type")), mapping.value, mapping.field
    if field_type in ("picklist", "multipicklist"):
        allowed = [p["value"] for p in field.get("picklistValues", []) if p.get("active", True)]
        chosen = value.split(";") if field_type == "multipicklist" else [value]
        bad = [v for v in chosen if v not in allowed and "${" not in v]
        if bad:
            restricted = bool(field.get("restrictedPicklist"))
            consequence = (
                "Salesforce will refuse the record"
                if restricted
                else "Salesforce stores it, but as a value reports and filters do not offer"
            )
            return [
                Finding(
                    "error" if restricted else "warning",
                    "bad_picklist_value",
                    f"{label}: {', '.join(repr(b) for b in bad)} is not a value of the "
                    f"picklist {obj}.{name} (values: {', '.join(allowed) or 'none'}); "
                    f"{consequence}.",
                    f"Use one of the picklist's values, or add the value in Setup > Object "
                    f"Manager > {obj} > Fields > {name} > Values.",
                )
            ]
        return []
    if not _parses_as(field_type, value):
        return [
            Finding(
                "error",
                "bad_constant",
                f"{label}: {value!r} is not a valid {field_type} for {obj}.{name}.",
                f"Write a {field_type} value.",
            )
        ]
    length = field.get("length") or 0
    if field_type in _TEXT_TYPES and length and len(value) > length and "${" not in value:
        return [
            Finding(
                "error",
                "too_long",
                f"{label}: the value for {obj}.{name} is longer than its {length} characters.",
                "Shorten it.",
            )
        ]
    return []


def _parses_as(field_type: str, value: str) -> bool:
    if "${" in value:
        return True
    try:
        if field_type in _NUMBER_TYPES:
            float(value)
        elif field_type == "boolean":
            return value.lower() in ("true", "false", "1", "0", "yes", "no")
        elif field_type == "date":
            date.fromisoformat(value)
        elif field_type == "datetime":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_required(
    spec: SalesforceTaskSpec, fields: list[dict[str, Any]], obj: str, label: str
) -> list[Finding]:
    mapped = {m.field.lower() for m in spec.mappings}
    if spec.key_field:
        mapped.add(spec.key_field.lower())
    missing = [
        f["name"]
        for f in fields
        if f.get("createable")
        and not f.get("nillable", True)
        and not f.get("defaultedOnCreate", False)
        and f.get("type") != "boolean"
        and f["name"].lower() not in mapped
    ]
    if not missing:
        return []
    return [
        Finding(
            "error",
            "required_field_unmapped",
            f"{label}: {obj} requires {', '.join(missing)}, which the task does not set; "
            f"Salesforce will refuse every {spec.action}.",
            f"Map a question, embedded data field or constant to {', '.join(missing)}.",
        )
    ]


def _check_key(
    spec: SalesforceTaskSpec, field: dict[str, Any] | None, obj: str, label: str
) -> list[Finding]:
    key = spec.key_field or ""
    if key == "Id":
        return []
    if field is None:
        return [Finding("error", "key_missing", f"{label}: {obj} has no field {key} to match on.",
                        "Pick an existing external id field as the key.")]  # fmt: skip
    if spec.action == "upsert" and not field.get("externalId"):
        return [
            Finding(
                "error",
                "key_not_external_id",
                f"{label}: upsert needs an external id field, and {obj}.{key} is not one.",
                f"In Setup > Object Manager > {obj} > Fields > {key}, tick 'External ID' "
                "(and 'Unique' to rule out duplicates), or choose another key.",
            )
        ]
    if spec.action in ("update", "delete") and not (
        field.get("idLookup") or field.get("externalId")
    ):
        return [
            Finding(
                "error",
                "key_not_id_lookup",
                f"{label}: {obj}.{key} cannot identify a record (it is not an idLookup or "
                "external id field).",
                "Use Id, or an external id field, as the key.",
            )
        ]
    return []


def _check_record_type(
    spec: SalesforceTaskSpec, infos: list[dict[str, Any]], obj: str, label: str
) -> list[Finding]:
    wanted = spec.record_type or ""
    match = next(
        (
            info
            for info in infos
            if wanted in (info.get("recordTypeId"), info.get("developerName"), info.get("name"))
            or (len(wanted) == 18 and str(info.get("recordTypeId", ""))[:15] == wanted[:15])
        ),
        None,
    )
    if match is None:
        names = ", ".join(i.get("developerName") or i.get("name", "") for i in infos) or "none"
        return [
            Finding(
                "error",
                "record_type_missing",
                f"{label}: {obj} has no record type {wanted!r} (it has: {names}).",
                "Pick one of the object's record types.",
            )
        ]
    if not match.get("available", False):
        return [
            Finding(
                "error",
                "record_type_not_available",
                f"{label}: the record type {wanted!r} of {obj} is not available to the "
                "connection's user.",
                f"In Setup > Profiles > (the user's profile) > Object Settings > {obj}, add the "
                f"record type {wanted!r} to the assigned record types.",
            )
        ]
    return []
