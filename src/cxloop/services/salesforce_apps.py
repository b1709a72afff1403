"""The connected apps cxloop links with: set at run time, read at each linking.

Where a login host's app comes from, most specific first, settings winning at each level:
1. `CXLOOP_SALESFORCE_APPS[host]` (setting, per login host);
2. the database's app for that host (`cxloop salesforce app set --login-url URL`, or the app
   discovered from a local emulator by `cxloop connections add --type emulator`);
3. `CXLOOP_SALESFORCE_CLIENT_ID` + `CXLOOP_SALESFORCE_CLIENT_SECRET` (setting, the default);
4. the database's default app (`cxloop salesforce app set`).

Nothing is cached: a change takes effect at the next linking, token refresh or revocation,
in every process, without a restart. The secret is encrypted at rest and never shown.

A login host that has an app in the database is also trusted to receive credentials, like one
of `CXLOOP_SALESFORCE_EXTRA_HOSTS`: only an admin (or the CLI, run by whoever runs the server)
can put it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.models import SalesforceApp
from cxloop.db.uow import Database
from cxloop.errors import Forbidden, InvalidInput
from cxloop.salesforce import emulator_control, hosts
from cxloop.salesforce.errors import HostNotAllowed, SalesforceError
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT = ""  # the login_host key of the default app
MAX_CLIENT_ID = 300
MAX_CLIENT_SECRET = 500
MAX_LOGIN_HOST = 300


@dataclass(frozen=True)
class AppCredentials:
    """The connected app to use at one login host, and where it was found."""

    client_id: str
    client_secret: str
    source: str  # "setting" | "database"
    scope: str  # "default" or the login host


@dataclass(frozen=True)
class AppView:
    """A connected app as shown to people: never its secret."""

    scope: str  # "default" or the login host
    client_id: str
    source: str  # "setting" | "database" | "none"
    origin: str  # "manual" | "emulator" | "" (settings)
    updated_at: datetime | None
    overridden_by_setting: bool = False  # a database app that a setting hides


def resolve(session: Session, settings: Settings, login_url: str) -> AppCredentials | None:
    """The connected app for a login URL (the order is in this module's docstring)."""
    host = hosts.host_of(login_url)
    if host in settings.salesforce_apps:
        app = settings.salesforce_apps[host]
        return AppCredentials(app.client_id, app.client_secret.get_secret_value(), "setting", host)
    stored = session.get(SalesforceApp, host) if host else None
    if stored is not None:
        return AppCredentials(stored.client_id, stored.client_secret, "database", host)
    if settings.salesforce_client_id and settings.salesforce_client_secret is not None:
        return AppCredentials(
            settings.salesforce_client_id,
            settings.salesforce_client_secret.get_secret_value(),
            "setting",
            "default",
        )
    stored = session.get(SalesforceApp, DEFAULT)
    if stored is not None:
        return AppCredentials(stored.client_id, stored.client_secret, "database", "default")
    return None


def trusted_hosts(session: Session, settings: Settings) -> list[str]:
    """Hosts besides Salesforce's own that may receive credentials: the setting's, and every
    login host an admin gave a connected app."""
    stored = session.scalars(select(SalesforceApp.login_host).where(SalesforceApp.login_host != ""))
    return [*settings.salesforce_extra_hosts, *stored]


def trusted_hosts_of(db: Database, settings: Settings) -> list[str]:
    """`trusted_hosts` in its own read."""
    with db.reader() as uow:
        return trusted_hosts(uow.session, settings)


def show(db: Database, settings: Settings) -> list[AppView]:
    """Every connected app cxloop knows: the default first (source "none" when unset), then
    one per login host; never a secret."""
    with db.reader() as uow:
        stored = {a.login_host: a for a in uow.session.scalars(select(SalesforceApp))}
    views: list[AppView] = []
    default_db = stored.pop(DEFAULT, None)
    if settings.salesforce_client_id and settings.salesforce_client_secret is not None:
        views.append(AppView("default", settings.salesforce_client_id, "setting", "", None))
        if default_db is not None:
            views.append(_view("default", default_db, overridden=True))
    elif default_db is not None:
        views.append(_view("default", default_db))
    else:
        views.append(AppView("default", "", "none", "", None))
    for host, app in sorted(settings.salesforce_apps.items()):
        views.append(AppView(host, app.client_id, "setting", "", None))
    for host, row in sorted(stored.items()):
        views.append(_view(host, row, overridden=host in settings.salesforce_apps))
    return views


def set_app(
    db: Database,
    actor: Actor | None,
    client_id: str,
    client_secret: str,
    login_url: str | None = None,
    *,
    origin: str = "manual",
) -> AppView:
    """Store the default connected app, or the one for `login_url`'s host (admins only; `None`
    is the CLI, run by whoever runs the server). Takes effect at the next linking."""
    if actor is not None and not actor.is_admin:
        raise Forbidden("Only an admin can set the connected app.", code="admin_only")
    client_id, client_secret = (client_id or "").strip(), (client_secret or "").strip()
    if not client_id or len(client_id) > MAX_CLIENT_ID or any(c.isspace() for c in client_id):
        raise InvalidInput(
            f"The client id (consumer key) is one word of at most {MAX_CLIENT_ID} characters: "
            "copy it from the connected app (Setup > App Manager > the app > View > Manage "
            "Consumer Details).",
            code="bad_client_id",
        )
    if not client_secret or len(client_secret) > MAX_CLIENT_SECRET or "\n" in client_secret:
        raise InvalidInput(
            "The client secret (consumer secret) is missing or not one line: pipe it in, "
            'e.g. `printf %s "$SECRET" | cxloop salesforce app set --client-id ID '
            "--client-secret-stdin`.",
            code="bad_client_secret",
        )
    host = _host_key(login_url)
    with db.uow() as uow:
        row = uow.session.get(SalesforceApp, host)
        if row is None:
            row = SalesforceApp(login_host=host)
            uow.session.add(row)
        row.client_id, row.client_secret, row.origin = client_id, client_secret, origin
        row.updated_by = actor.id if actor else None
        uow.session.flush()
        audit.record(
            uow.session, actor.id if actor else None, "salesforce_app.set", "salesforce_app",
            (host or "default")[:64], login_host=host or "default", client_id=client_id,
            origin=origin,
        )  # fmt: skip
        uow.commit()
        log.info("salesforce_app.set", scope=host or "default", origin=origin)
        return _view(host or "default", row)


def prepare_emulator(
    db: Database, settings: Settings, actor: Actor | None, login_url: str, callback_url: str
) -> None:
    """Make a local emulator ready for linking at `login_url`: learn its connected app from its
    control API (stored for that login host, which it trusts) and register cxloop's callback
    URL in it. Admins and the CLI (`actor` None) may do this for a new host; anyone may for a
    host already trusted. The emulator's control API is unauthenticated and local-only."""
    try:
        origin = _origin_of(login_url)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="bad_login_url") from exc
    host = hosts.host_of(login_url)
    with db.reader() as uow:
        trusted = {h.lower() for h in trusted_hosts(uow.session, settings)}
        current = resolve(uow.session, settings, login_url)
    was_trusted = host in trusted or host.split(":", 1)[0] in trusted
    if not was_trusted and not _may_trust(actor):
        raise InvalidInput(
            f"The emulator at {origin} is not a host cxloop trusts yet. An admin adds it by "
            f"linking to it once (`cxloop connections add NAME --type emulator --login-url "
            f"{login_url}`), or lists it in CXLOOP_SALESFORCE_EXTRA_HOSTS.",
            code="bad_login_url",
        )
    try:
        apps = emulator_control.connected_apps(origin, timeout=settings.salesforce_timeout_s)
    except SalesforceError as exc:
        raise InvalidInput(
            f"No Salesforce emulator answers at {origin} ({exc.message}). Is `cxloop emulator "
            "serve` running there? Its first line names the URL to use.",
            code="emulator_unreachable",
        ) from exc
    if not apps:
        raise InvalidInput(
            f"The emulator at {origin} has no connected app: add one to its org file.",
            code="no_connected_app",
        )
    # The app cxloop would use anyway, when the emulator knows it; else the emulator's first.
    chosen = next((a for a in apps if current and a.client_id == current.client_id), None)
    if chosen is None:
        chosen = next((a for a in apps if a.name == "cxloop"), apps[0])
    if callback_url not in chosen.callback_urls:
        try:
            emulator_control.add_callback_url(
                origin, chosen.name, callback_url, timeout=settings.salesforce_timeout_s
            )
        except SalesforceError as exc:
            raise InvalidInput(
                f"The emulator at {origin} refused to register cxloop's callback URL "
                f"{callback_url} for its app {chosen.name!r}: {exc.message}",
                code="emulator_refused",
            ) from exc
        log.info("emulator.callback_registered", emulator=origin, callback_url=callback_url)
    # Stored for the login host (which trusts it) unless cxloop already uses this very app there.
    same = current is not None and (current.client_id, current.client_secret) == (
        chosen.client_id,
        chosen.client_secret,
    )
    if not same or not was_trusted:
        set_app(db, None, chosen.client_id, chosen.client_secret, login_url, origin="emulator")


# --- helpers


def _may_trust(actor: Actor | None) -> bool:
    return actor is None or actor.is_admin


def _view(scope: str, row: SalesforceApp, *, overridden: bool = False) -> AppView:
    return AppView(scope, row.client_id, "database", row.origin, row.updated_at, overridden)


def _host_key(login_url: str | None) -> str:
    if not login_url:
        return DEFAULT
    try:
        _origin_of(login_url)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="bad_login_url") from exc
    host = hosts.host_of(login_url)
    if len(host) > MAX_LOGIN_HOST:
        raise InvalidInput(
            f"A login host has at most {MAX_LOGIN_HOST} characters.", code="bad_login_url"
        )
    return host


def _origin_of(url: str) -> str:
    """`scheme://host[:port]` of an http(s) URL; ValueError in words otherwise."""
    try:
        return hosts.origin_of(url)
    except HostNotAllowed as exc:
        raise ValueError(exc.message) from exc
