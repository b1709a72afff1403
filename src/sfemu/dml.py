"""Writes: create, update, upsert and delete with Salesforce's checks, inside a transaction.

Order of checks for one record, as Salesforce reports them: object permission, field
writability (field-level security), required fields, each value's rules, record type access,
lookups, unique values. The first failing check is the record's error. Changes apply to memory
at once (so later records of the same request see them: a duplicate inside one batch is a
DUPLICATE_VALUE) and are undone if the transaction rolls back; commit persists them in one
SQLite transaction and hands them to the outbound message rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import ids
from .errors import RecordError, SalesforceError, json_parser_error
from .orgs import Org, User
from .permissions import AccessView, Profile, can_edit, can_see
from .schema import FieldDef, FieldType, SObjectDef
from .store import Table
from .validation import check_value, coerce, now_iso

if TYPE_CHECKING:
    from .emulator import Emulator

_SYSTEM_PROFILE = Profile(name="System", id="", modify_all_data=True)


class RecordFailure(Exception):
    """One record could not be written; carries Salesforce's error for it."""

    def __init__(self, error: RecordError) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class MultipleMatches(Exception):
    """An upsert's external id value matches several records (HTTP 300)."""

    def __init__(self, record_ids: list[str]) -> None:
        super().__init__(f"{len(record_ids)} records match")
        self.record_ids = record_ids


def insufficient_access() -> RecordFailure:
    """INSUFFICIENT_ACCESS_OR_READONLY on a record."""
    return RecordFailure(
        RecordError("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
    )


@dataclass
class ParentRef:
    """A lookup given by the parent's external id: ``"Contact__r": {"External_Key__c": "K1"}``."""

    target: SObjectDef
    key_field: FieldDef
    value: Any


@dataclass
class Caller:
    """Who is calling: the org, the user and the API version; ``system`` skips permissions
    (seeding, the control API, the emulator's web page)."""

    org: Org
    user: User
    api_version: str = "62.0"
    system: bool = False

    @property
    def profile(self) -> Profile:
        """The profile whose permissions apply."""
        return _SYSTEM_PROFILE if self.system else self.user.profile

    def view(self, sobject: SObjectDef) -> AccessView:
        """The caller's view of an object (permissions and field-level security)."""
        return self.profile.view(sobject)

    @property
    def version_number(self) -> float:
        """The API version as a number (46.0)."""
        return float(self.api_version)


@dataclass
class Change:
    """One applied write, for persistence and outbound message rules."""

    org: Org
    sobject: SObjectDef
    old: dict[str, Any] | None
    new: dict[str, Any]


@dataclass
class Transaction:
    """The writes of one request: undo log, changes to persist and to notify."""

    emulator: Emulator
    _undo: list[tuple[Table, str, dict[str, Any] | None]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def savepoint(self) -> int:
        """A point to roll back to."""
        return len(self._undo)

    def applied(
        self, org: Org, table: Table, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        """Record a write that has just been applied to memory."""
        self._undo.append((table, new["Id"], old))
        self.changes.append(Change(org, table.sobject, old, new))

    def rollback(self, savepoint: int = 0) -> None:
        """Undo every write after the savepoint (all of them by default)."""
        while len(self._undo) > savepoint:
            table, record_id, old = self._undo.pop()
            if old is None:
                table.remove(record_id)
            else:
                table.put(old)
            self.changes.pop()

    def commit(self) -> None:
        """Persist the writes (one SQLite transaction) and fire outbound message rules."""
        if not self.changes:
            return
        latest: dict[tuple[str, str], Change] = {}
        for change in self.changes:
            latest[(change.org.id, change.new["Id"])] = change
        self.emulator.db.write_records(
            (org_id, rid, change.sobject.name, change.new)
            for (org_id, rid), change in latest.items()
        )
        changes, self.changes, self._undo = self.changes, [], []
        self.emulator.outbound.on_changes(changes)


class Dml:
    """Writes for one caller in one transaction."""

    def __init__(self, emulator: Emulator, caller: Caller, txn: Transaction) -> None:
        self.emulator = emulator
        self.caller = caller
        self.txn = txn
        self.org = caller.org
        self.now = now_iso()

    # -- reading request bodies -----------------------------------------------------------

    def read_body(self, sobject: SObjectDef, body: Any) -> dict[str, Any]:
        """Deserialise a record body into canonical field names and typed values.

        Unknown (or hidden) fields and values of the wrong JSON type fail the whole request,
        as in Salesforce, where this happens before any record is written.
        """
        if not isinstance(body, dict):
            raise json_parser_error(
                f"Cannot deserialize instance of {sobject.name} from"
                f" {'START_ARRAY' if isinstance(body, list) else 'VALUE_STRING'} value"
            )
        view = self.caller.view(sobject)
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            fdef = view.field(key)
            if fdef is None:
                parent = sobject.relationship(key)
                if (
                    parent is not None
                    and parent.name.lower() in view.readable
                    and isinstance(value, dict)
                ):
                    values[parent.name] = self._parent_ref(parent, value)
                    continue
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {sobject.name}",
                )
            values[fdef.name] = coerce(fdef, value)
        return values

    def _parent_ref(self, fdef: FieldDef, value: dict[str, Any]) -> ParentRef:
        attributes = value.get("attributes") or {}
        target_name = attributes.get("type") if isinstance(attributes, dict) else None
        target = self.org.sobject(target_name or fdef.reference_to[0])
        keys = [k for k in value if k != "attributes"]
        if target is None or len(keys) != 1:
            raise SalesforceError(
                400, "INVALID_FIELD", f"Invalid foreign key reference for {fdef.relationship_name}"
            )
        key_field = target.field(keys[0])
        if key_field is None or not (key_field.external_id or key_field.name == "Id"):
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID field {keys[0]} is not an external ID field on"
                f" {target.name}",
            )
        return ParentRef(target, key_field, coerce(key_field, value[keys[0]]))

    # -- create ---------------------------------------------------------------------------

    def create(self, sobject: SObjectDef, values: dict[str, Any]) -> str:
        """Insert one record; returns its 18-character Id or raises RecordFailure."""
        view = self.caller.view(sobject)
        if not view.perms.create:
            raise RecordFailure(
                RecordError(
                    "INSUFFICIENT_ACCESS_OR_READONLY",
                    f"insufficient access rights on entity: {sobject.name}",
                )
            )
        if "Id" in values:
            raise RecordFailure(
                RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            )
        self._check_writable(values, view.createable)
        record: dict[str, Any] = dict(sobject.defaults)
        record.update(values)
        self._check_required(sobject, record, values, creating=True)
        self._check_values(sobject, record, values)
        self._apply_record_type(sobject, record, values, creating=True)
        if sobject.has_owner:
            record["OwnerId"] = record.get("OwnerId") or self.caller.user.id
        self._check_references(sobject, record, values)
        table = self.emulator.table(self.org, sobject)
        self._check_unique(sobject, table, record, None)
        record["Id"] = self.emulator.new_id(self.org, sobject.key_prefix)
        record["IsDeleted"] = False
        for fdef in sobject.auto_number_fields:
            if fdef.auto_number is not None:
                record[fdef.name] = _format_auto_number(
                    fdef.auto_number, self.emulator.next_auto_number(self.org, sobject, fdef)
                )
        user_id = self.caller.user.id
        record["CreatedDate"] = record["LastModifiedDate"] = record["SystemModstamp"] = self.now
        record["CreatedById"] = record["LastModifiedById"] = user_id
        for fdef in sobject.derived_fields:
            record[fdef.name] = fdef.derived.compute(record)  # type: ignore[union-attr]
        table.put(record)
        self.txn.applied(self.org, table, None, record)
        return record["Id"]

    # -- update ---------------------------------------------------------------------------

    def update(self, sobject: SObjectDef, record_id: str, values: dict[str, Any]) -> str:
        """Update one record by Id; returns the 18-character Id or raises RecordFailure."""
        table, existing = self.locate(sobject, record_id)
        view = self.caller.view(sobject)
        if not view.perms.edit or not can_edit(view, self.caller.user.id, existing):
            raise insufficient_access()
        values = {k: v for k, v in values.items() if k != "Id"}
        self._check_writable(values, view.updateable)
        record = dict(existing)
        record.update(values)
        self._check_required(sobject, record, values, creating=False)
        self._check_values(sobject, record, values)
        self._apply_record_type(sobject, record, values, creating=False)
        self._check_references(sobject, record, values)
        self._check_unique(sobject, table, record, existing["Id"])
        record["LastModifiedDate"] = record["SystemModstamp"] = self.now
        record["LastModifiedById"] = self.caller.user.id
        for fdef in sobject.derived_fields:
            record[fdef.name] = fdef.derived.compute(record)  # type: ignore[union-attr]
        table.put(record)
        self.txn.applied(self.org, table, existing, record)
        return record["Id"]

    # -- upsert ---------------------------------------------------------------------------

    def upsert(
        self, sobject: SObjectDef, key_field: FieldDef, key_value: Any, values: dict[str, Any]
    ) -> tuple[str, bool]:
        """Insert or update by an external id; returns (Id, created).

        Raises MultipleMatches when several records hold the value, RecordFailure otherwise.
        """
        if (
            key_field.name in values
            and key_value is not None
            and values[key_field.name] is not None
            and str(values[key_field.name]).lower() != str(key_value).lower()
        ):
            raise RecordFailure(
                RecordError(
                    "INVALID_FIELD",
                    f"The value of the external ID field {key_field.name} in the body does not"
                    " match the URL",
                    [key_field.name],
                )
            )
        if key_value is None or key_value == "":
            raise RecordFailure(
                RecordError("MISSING_ARGUMENT", f"{key_field.name} not specified", [key_field.name])
            )
        if key_field.name == "Id":
            record_id = ids.try_normalize(key_value)
            if record_id is None:
                raise RecordFailure(
                    RecordError("MALFORMED_ID", f"malformed id {key_value}", ["Id"])
                )
            return self.update(sobject, record_id, values), False
        matches = self.find_by_key(sobject, key_field, key_value)
        if len(matches) > 1:
            raise MultipleMatches(matches)
        if matches:
            return self.update(
                sobject, matches[0], {k: v for k, v in values.items() if k != key_field.name}
            ), False
        values = dict(values)
        values[key_field.name] = key_value
        return self.create(sobject, values), True

    def find_by_key(self, sobject: SObjectDef, key_field: FieldDef, key_value: Any) -> list[str]:
        """Ids of the live records the caller can see whose key field holds the value."""
        table = self.emulator.table(self.org, sobject)
        view = self.caller.view(sobject)
        return [
            rid
            for rid in table.find(key_field, key_value)
            if can_see(view, self.caller.user.id, table.rows[rid])
        ]

    # -- delete ---------------------------------------------------------------------------

    def delete(self, record_id: str, sobject: SObjectDef | None = None) -> str:
        """Delete (to the recycle bin) one record by Id; raises RecordFailure."""
        normalized = ids.try_normalize(record_id)
        if normalized is None:
            raise RecordFailure(RecordError("MALFORMED_ID", f"malformed id {record_id}", []))
        target = sobject or self.emulator.sobject_for_id(self.org, normalized)
        if target is None:
            raise RecordFailure(
                RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            )
        table, existing = self.locate(target, normalized)
        view = self.caller.view(target)
        if not view.perms.delete or not can_edit(view, self.caller.user.id, existing):
            raise insufficient_access()
        record = dict(existing)
        record["IsDeleted"] = True
        record["LastModifiedDate"] = record["SystemModstamp"] = self.now
        record["LastModifiedById"] = self.caller.user.id
        table.put(record)
        self.txn.applied(self.org, table, existing, record)
        return normalized

    # -- lookups --------------------------------------------------------------------------

    def locate(self, sobject: SObjectDef, record_id: str) -> tuple[Table, dict[str, Any]]:
        """The live, visible record with this Id, or RecordFailure as Salesforce words it."""
        normalized = ids.try_normalize(record_id)
        if normalized is None:
            raise RecordFailure(RecordError("MALFORMED_ID", f"malformed id {record_id}", []))
        if normalized[:3] != sobject.key_prefix:
            raise RecordFailure(
                RecordError(
                    "MALFORMED_ID",
                    f"{sobject.label} ID: id value of incorrect type: {record_id}",
                    ["Id"],
                )
            )
        table = self.emulator.table(self.org, sobject)
        existing = table.get(normalized)
        view = self.caller.view(sobject)
        if existing is None or not can_see(view, self.caller.user.id, existing):
            raise RecordFailure(
                RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            )
        if existing.get("IsDeleted"):
            raise RecordFailure(RecordError("ENTITY_IS_DELETED", "entity is deleted", []))
        return table, existing

    # -- checks ---------------------------------------------------------------------------

    def _check_writable(self, values: dict[str, Any], writable: frozenset[str]) -> None:
        refused = [name for name in values if name not in writable]
        if refused:
            raise RecordFailure(
                RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(refused)}. Please check the"
                    " security settings of this field and verify that it is read/write for your"
                    " profile or permission set.",
                    refused,
                )
            )

    def _check_required(
        self, sobject: SObjectDef, record: dict[str, Any], values: dict[str, Any], *, creating: bool
    ) -> None:
        if creating:
            missing = [f.name for f in sobject.required_fields if record.get(f.name) is None]
        else:
            missing = [
                name
                for name, value in values.items()
                if value is None
                and not sobject.fields[name].nillable
                and sobject.fields[name].type != FieldType.BOOLEAN
            ]
        if missing:
            raise RecordFailure(
                RecordError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )

    def _check_values(
        self, sobject: SObjectDef, record: dict[str, Any], values: dict[str, Any]
    ) -> None:
        for name, value in values.items():
            fdef = sobject.fields[name]
            if value is None:
                if fdef.type == FieldType.BOOLEAN:
                    record[name] = False  # a null checkbox is stored unchecked
                continue
            if isinstance(value, ParentRef):
                continue
            if fdef.type in (FieldType.REFERENCE, FieldType.ID):
                continue
            stored, error = check_value(fdef, value)
            if error is not None:
                raise RecordFailure(error)
            record[name] = stored

    def _apply_record_type(
        self, sobject: SObjectDef, record: dict[str, Any], values: dict[str, Any], *, creating: bool
    ) -> None:
        if not sobject.record_types:
            return
        profile_name = self.caller.user.profile.name
        given = values.get("RecordTypeId")
        if given is None:
            if creating:
                default = sobject.default_record_type(profile_name)
                record["RecordTypeId"] = default.id if default else None
            return
        normalized = ids.try_normalize(given)
        if normalized is None:
            raise RecordFailure(
                RecordError(
                    "MALFORMED_ID",
                    f"Record Type ID: id value of incorrect type: {given}",
                    ["RecordTypeId"],
                )
            )
        record_type = sobject.record_type(normalized)
        allowed = self.caller.system or (
            record_type is not None and record_type.is_available_to(profile_name)
        )
        if record_type is None or not allowed:
            raise RecordFailure(
                RecordError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"Record Type ID: this ID value isn't valid for the user: {given}",
                    ["RecordTypeId"],
                )
            )
        record["RecordTypeId"] = normalized

    def _check_references(
        self, sobject: SObjectDef, record: dict[str, Any], values: dict[str, Any]
    ) -> None:
        for name in values:
            fdef = sobject.fields[name]
            if fdef.type != FieldType.REFERENCE or fdef.name == "RecordTypeId":
                continue
            value = record.get(name)
            if value is None:
                continue
            if isinstance(value, ParentRef):
                record[name] = self._resolve_parent(fdef, value)
                continue
            record[name] = self.check_reference(fdef, value)

    def _resolve_parent(self, fdef: FieldDef, ref: ParentRef) -> str:
        matches = (
            self.find_by_key(ref.target, ref.key_field, ref.value)
            if ref.key_field.name != "Id"
            else ([ids.try_normalize(ref.value)] if ids.try_normalize(ref.value) else [])
        )
        if not matches:
            raise RecordFailure(
                RecordError(
                    "INVALID_FIELD",
                    f"Foreign key external ID: {ref.value} not found for field {ref.key_field.name}"
                    f" in entity {ref.target.name}",
                    [],
                )
            )
        if len(matches) > 1:
            raise RecordFailure(
                RecordError(
                    "INVALID_FIELD",
                    f"Foreign key external ID: {ref.value} matched more than one record for field"
                    f" {ref.key_field.name} in entity {ref.target.name}",
                    [],
                )
            )
        return self.check_reference(fdef, matches[0])

    def check_reference(self, fdef: FieldDef, value: str) -> str:
        """Validate a lookup value; returns the 18-character Id or raises RecordFailure."""
        normalized = ids.try_normalize(value)
        if normalized is None:
            raise RecordFailure(
                RecordError(
                    "MALFORMED_ID",
                    f"{fdef.label}: id value of incorrect type: {value}",
                    [fdef.name],
                )
            )
        target = self.emulator.sobject_for_id(self.org, normalized)
        if target is None or target.name not in fdef.reference_to:
            raise RecordFailure(
                RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"{fdef.label}: id value of incorrect type: {value}",
                    [fdef.name],
                )
            )
        parent = self.emulator.table(self.org, target).get(normalized)
        if parent is None:
            raise RecordFailure(
                RecordError(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [fdef.name]
                )
            )
        if parent.get("IsDeleted"):
            raise RecordFailure(RecordError("ENTITY_IS_DELETED", "entity is deleted", [fdef.name]))
        if fdef.name == "OwnerId" and parent.get("IsActive") is False:
            raise RecordFailure(
                RecordError("INACTIVE_OWNER_OR_USER", "owner or user is inactive.", ["OwnerId"])
            )
        if not self.caller.system and not can_see(
            self.caller.view(target), self.caller.user.id, parent
        ):
            raise RecordFailure(
                RecordError(
                    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                    f"insufficient access rights on cross-reference id: {normalized}",
                    [fdef.name],
                )
            )
        return normalized

    def _check_unique(
        self, sobject: SObjectDef, table: Table, record: dict[str, Any], own_id: str | None
    ) -> None:
        for fdef in sobject.indexed_fields:
            if not fdef.unique:
                continue
            value = record.get(fdef.name)
            if value is None:
                continue
            for other in table.find(fdef, value):
                if other != own_id:
                    raise RecordFailure(
                        RecordError(
                            "DUPLICATE_VALUE",
                            f"duplicate value found: {fdef.name} duplicates value on record"
                            f" with id: {other[:15]}",
                            [],
                        )
                    )


def update_as_administrator(
    emulator: Emulator, org: Org, sobject: SObjectDef, record_id: str, body: Any
) -> Caller:
    """Update one record as the org's administrator in a transaction of its own (outbound
    rules fire as for any update). A failure (RecordFailure, SalesforceError) keeps nothing
    and goes up. Returns the caller, to render the record as it sees it."""
    txn = emulator.transaction()
    dml = Dml(emulator, emulator.system_caller(org), txn)
    try:
        dml.update(sobject, record_id, dml.read_body(sobject, body))
    except BaseException:
        txn.rollback()
        raise
    txn.commit()
    return dml.caller


def _format_auto_number(pattern: str, number: int) -> str:
    """Render an auto-number display format such as ``SR-{000000}``."""
    start = pattern.find("{")
    end = pattern.find("}", start)
    if start < 0 or end < 0:
        return f"{pattern}{number}"
    width = end - start - 1
    return f"{pattern[:start]}{number:0{width}d}{pattern[end + 1 :]}"


def render_record(
    view: AccessView,
    record: dict[str, Any],
    api_version: str,
    fields: list[FieldDef] | None = None,
) -> dict[str, Any]:
    """A record as the REST API returns it: attributes, then the visible fields in order."""
    sobject = view.sobject
    body: dict[str, Any] = {
        "attributes": {
            "type": sobject.name,
            "url": f"/services/data/v{api_version}/sobjects/{sobject.name}/{record['Id']}",
        }
    }
    for fdef in fields if fields is not None else view.readable.values():
        body[fdef.name] = record.get(fdef.name)
    return body
