"""Profiles: API Enabled, object permissions, field-level security, record visibility.

Object permissions follow Salesforce's implications: edit needs read, delete needs edit,
view all needs read, modify all grants everything. Field-level security per field is one of
``hidden`` (the field does not exist for the user), ``read`` or ``edit`` (the default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import FieldDef, SObjectDef

OBJECT_PERMISSIONS = ("read", "create", "edit", "delete", "view_all", "modify_all")
FIELD_ACCESS = ("hidden", "read", "edit")


@dataclass(frozen=True)
class ObjectPerms:
    """What a profile may do with one object."""

    read: bool = False
    create: bool = False
    edit: bool = False
    delete: bool = False
    view_all: bool = False
    modify_all: bool = False

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...] | set[str]) -> ObjectPerms:
        """Build from permission names, applying Salesforce's implications."""
        granted = set(names)
        unknown = granted - set(OBJECT_PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown object permission(s): {', '.join(sorted(unknown))}")
        if "modify_all" in granted:
            granted |= set(OBJECT_PERMISSIONS)
        if "delete" in granted:
            granted |= {"edit"}
        if "view_all" in granted or "edit" in granted or "create" in granted:
            granted |= {"read"}
        return cls(**{name: name in granted for name in OBJECT_PERMISSIONS})

    def names(self) -> list[str]:
        """The granted permission names."""
        return [name for name in OBJECT_PERMISSIONS if getattr(self, name)]


NO_ACCESS = ObjectPerms()


@dataclass
class AccessView:
    """A profile's effective view of one object, precomputed because DML checks it per field."""

    sobject: SObjectDef
    perms: ObjectPerms
    readable: dict[str, FieldDef]  # lower-case name -> field, hidden fields left out
    createable: frozenset[str]  # canonical names the user may set on create
    updateable: frozenset[str]  # canonical names the user may set on update

    def field(self, name: str) -> FieldDef | None:
        """The field if it exists and is visible to the user."""
        return self.readable.get(name.lower())


@dataclass
class Profile:
    """A profile in one org."""

    name: str
    id: str
    api_enabled: bool = True
    view_all_data: bool = False
    modify_all_data: bool = False
    objects: dict[str, ObjectPerms] = field(default_factory=dict)  # lower-case name or "*"
    fields: dict[str, dict[str, str]] = field(default_factory=dict)  # object -> field -> access
    _views: dict[str, AccessView] = field(default_factory=dict, repr=False)

    def object_perms(self, sobject: SObjectDef) -> ObjectPerms:
        """The object permissions, with the object's own capabilities applied."""
        if self.modify_all_data:
            perms = ObjectPerms.from_names(OBJECT_PERMISSIONS)
        else:
            perms = self.objects.get(sobject.name.lower()) or self.objects.get("*", NO_ACCESS)
            if self.view_all_data and perms.read:
                perms = ObjectPerms.from_names([*perms.names(), "view_all"])
        # An object that is read-only by nature (User, Organization) stays so for everyone.
        return ObjectPerms(
            read=perms.read and sobject.queryable,
            create=perms.create and sobject.createable,
            edit=perms.edit and sobject.updateable,
            delete=perms.delete and sobject.deletable,
            view_all=perms.view_all,
            modify_all=perms.modify_all and sobject.updateable,
        )

    def field_access(self, sobject: SObjectDef, fdef: FieldDef) -> str:
        """``hidden``, ``read`` or ``edit`` for one field."""
        if fdef.system:
            return "read"
        return self.fields.get(sobject.name.lower(), {}).get(fdef.name.lower(), "edit")

    def view(self, sobject: SObjectDef) -> AccessView:
        """The cached AccessView for an object."""
        cached = self._views.get(sobject.name)
        if cached is not None and cached.sobject is sobject:
            return cached
        perms = self.object_perms(sobject)
        readable: dict[str, FieldDef] = {}
        createable: set[str] = set()
        updateable: set[str] = set()
        for fdef in sobject.fields.values():
            access = self.field_access(sobject, fdef)
            if access == "hidden":
                continue
            readable[fdef.name.lower()] = fdef
            if access == "edit":
                if fdef.createable and perms.create:
                    createable.add(fdef.name)
                if fdef.updateable and perms.edit:
                    updateable.add(fdef.name)
        view = AccessView(sobject, perms, readable, frozenset(createable), frozenset(updateable))
        self._views[sobject.name] = view
        return view

    def invalidate(self) -> None:
        """Forget cached views (after a schema or permission change)."""
        self._views.clear()


def can_see(view: AccessView, user_id: str, record: dict[str, Any]) -> bool:
    """Record visibility: org-wide default sharing, ownership, View All."""
    if view.sobject.sharing != "private" or view.perms.view_all or view.perms.modify_all:
        return True
    return record.get("OwnerId") == user_id


def can_edit(view: AccessView, user_id: str, record: dict[str, Any]) -> bool:
    """Record editability: read/write sharing, ownership, Modify All."""
    if view.perms.modify_all:
        return True
    if view.sobject.sharing == "public_read_write":
        return True
    return record.get("OwnerId") == user_id
