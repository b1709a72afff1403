"""The metadata model: sObject types, their fields and record types.

Built from the org file (see orgfile.py), one set per org (record type Ids are per org).
Names are case-insensitive in Salesforce, so every lookup here is too; the canonical case
is the one the org file declares, and that is the case the API answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any


class FieldType(StrEnum):
    """Salesforce field types (the describe ``type`` values)."""

    ID = "id"
    STRING = "string"
    TEXTAREA = "textarea"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    PICKLIST = "picklist"
    MULTIPICKLIST = "multipicklist"
    COMBOBOX = "combobox"
    BOOLEAN = "boolean"
    INT = "int"
    DOUBLE = "double"
    CURRENCY = "currency"
    PERCENT = "percent"
    DATE = "date"
    DATETIME = "datetime"
    REFERENCE = "reference"


TEXT_TYPES = frozenset(
    {
        FieldType.STRING,
        FieldType.TEXTAREA,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.PICKLIST,
        FieldType.MULTIPICKLIST,
        FieldType.COMBOBOX,
    }
)
NUMBER_TYPES = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})
ID_TYPES = frozenset({FieldType.ID, FieldType.REFERENCE})

SOAP_TYPES = {
    FieldType.ID: "tns:ID",
    FieldType.REFERENCE: "tns:ID",
    FieldType.BOOLEAN: "xsd:boolean",
    FieldType.INT: "xsd:int",
    FieldType.DOUBLE: "xsd:double",
    FieldType.CURRENCY: "xsd:double",
    FieldType.PERCENT: "xsd:double",
    FieldType.DATE: "xsd:date",
    FieldType.DATETIME: "xsd:dateTime",
}

# Fields every record has, maintained by the emulator rather than by the caller.
AUDIT_FIELDS = (
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


@dataclass(frozen=True)
class PicklistValue:
    """One picklist entry."""

    value: str
    label: str
    default: bool = False
    active: bool = True


@dataclass(frozen=True)
class Derived:
    """How a read-only field is computed from others on every write.

    ``full_name``: the non-empty values of ``fields`` joined by a space (Contact.Name).
    ``in``: true when ``fields[0]`` holds one of ``values`` (Case.IsClosed from Status).
    """

    kind: str
    fields: tuple[str, ...]
    values: frozenset[str] = frozenset()

    def compute(self, record: dict[str, Any]) -> Any:
        """The derived value for a record."""
        if self.kind == "full_name":
            parts = [record.get(name) for name in self.fields]
            return " ".join(str(part) for part in parts if part) or None
        return record.get(self.fields[0]) in self.values


@dataclass
class FieldDef:
    """One field of an sObject type."""

    name: str
    label: str
    type: FieldType
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    required: bool = False
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    picklist: tuple[PicklistValue, ...] = ()
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    id_lookup: bool = False
    name_field: bool = False
    auto_number: str | None = None
    derived: Derived | None = None
    custom: bool = False
    # System fields (Id, audit fields, IsDeleted) cannot be hidden by field-level security.
    system: bool = False

    @cached_property
    def is_text(self) -> bool:
        """True for the string-like types."""
        return self.type in TEXT_TYPES

    @cached_property
    def picklist_values(self) -> frozenset[str]:
        """The active picklist values."""
        return frozenset(entry.value for entry in self.picklist if entry.active)

    @property
    def soap_type(self) -> str:
        """The describe ``soapType``."""
        return SOAP_TYPES.get(self.type, "xsd:string")

    @property
    def is_indexed_key(self) -> bool:
        """Whether the store keeps a value index for this field (unique or external id)."""
        return self.unique or self.external_id


@dataclass
class RecordTypeDef:
    """A record type of one object in one org, and the profiles that may use it."""

    developer_name: str
    name: str
    id: str
    profiles: frozenset[str] | None  # None: every profile
    active: bool = True
    master: bool = False
    default_for: frozenset[str] = frozenset()

    def is_available_to(self, profile_name: str) -> bool:
        """Whether users of the profile may create records of this type."""
        if self.master:
            return True
        return self.active and (self.profiles is None or profile_name in self.profiles)


@dataclass
class SObjectDef:
    """An sObject type: its fields (in declaration order), record types and capabilities."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    custom: bool
    fields: dict[str, FieldDef]
    record_types: list[RecordTypeDef] = field(default_factory=list)
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    # Org-wide default sharing: public_read_write, public_read_only or private.
    sharing: str = "public_read_write"
    name_field: str | None = None
    fields_ci: dict[str, FieldDef] = field(init=False)
    relationships_ci: dict[str, FieldDef] = field(init=False)
    indexed_fields: tuple[FieldDef, ...] = field(init=False)
    derived_fields: tuple[FieldDef, ...] = field(init=False)
    # Precomputed for the write path, which runs for every record of every call.
    defaults: dict[str, Any] = field(init=False)
    auto_number_fields: tuple[FieldDef, ...] = field(init=False)
    required_fields: tuple[FieldDef, ...] = field(init=False)
    has_owner: bool = field(init=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the case-insensitive lookups after the field set changed."""
        self.fields_ci = {name.lower(): fdef for name, fdef in self.fields.items()}
        self.relationships_ci = {
            fdef.relationship_name.lower(): fdef
            for fdef in self.fields.values()
            if fdef.relationship_name
        }
        self.indexed_fields = tuple(f for f in self.fields.values() if f.is_indexed_key)
        self.derived_fields = tuple(f for f in self.fields.values() if f.derived)
        self.defaults = {
            f.name: f.default_value for f in self.fields.values() if f.default_value is not None
        }
        self.auto_number_fields = tuple(
            f for f in self.fields.values() if f.auto_number is not None
        )
        self.required_fields = tuple(f for f in self.fields.values() if f.required)
        self.has_owner = "OwnerId" in self.fields

    def field(self, name: str) -> FieldDef | None:
        """The field with this name, in any letter case, or None."""
        return self.fields_ci.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name this is (``Account``, ``Case__r``)."""
        return self.relationships_ci.get(name.lower())

    def record_type(self, record_type_id: str) -> RecordTypeDef | None:
        """The record type with this (18-character) Id, or None."""
        for record_type in self.record_types:
            if record_type.id == record_type_id:
                return record_type
        return None

    def default_record_type(self, profile_name: str) -> RecordTypeDef | None:
        """The record type a new record of this profile's user gets when none is given."""
        if not self.record_types:
            return None
        available = [rt for rt in self.record_types if rt.is_available_to(profile_name)]
        for record_type in available:
            if profile_name in record_type.default_for:
                return record_type
        non_master = [rt for rt in available if not rt.master]
        if non_master:
            return non_master[0]
        return available[0] if available else None
