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

from cxloop.domain.phrases import Phrase, and_list

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
    def _user(self) -> str:
        return self.username or Phrase("the connection's user")

    @property
    def _setup_profile(self) -> str:
        if self.profile:
            return Phrase(
                "the profile '%(profile)s' (or a permission set assigned to %(user)s)",
                profile=self.profile, user=self._user,
            )  # fmt: skip
        return Phrase(
            "the profile of %(user)s (or a permission set assigned to that user)", user=self._user
        )

    @property
    def _file_profile(self) -> str:
        return Phrase("profiles: %(profile)s", profile=self._profile_name)

    @property
    def _profile_name(self) -> str:
        if self.profile:
            return f"'{self.profile}'"
        where = (
            Phrase("; %(url)s/info lists each user's profile", url=self.control_url)
            if self.control_url
            else ""
        )
        return Phrase("(the profile of %(user)s%(where)s)", user=self._user, where=where)

    @property
    def _reload(self) -> str:
        return Phrase(
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
            return Phrase(
                "In the emulator's org file, add %(added)s under %(profile)s → objects → "
                "%(object)s (`%(object)s: [%(words)s]`); %(reload)s.",
                added=added, profile=self._file_profile, object=sobject,
                words=", ".join(words), reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "In Setup → Users → Profiles, open %(profile)s → Object Settings → %(object)s → "
            "Edit, and tick %(rights)s.",
            profile=self._setup_profile, object=sobject,
            rights=and_list([OBJECT_RIGHTS[m][0] for m in missing]),
        )  # fmt: skip

    def object_hidden(self, sobject: str) -> str:
        """Make an object the user cannot see readable (or point at its API name)."""
        if self.is_emulator:
            return Phrase(
                "Check the API name (custom objects end in __c); if %(object)s is in the org "
                "file's `objects:`, add read under %(profile)s → objects → %(object)s; "
                "%(reload)s.",
                object=sobject, profile=self._file_profile, reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "Check the API name (custom objects end in __c); if it exists, give %(profile)s "
            "Read on %(object)s (Setup → Users → Profiles → Object Settings).",
            profile=self._setup_profile, object=sobject,
        )  # fmt: skip

    def field_hidden(self, sobject: str, name: str) -> str:
        """Make a field the user cannot see visible and editable."""
        if self.is_emulator:
            return Phrase(
                "if %(object)s.%(field)s exists, remove `%(field)s: hidden` under %(profile)s → "
                "fields → %(object)s in the emulator's org file; %(reload)s.",
                object=sobject, field=name, profile=self._file_profile, reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "if %(object)s.%(field)s exists, make it visible and editable for %(profile)s in "
            "Setup → Object Manager → %(object)s → Fields & Relationships → %(field)s → Set "
            "Field-Level Security.",
            object=sobject, field=name, profile=self._setup_profile,
        )  # fmt: skip

    def field_read_only(self, sobject: str, name: str) -> str:
        """Make a read-only field editable for the user."""
        if self.is_emulator:
            return Phrase(
                "In the emulator's org file, set `%(field)s: edit` (or remove its entry) under "
                "%(profile)s → fields → %(object)s; %(reload)s. Or remove the mapping.",
                field=name, profile=self._file_profile, object=sobject, reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "In Setup → Object Manager → %(object)s → Fields & Relationships → %(field)s → Set "
            "Field-Level Security, untick Read-Only for %(profile)s. Or remove the mapping.",
            object=sobject, field=name, profile=self._setup_profile,
        )  # fmt: skip

    def picklist_value(self, sobject: str, name: str, values: Sequence[str]) -> str:
        """Use an existing value, or add the new ones to the picklist."""
        quoted = ", ".join(repr(v) for v in values)
        if self.is_emulator:
            return Phrase(
                "Use one of the picklist's values, or add %(values)s to objects → %(object)s → "
                "fields → %(field)s → values in the emulator's org file; %(reload)s.",
                values=quoted, object=sobject, field=name, reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "Use one of the picklist's values, or add %(values)s in Setup → Object Manager → "
            "%(object)s → Fields & Relationships → %(field)s → Values → New.",
            values=quoted, object=sobject, field=name,
        )  # fmt: skip

    def external_id(self, sobject: str, key: str) -> str:
        """Make a field an external id (or choose another key)."""
        if self.is_emulator:
            return Phrase(
                "In the emulator's org file, set `external_id: true` (and `unique: true`) on "
                "objects → %(object)s → fields → %(key)s; %(reload)s. Or choose another key.",
                object=sobject, key=key, reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "In Setup → Object Manager → %(object)s → Fields & Relationships → %(key)s → Edit, "
            "tick 'External ID' (and 'Unique' to rule out duplicates), or choose another key.",
            object=sobject, key=key,
        )  # fmt: skip

    def record_type(self, sobject: str, record_type: str) -> str:
        """Assign a record type to the user's profile."""
        if self.is_emulator:
            return Phrase(
                "In the emulator's org file, add %(profile)s to the `profiles:` of the record "
                "type %(record_type)s under objects → %(object)s → record_types; %(reload)s.",
                profile=self._profile_name, record_type=repr(record_type), object=sobject,
                reload=self._reload,
            )  # fmt: skip
        return Phrase(
            "In Setup → Users → Profiles, open %(profile)s → Object Settings → %(object)s → "
            "Edit, and add the record type %(record_type)s to the assigned record types.",
            profile=self._setup_profile, object=sobject, record_type=repr(record_type),
        )  # fmt: skip

    # --- the connection as a whole (the doctor)

    def api_enabled(self) -> str:
        """Give the user API access."""
        if self.is_emulator:
            user = self.username or "USERNAME"
            call = self._control("PATCH", f"/users/{user}", {"api_enabled": True})
            return Phrase("Switch it on: %(call)s.", call=call)
        return Phrase(
            "In Setup → Users → Profiles, open %(profile)s and tick 'API Enabled' under "
            "Administrative Permissions.",
            profile=self._setup_profile,
        )

    def refresh_policy(self) -> str:
        """Make refresh tokens last until revoked."""
        if self.is_emulator:
            body = {"refresh_token_policy": {"kind": "valid_until_revoked"}}
            call = self._control("PATCH", f"/orgs/{self._org}", body)
            return Phrase(
                "Reconnect with `cxloop connections refresh`, and keep refresh tokens valid: "
                "%(call)s.",
                call=call,
            )
        return Phrase(
            "Reconnect with `cxloop connections refresh`, and in Setup → App Manager → (the "
            "connected app) → Manage → Edit Policies set 'Refresh Token Policy' to 'Refresh "
            "token is valid until revoked'."
        )

    def api_requests(self) -> str:
        """Free or raise the org's daily API allocation."""
        if self.is_emulator:
            raise_limit = self._control("PATCH", f"/orgs/{self._org}", {"daily_api_limit": 100000})
            forget = self._control("DELETE", f"/api_usage?org={self._org}")
            return Phrase(
                "Raise the allocation (%(raise)s) or forget the usage so far (%(forget)s).",
                **{"raise": raise_limit, "forget": forget},
            )
        return Phrase(
            "Find what else uses the org's API (Setup → System Overview), or raise the limit; "
            "cxloop holds its work meanwhile."
        )
