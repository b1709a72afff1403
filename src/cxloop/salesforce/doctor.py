"""The checks of a Salesforce task against the org's describe, for the doctor and for saving.

`check_task` is pure: given a task and the describe the connection's user sees, it says, in
plain words, what is wrong and what to change (in Salesforce Setup, or in the emulator's org
file: the `Remedies` of the connection). `check_against_org` fetches the describe first.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from cxloop.domain.phrases import Phrase, and_list
from cxloop.domain.salesforce_task import FieldMapping, SalesforceTaskSpec
from cxloop.salesforce.errors import SalesforceError
from cxloop.salesforce.remedies import Remedies

if TYPE_CHECKING:
    from cxloop.salesforce.client import SalesforceClient

Level = Literal["error", "warning", "ok"]

_TEXT_TYPES = frozenset({
    "string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox",
    "encryptedstring", "id", "reference",
})  # fmt: skip
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})
_COMPATIBLE: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "text": _TEXT_TYPES,
        "choice": _TEXT_TYPES,
        "number": _NUMBER_TYPES | _TEXT_TYPES,
        "boolean": _TEXT_TYPES | {"boolean"},
        "date": _TEXT_TYPES | {"date", "datetime"},
        "datetime": _TEXT_TYPES | {"datetime"},
    }
)
# Set by Salesforce itself; a mapping can never write them.
_SYSTEM_FIELDS = frozenset({"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                            "LastModifiedById", "SystemModstamp", "OwnerId"})  # fmt: skip


# Checks whose fix names the connected user's profile: worth looking the profile up for.
PROFILE_CHECKS = frozenset(
    {"object_permission", "object_missing", "field_missing", "field_not_writable",
     "record_type_not_available", "api_access"}
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One result of a check; `field` is the Salesforce field it is about, if any."""

    level: Level
    check: str
    message: str  # a Phrase (domain/phrases.py): English, and said in German on German pages
    fix: str = ""
    field: str = ""


def check_task(
    spec: SalesforceTaskSpec, describe: dict[str, Any], remedies: Remedies | None = None
) -> list[Finding]:
    """Everything wrong with `spec`, given the describe the connection's user sees; the fixes
    come from `remedies` (Salesforce Setup by default)."""
    fix = remedies or Remedies()
    findings: list[Finding] = []
    obj = describe.get("name", spec.object)
    label = Phrase("task '%(name)s'", name=spec.name)
    findings += _check_action(spec, describe, obj, label, fix)
    fields = {f["name"].lower(): f for f in describe.get("fields", [])}
    # A right the object lacks is its own finding; its fields would only repeat it.
    granted = {flag for flag in ("createable", "updateable") if describe.get(flag, False)}
    for mapping in spec.mappings:
        field = fields.get(mapping.field.lower())
        if field is None:
            findings.append(_missing_field(mapping.field, list(fields.values()), obj, label, fix))
        else:
            findings += _check_mapping(spec, mapping, field, obj, label, fix, granted)
    if spec.action in ("insert", "upsert"):
        findings += _check_required(spec, describe.get("fields", []), obj, label)
    if spec.key_field:
        findings += _check_key(spec, fields.get(spec.key_field.lower()), obj, label, fix)
    if spec.record_type:
        findings += _check_record_type(spec, describe.get("recordTypeInfos", []), obj, label, fix)
    if not any(f.level == "error" for f in findings):
        findings.append(
            Finding(
                "ok", "task", Phrase("%(task)s: %(action)s on %(object)s looks right.",
                                     task=label, action=spec.action, object=obj),
            )
        )  # fmt: skip
    return findings


def check_against_org(
    client: SalesforceClient,
    spec: SalesforceTaskSpec,
    remedies: Remedies | None = None,
    *,
    fresh: bool = False,
) -> list[Finding]:
    """`check_task` on the object's describe (from the cache unless `fresh`). An object the
    user cannot see is a finding; other failures of describe raise SalesforceError."""
    try:
        describe = client.describe(spec.object, fresh=fresh)
    except SalesforceError as exc:
        if exc.error_code in ("NOT_FOUND", "INVALID_TYPE") or exc.status == 404:
            return [
                Finding(
                    "error",
                    "object_missing",
                    Phrase(
                        "task '%(name)s': the object %(object)s does not exist, or the "
                        "connection's user cannot see it.",
                        name=spec.name,
                        object=spec.object,
                    ),
                    (remedies or Remedies()).object_hidden(spec.object),
                )
            ]
        raise
    return check_task(spec, describe, remedies)


def _check_action(
    spec: SalesforceTaskSpec, describe: dict[str, Any], obj: str, label: str, fix: Remedies
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
    rights = and_list([words[m] for m in missing])
    granted = [flag for flag in ("queryable", *words) if describe.get(flag, False)]
    return [
        Finding(
            "error",
            "object_permission",
            Phrase(
                "%(task)s: the Salesforce user may not %(action)s %(object)s records "
                "(no %(rights)s permission on %(object)s).",
                task=label,
                action=spec.action,
                object=obj,
                rights=rights,
            ),
            fix.object_permission(obj, missing, granted),
        )
    ]


def _missing_field(
    name: str, fields: list[dict[str, Any]], obj: str, label: str, fix: Remedies
) -> Finding:
    """A mapped field the describe does not have: misspelled, or hidden from the user."""
    names = {str(f["name"]).lower(): str(f["name"]) for f in fields}
    near = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.75)
    if near:
        spelling = Phrase(
            "Did you mean %(name)s? Check the spelling of the API name", name=names[near[0]]
        )
    elif name.lower().endswith("__c"):
        spelling = Phrase("Check the spelling of the API name")
    else:
        spelling = Phrase(
            "Check the spelling of the API name (a custom field's ends in __c: %(name)s__c)",
            name=name,
        )
    return Finding(
        "error",
        "field_missing",
        Phrase(
            "%(task)s: %(object)s has no field %(field)s that the connection's user can see.",
            task=label,
            object=obj,
            field=name,
        ),
        Phrase("%(spelling)s; %(fix)s", spelling=spelling, fix=fix.field_hidden(obj, name)),
        field=name,
    )


def _check_mapping(
    spec: SalesforceTaskSpec,
    mapping: FieldMapping,
    field: dict[str, Any],
    obj: str,
    label: str,
    fix: Remedies,
    granted: set[str],
) -> list[Finding]:
    name = mapping.field
    findings = []
    if name in _SYSTEM_FIELDS or field.get("calculated") or field.get("autoNumber"):
        findings.append(
            Finding(
                "error",
                "field_not_writable",
                Phrase(
                    "%(task)s: %(object)s.%(field)s is set by Salesforce and cannot be written.",
                    task=label,
                    object=obj,
                    field=name,
                ),
                Phrase("Remove this mapping."),
                field=name,
            )
        )
        return findings
    flags = {"insert": ["createable"], "update": ["updateable"],
             "upsert": ["createable", "updateable"], "delete": []}[spec.action]  # fmt: skip
    if any(not field.get(flag, False) for flag in flags if flag in granted):
        findings.append(
            Finding(
                "error",
                "field_not_writable",
                Phrase(
                    "%(task)s: %(object)s.%(field)s is read-only for the connection's user "
                    "and cannot be set on %(action)s.",
                    task=label,
                    object=obj,
                    field=name,
                    action=spec.action,
                ),
                fix.field_read_only(obj, name),
                field=name,
            )
        )
    field_type = str(field.get("type", "string"))
    if field_type not in _COMPATIBLE[mapping.source_type] and not mapping.constant:
        findings.append(
            Finding(
                "error",
                "type_mismatch",
                Phrase(
                    "%(task)s: %(object)s.%(field)s is a %(type)s field but receives a "
                    "%(source)s value.",
                    task=label,
                    object=obj,
                    field=name,
                    type=field_type,
                    source=mapping.source_type,
                ),
                Phrase(
                    "Map a %(type)s-compatible answer to %(field)s, or change the mapping's "
                    "source.",
                    type=field_type,
                    field=name,
                ),
                field=name,
            )
        )
    if mapping.constant:
        findings += _check_constant(mapping, field, obj, label, fix)
    return findings


def _check_constant(
    mapping: FieldMapping, field: dict[str, Any], obj: str, label: str, fix: Remedies
) -> list[Finding]:
    field_type, value, name = str(field.get("type")), mapping.value, mapping.field
    if field_type in ("picklist", "multipicklist"):
        allowed = [p["value"] for p in field.get("picklistValues", []) if p.get("active", True)]
        chosen = value.split(";") if field_type == "multipicklist" else [value]
        bad = [v for v in chosen if v not in allowed and "${" not in v]
        if bad:
            restricted = bool(field.get("restrictedPicklist"))
            consequence = (
                Phrase("Salesforce will refuse the record")
                if restricted
                else Phrase("Salesforce stores it, but as a value reports and filters do not offer")
            )
            return [
                Finding(
                    "error" if restricted else "warning",
                    "bad_picklist_value",
                    Phrase(
                        "%(task)s: %(values)s is not a value of the picklist %(object)s.%(field)s "
                        "(values: %(allowed)s); %(consequence)s.",
                        task=label,
                        values=", ".join(repr(b) for b in bad),
                        object=obj,
                        field=name,
                        allowed=", ".join(allowed) or Phrase("none"),
                        consequence=consequence,
                    ),
                    fix.picklist_value(obj, name, bad),
                    field=name,
                )
            ]
        return []
    if not _parses_as(field_type, value):
        return [
            Finding(
                "error",
                "bad_constant",
                Phrase(
                    "%(task)s: %(value)s is not a valid %(type)s for %(object)s.%(field)s.",
                    task=label,
                    value=repr(value),
                    type=field_type,
                    object=obj,
                    field=name,
                ),
                Phrase("Write a %(type)s value.", type=field_type),
                field=name,
            )
        ]
    length = field.get("length") or 0
    if field_type in _TEXT_TYPES and length and len(value) > length and "${" not in value:
        return [
            Finding(
                "error",
                "too_long",
                Phrase(
                    "%(task)s: the value for %(object)s.%(field)s is longer than its %(length)s "
                    "characters.",
                    task=label,
                    object=obj,
                    field=name,
                    length=length,
                ),
                Phrase("Shorten it."),
                field=name,
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
            Phrase(
                "%(task)s: %(object)s requires %(fields)s, which the task does not set; "
                "Salesforce will refuse every %(action)s.",
                task=label,
                object=obj,
                fields=", ".join(missing),
                action=spec.action,
            ),
            Phrase(
                "Map a question, embedded data field or constant to %(fields)s.",
                fields=", ".join(missing),
            ),
            field=", ".join(missing),
        )
    ]


def _check_key(
    spec: SalesforceTaskSpec, field: dict[str, Any] | None, obj: str, label: str, fix: Remedies
) -> list[Finding]:
    key = spec.key_field or ""
    if key == "Id":
        return []
    if field is None:
        return [
            Finding(
                "error",
                "key_missing",
                Phrase(
                    "%(task)s: %(object)s has no field %(key)s to match on.",
                    task=label,
                    object=obj,
                    key=key,
                ),
                Phrase("Pick an existing external id field as the key."),
                field=key,
            )
        ]
    if spec.action == "upsert" and not field.get("externalId"):
        return [
            Finding(
                "error",
                "key_not_external_id",
                Phrase(
                    "%(task)s: upsert needs an external id field, and %(object)s.%(key)s is "
                    "not one.",
                    task=label,
                    object=obj,
                    key=key,
                ),
                fix.external_id(obj, key),
                field=key,
            )
        ]
    if spec.action in ("update", "delete") and not (
        field.get("idLookup") or field.get("externalId")
    ):
        return [
            Finding(
                "error",
                "key_not_id_lookup",
                Phrase(
                    "%(task)s: %(object)s.%(key)s cannot identify a record (it is not an "
                    "idLookup or external id field).",
                    task=label,
                    object=obj,
                    key=key,
                ),
                Phrase("Use Id, or an external id field, as the key."),
                field=key,
            )
        ]
    return []


def _check_record_type(
    spec: SalesforceTaskSpec, infos: list[dict[str, Any]], obj: str, label: str, fix: Remedies
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
        names = ", ".join(i.get("developerName") or i.get("name", "") for i in infos) or Phrase(
            "none"
        )
        return [
            Finding(
                "error",
                "record_type_missing",
                Phrase(
                    "%(task)s: %(object)s has no record type %(wanted)s (it has: %(names)s).",
                    task=label,
                    object=obj,
                    wanted=repr(wanted),
                    names=names,
                ),
                Phrase("Pick one of the object's record types."),
                field="RecordTypeId",
            )
        ]
    if not match.get("available", False):
        return [
            Finding(
                "error",
                "record_type_not_available",
                Phrase(
                    "%(task)s: the record type %(wanted)s of %(object)s is not available to the "
                    "connection's user.",
                    task=label,
                    wanted=repr(wanted),
                    object=obj,
                ),
                fix.record_type(obj, wanted),
                field="RecordTypeId",
            )
        ]
    return []
