"""Orgs, users, connected apps and their OAuth policies (the runtime model of an org file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .latency import LatencyModel, default_long_limit
from .permissions import Profile
from .schema import SObjectDef

REFRESH_POLICIES = ("valid_until_revoked", "expire_after", "expire_if_unused")
PERMITTED_USERS = ("all", "admin_approved")
ORG_KINDS = ("production", "sandbox")


def _check_one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass
class RefreshPolicy:
    """How long a refresh token lives: until revoked, N seconds after issue, or N unused."""

    kind: str = "valid_until_revoked"
    seconds: float | None = None

    def __post_init__(self) -> None:
        _check_one_of("refresh token policy", self.kind, REFRESH_POLICIES)
        if self.kind != "valid_until_revoked" and (self.seconds is None or self.seconds < 0):
            raise ValueError(f"refresh token policy {self.kind!r} needs 'seconds' >= 0")

    def is_expired(self, issued_at: float, last_used: float, now: float) -> bool:
        """Whether a refresh token issued/last used at these times is dead by now."""
        if self.kind == "expire_after":
            return now - issued_at > (self.seconds or 0)
        if self.kind == "expire_if_unused":
            return now - last_used > (self.seconds or 0)
        return False

    def as_dict(self) -> dict[str, Any]:
        """JSON form (control API, info)."""
        return {"kind": self.kind, "seconds": self.seconds}


@dataclass
class AppPolicy:
    """A connected app's OAuth policies as one org has set them."""

    permitted_users: str = "all"
    admin_approved_profiles: frozenset[str] = frozenset()
    refresh_token: RefreshPolicy = field(default_factory=RefreshPolicy)
    rotate_refresh_tokens: bool = False
    client_credentials_user: str | None = None

    def __post_init__(self) -> None:
        _check_one_of("permitted_users", self.permitted_users, PERMITTED_USERS)

    def allows(self, profile_name: str) -> bool:
        """Whether a user of this profile may use the app."""
        return self.permitted_users == "all" or profile_name in self.admin_approved_profiles

    def as_dict(self) -> dict[str, Any]:
        """JSON form (control API, info)."""
        return {
            "permitted_users": self.permitted_users,
            "admin_approved_profiles": sorted(self.admin_approved_profiles),
            "refresh_token_policy": self.refresh_token.as_dict(),
            "rotate_refresh_tokens": self.rotate_refresh_tokens,
            "client_credentials_user": self.client_credentials_user,
        }


@dataclass
class ConnectedApp:
    """A connected app (OAuth client): shared by every org, policies set per org."""

    name: str
    client_id: str
    client_secret: str
    callback_urls: list[str]
    scopes: list[str]
    require_secret: bool = True
    require_pkce: bool = False
    policy: AppPolicy = field(default_factory=AppPolicy)


@dataclass
class User:
    """A user of one org."""

    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    profile: Profile
    password: str
    alias: str
    active: bool = True
    # The control API can switch API access off for one user whatever the profile says.
    api_enabled_override: bool | None = None
    timezone: str = "America/Los_Angeles"
    locale: str = "en_US"
    language: str = "en_US"

    @property
    def name(self) -> str:
        """Display name."""
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def api_enabled(self) -> bool:
        """Whether REST calls are allowed for this user."""
        if self.api_enabled_override is not None:
            return self.api_enabled_override and self.profile.api_enabled
        return self.profile.api_enabled


@dataclass
class OutboundRule:
    """An outbound message: when a record of ``sobject`` is created/updated and ``field``
    becomes ``value`` (or always, when no field is given), send ``fields`` to ``endpoint_url``.
    """

    id: str  # the ActionId (04k...)
    name: str
    sobject: str
    endpoint_url: str
    fields: list[str]
    events: tuple[str, ...] = ("created", "updated")
    field: str | None = None
    value: Any = None
    include_session_id: bool = False
    user: str | None = None  # username the message is sent as (its session id)
    active: bool = True
    api_version: str = "62.0"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (control API)."""
        return {
            "id": self.id,
            "name": self.name,
            "object": self.sobject,
            "events": list(self.events),
            "field": self.field,
            "value": self.value,
            "fields": self.fields,
            "endpoint_url": self.endpoint_url,
            "include_session_id": self.include_session_id,
            "user": self.user,
            "active": self.active,
            "api_version": self.api_version,
        }


@dataclass
class Org:
    """One org: schema, profiles, users, settings, app policies and outbound rules."""

    id: str
    alias: str
    name: str
    kind: str
    edition: str
    pod: str
    sobjects: dict[str, SObjectDef]  # lower-case name -> type
    profiles: dict[str, Profile]
    users: dict[str, User]  # lower-case username -> user
    daily_api_limit: int = 15000
    session_timeout_s: float = 7200.0
    app_policies: dict[str, AppPolicy] = field(default_factory=dict)
    outbound_rules: list[OutboundRule] = field(default_factory=list)
    seed: list[dict[str, Any]] = field(default_factory=list)
    users_by_id: dict[str, User] = field(init=False)
    latency: LatencyModel = field(init=False)

    def __post_init__(self) -> None:
        self.users_by_id = {user.id: user for user in self.users.values()}
        self.latency = LatencyModel(
            concurrent_long_limit=default_long_limit(self.kind, self.edition)
        )

    @property
    def id15(self) -> str:
        """The 15-character org id (SOAP URLs use it)."""
        return self.id[:15]

    @property
    def is_sandbox(self) -> bool:
        """Whether users log in at the sandbox login host."""
        return self.kind == "sandbox"

    def sobject(self, name: str) -> SObjectDef | None:
        """The sObject type with this name (any letter case), or None."""
        return self.sobjects.get(name.lower())

    def user(self, username: str) -> User | None:
        """The user with this username (any letter case), or None."""
        return self.users.get(username.lower())

    def policy_for(self, app: ConnectedApp) -> AppPolicy:
        """The org's policy for an app (the app's default until the org sets its own)."""
        policy = self.app_policies.get(app.name)
        if policy is None:
            policy = AppPolicy(
                permitted_users=app.policy.permitted_users,
                admin_approved_profiles=app.policy.admin_approved_profiles,
                refresh_token=RefreshPolicy(
                    app.policy.refresh_token.kind, app.policy.refresh_token.seconds
                ),
                rotate_refresh_tokens=app.policy.rotate_refresh_tokens,
                client_credentials_user=app.policy.client_credentials_user,
            )
            self.app_policies[app.name] = policy
        return policy
