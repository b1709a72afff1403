"""What to change, and where, to fix what the doctor and the save-time checks find. Pure.

A real org is fixed in Salesforce Setup; the local emulator has no Setup pages, so its fixes
name the org file key (profiles, objects) or the control API call (`/__emulator__/...`) that
changes the same thing. The checks say *what* is wrong; a `Remedies` says how to fix it for
the kind of org the connection points at, so no check is written twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

# Salesforce's object permission names (Setup) and the emulator's org file words for them,
# keyed by the describe flag that shows each one.
OBJECT_RIGHTS = MappingProxyType(
    {
        "queryable": ("Read", "read"),
        "createable": ("Create", "create"),
        "updateable": ("Edit", "edit"),
        "deletable": ("Delete", "delete"),
    }
)


@dataclass(frozen=True)
class Remedies:
    """Fix texts for one connection: Setup paths for a real org, or the emulator's own names.

    `profile` is the connected user's profile when known (the doctor and the save-time checks
    look it up only when a fix needs it); otherwise the texts name the user.
    """

    is_emulator: bool = False
    username: str = ""
    profile: str | None = None
    control_url: str = ""  # the emulator's control API, e.g. http://127.0.0.1:8701/__emulator__
    org: str = ""  # the org id, as the emulator's control API takes it

    @classmethod
    def for_connection(
        cls,
        connection_type: str,
        *,
        username: str = "",
        instance_url: str = "",
        org_id: str = "",
        profile: str | None = None,
    ) -> Remedies:
        """The remedies for a connection of this type (`emulator` or a real org)."""
        parts = urlsplit(instance_url)
        control = f"{parts.scheme}://{parts.netloc}/__emulator__" if parts.netloc else ""
        return cls(
            is_emulator=connection_type == "emulator",
            username=username,
            profile=profile,
            control_url=control,
            org=org_id,
        )

    def with_profile(self, profile: str | None) -> Remedies:
        """The same remedies, naming the connected user's profile."""
        return Remedies(self.is_emulator, self.username, profile, self.control_url, self.org)

    # --- who gets the permission

    @property
    def _setup_profile(self) -> str:
        user = self.username or "the connection's user"
        if self.profile:
            return f"the profile '{self.profile}' (or a permission set assigned to {user})"
        return f"the profile of {user} (or a permission set assigned to that user)"

    @property
    def _file_profile(self) -> str:
        return f"profiles: {self._profile_name}"

    @property
    def _profile_name(self) -> str:
        if self.profile:
            return f"'{self.profile}'"
        who = self.username or "the connection's user"
        where = f"; {self.control_url}/info lists each user's profile" if self.control_url else ""
        return f"(the profile of {who}{where})"

    @property
    def _reload(self) -> str:
        return (
            "then restart the emulator with `cxloop emulator serve --org FILE` (copy "
            "src/sfemu/default_org.yaml to start from the default org) and reconnect"
        )

    @property
    def _org(self) -> str:
        return self.org or "ORG_ID"

    def _control(self, method: str, path: str, body: dict[str, object] | None = None) -> str:
        data = f" -d '{json.dumps(body)}'" if body is not None else ""
        return f"`curl -X {method} {self.control_url or '$EMULATOR/__emulator__'}{path}{data}`"

    # --- objects and fields

    def object_permission(
        self, sobject: str, missing: Sequence[str], granted: Sequence[str]
    ) -> str:
        """Grant the object rights `missing` (describe flags: createable, ...); `granted` are
        the flags the user has now."""
        if self.is_emulator:
            words = [OBJECT_RIGHTS[f][1] for f in OBJECT_RIGHTS if f in granted or f in missing]
            added = ", ".join(OBJECT_RIGHTS[m][1] for m in missing)
            return (
                f"In the emulator's org file, add {added} under {self._file_profile} → "
                f"objects → {sobject} (`{sobject}: [{', '.join(words)}]`); {self._reload}."
            )
        rights = " and ".join(OBJECT_RIGHTS[m][0] for m in missing)
        return (
            f"In Setup → Users → Profiles, open {self._setup_profile} → Object Settings → "
            f"{sobject} → Edit, and tick {rights}."
        )

    def object_hidden(self, sobject: str) -> str:
        """Make an object the user cannot see readable (or point at its API name)."""
        if self.is_emulator:
            return (
                f"Check the API name (custom objects end in __c); if {sobject} is in the org "
                f"file's `objects:`, add read under {self._file_profile} → objects → "
                f"{sobject}; {self._reload}."
            )
        return (
            f"Check the API name (custom objects end in __c); if it exists, give "
            f"{self._setup_profile} Read on {sobject} (Setup → Users → Profiles → Object "
            "Settings)."
        )

    def field_hidden(self, sobject: str, name: str) -> str:
        """Make a field the user cannot see visible and editable."""
        if self.is_emulator:
            return (
                f"if {sobject}.{name} exists, remove `{name}: hidden` under "
                f"{self._file_profile} → fields → {sobject} in the emulator's org file; "
                f"{self._reload}."
            )
        return (
            f"if {sobject}.{name} exists, make it visible and editable for "
            f"{self._setup_profile} in Setup → Object Manager → {sobject} → Fields & "
            f"Relationships → {name} → Set Field-Level Security."
        )

    def field_read_only(self, sobject: str, name: str) -> str:
        """Make a read-only field editable for the user."""
        if self.is_emulator:
            return (
                f"In the emulator's org file, set `{name}: edit` (or remove its entry) under "
                f"{self._file_profile} → fields → {sobject}; {self._reload}. Or remove the "
                "mapping."
            )
        return (
            f"In Setup → Object Manager → {sobject} → Fields & Relationships → {name} → Set "
            f"Field-Level Security, untick Read-Only for {self._setup_profile}. Or remove the "
            "mapping."
        )

    def picklist_value(self, sobject: str, name: str, values: Sequence[str]) -> str:
        """Use an existing value, or add the new ones to the picklist."""
        quoted = ", ".join(repr(v) for v in values)
        if self.is_emulator:
            return (
                f"Use one of the picklist's values, or add {quoted} to objects → {sobject} → "
                f"fields → {name} → values in the emulator's org file; {self._reload}."
            )
        return (
            f"Use one of the picklist's values, or add {quoted} in Setup → Object Manager → "
            f"{sobject} → Fields & Relationships → {name} → Values → New."
        )

    def external_id(self, sobject: str, key: str) -> str:
        """Make a field an external id (or choose another key)."""
        if self.is_emulator:
            return (
                f"In the emulator's org file, set `external_id: true` (and `unique: true`) on "
                f"objects → {sobject} → fields → {key}; {self._reload}. Or choose another key."
            )
        return (
            f"In Setup → Object Manager → {sobject} → Fields & Relationships → {key} → Edit, "
            "tick 'External ID' (and 'Unique' to rule out duplicates), or choose another key."
        )

    def record_type(self, sobject: str, record_type: str) -> str:
        """Assign a record type to the user's profile."""
        if self.is_emulator:
            return (
                f"In the emulator's org file, add {self._profile_name} to the `profiles:` of the "
                f"record type {record_type!r} under objects → {sobject} → record_types; "
                f"{self._reload}."
            )
        return (
            f"In Setup → Users → Profiles, open {self._setup_profile} → Object Settings → "
            f"{sobject} → Edit, and add the record type {record_type!r} to the assigned record "
            "types."
        )

    # --- the connection as a whole (the doctor)

    def api_enabled(self) -> str:
        """Give the user API access."""
        if self.is_emulator:
            user = self.username or "USERNAME"
            call = self._control("PATCH", f"/users/{user}", {"api_enabled": True})
            return f"Switch it on: {call}."
        return (
            f"In Setup → Users → Profiles, open {self._setup_profile} and tick 'API Enabled' "
            "under Administrative Permissions."
        )

    def refresh_policy(self) -> str:
        """Make refresh tokens last until revoked."""
        if self.is_emulator:
            body = {"refresh_token_policy": {"kind": "valid_until_revoked"}}
            call = self._control("PATCH", f"/orgs/{self._org}", body)
            return (
                "Reconnect with `cxloop connections refresh`, and keep refresh tokens valid: "
                f"{call}."
            )
        return (
            "Reconnect with `cxloop connections refresh`, and in Setup → App Manager → (the "
            "connected app) → Manage → Edit Policies set 'Refresh Token Policy' to 'Refresh "
            "token is valid until revoked'."
        )

    def api_requests(self) -> str:
        """Free or raise the org's daily API allocation."""
        if self.is_emulator:
            raise_limit = self._control("PATCH", f"/orgs/{self._org}", {"daily_api_limit": 100000})
            forget = self._control("DELETE", f"/api_usage?org={self._org}")
            return f"Raise the allocation ({raise_limit}) or forget the usage so far ({forget})."
        return (
            "Find what else uses the org's API (Setup → System Overview), or raise the limit; "
            "cxloop holds its work meanwhile."
        )
