"""Use cases for Salesforce connections: link, refresh, rename, remove, and token care.

Linking is three steps, bound to the browser of the user who started it:
1. `start_linking` stores an OAuth attempt (PKCE verifier) and returns a one-time bootstrap link
   on cxloop (`/oauth/salesforce/start/{id}`, short-lived);
2. `begin_in_browser`, when that link is opened in a browser signed in to cxloop as the same
   user, issues the state and a one-time browser secret (an HttpOnly cookie) and returns the URL
   of Salesforce's login page;
3. `complete_linking`, called by the OAuth callback, completes only in that browser (the cookie
   matches the state, the session is the same user), checks everything else (expiry, token
   signature, hosts, identity, limits) and only then writes the connection.
Someone else's browser following a leaked Salesforce login URL (the OAuth linking CSRF) gets a
refusal and nothing is stored. A failed attempt leaves no connection behind, only its reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import CONNECTION_TYPES, Connection, OAuthAttempt, OrgApiUsage
from cxloop.db.uow import Database
from cxloop.domain.statuses import ConnectionStatus, LinkingStatus
from cxloop.errors import Conflict, CxloopError, Forbidden, InvalidInput, LimitReached, NotFound
from cxloop.salesforce import hosts, oauth
from cxloop.salesforce.errors import HostNotAllowed, SalesforceError
from cxloop.services import audit, salesforce_apps
from cxloop.services.access import Actor
from cxloop.services.changes import check_line_name, check_name_free
from cxloop.settings import Settings

log = structlog.get_logger(__name__)


class LinkingFailed(CxloopError):
    """The OAuth callback could not finish linking; the message says why and what to do."""

    code = "linking_failed"


class LinkingRefused(LinkingFailed, Forbidden):
    """The callback or bootstrap link came to a browser that did not start this linking."""


BROWSER_COOKIE_PREFIX = "cxloop_oauth_"
BOOTSTRAP_PATH = "/oauth/salesforce/start/"


@dataclass(frozen=True)
class LinkingStarted:
    attempt_id: str
    authorize_url: str  # the one-time bootstrap link on cxloop, to open in a signed-in browser
    expires_at: datetime
    callback_url: str = ""  # where Salesforce sends the browser back: the app must list it


@dataclass(frozen=True)
class BrowserStart:
    """What the bootstrap link gives the browser: a cookie to keep, and where to go next."""

    salesforce_url: str
    cookie_name: str
    cookie_value: str
    max_age_s: int


def browser_cookie_name(attempt_id: str) -> str:
    """One cookie per attempt: linking two connections at once in one browser works."""
    return BROWSER_COOKIE_PREFIX + attempt_id


@dataclass(frozen=True)
class RemovalResult:
    revoked_at_salesforce: bool
    message: str


# --- linking


def start_linking(
    db: Database,
    settings: Settings,
    actor: Actor,
    name: str,
    connection_type: str,
    login_url: str | None = None,
    *,
    operator: bool = False,
) -> LinkingStarted:
    """Begin linking a new connection: returns the one-time link the user opens in a browser
    signed in to cxloop (it leads on to Salesforce's login page).

    For an emulator connection, the emulator's connected app is learnt from its control API and
    cxloop's callback URL registered there first, so no setting is needed. `operator`: the
    caller is the CLI, run by whoever runs the server, who may trust a new emulator host (as an
    admin may)."""
    name = check_line_name(name, "connection")
    if connection_type not in CONNECTION_TYPES:
        raise InvalidInput(
            f"Unknown connection type {connection_type!r}: "
            f"use one of {', '.join(CONNECTION_TYPES)}.",
            code="bad_connection_type",
        )
    if connection_type in ("production", "sandbox") and login_url:
        raise InvalidInput(
            f"A {connection_type} connection logs in at "
            f"{hosts.login_url_for(connection_type, None, ())}; login_url is only for custom and "
            "emulator connections.",
            code="bad_login_url",
        )
    if connection_type == "emulator" and login_url:
        salesforce_apps.prepare_emulator(
            db, settings, None if operator else actor, login_url.rstrip("/"),
            settings.oauth_callback_url,
        )  # fmt: skip
    try:
        resolved_login_url = hosts.login_url_for(
            connection_type, login_url, salesforce_apps.trusted_hosts_of(db, settings)
        )
    except HostNotAllowed as exc:
        raise InvalidInput(exc.message, code="bad_login_url") from exc
    with db.uow() as uow:
        app = _client_app(uow.session, settings, resolved_login_url)
        _check_room_for_another(uow.session, settings, actor.id, name)
        started = _new_attempt(
            uow.session, settings, app, actor.id, name, connection_type, resolved_login_url, None
        )
        uow.commit()
    return started


def start_refresh(
    db: Database, settings: Settings, actor: Actor, connection_id: str
) -> LinkingStarted:
    """Re-run the OAuth flow for an existing connection (same id, so workflows keep working);
    like `start_linking`, through a one-time link for a signed-in browser."""
    emulator_url = _emulator_login_url(db, actor, connection_id)
    if emulator_url:
        # The server may serve elsewhere than when it was linked: register today's callback.
        salesforce_apps.prepare_emulator(
            db, settings, actor, emulator_url, settings.oauth_callback_url
        )
    with db.uow() as uow:
        connection = _own_connection(uow.session, actor, connection_id)
        app = _client_app(uow.session, settings, connection.login_url)
        started = _new_attempt(
            uow.session, settings, app, actor.id, connection.name, connection.type,
            connection.login_url, connection.id,
        )  # fmt: skip
        uow.commit()
    return started


def _emulator_login_url(db: Database, actor: Actor, connection_id: str) -> str | None:
    """The login URL of one of the actor's emulator connections (None for other types)."""
    with db.reader() as uow:
        connection = _own_connection(uow.session, actor, connection_id)
        return connection.login_url if connection.type == "emulator" else None


def complete_linking(
    db: Database,
    settings: Settings,
    *,
    state: str,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
    browser_user_id: str | None,
    browser_cookies: Mapping[str, str],
) -> Connection:
    """Finish an attempt from the OAuth callback's parameters, in the browser that started it
    (its one-time cookie, and a session of the same user); LinkingFailed says why not."""
    attempt = _claim_attempt(db, state, browser_user_id, browser_cookies)
    try:
        if error:
            if error == "access_denied":
                raise LinkingFailed(
                    "Access was not granted at Salesforce (you chose Deny, or an admin must "
                    "approve this app). Nothing was linked; start again when ready.",
                    code="access_denied",
                )
            if error == "redirect_uri_mismatch":
                raise LinkingFailed(
                    explain_callback_mismatch(settings.oauth_callback_url),
                    code="redirect_uri_mismatch",
                )
            raise LinkingFailed(
                f"Salesforce refused the login: {error}: {error_description or 'no details'}.",
                code="salesforce_refused",
            )
        if not code:
            raise LinkingFailed("The callback carried no authorization code.", code="no_code")
        app = client_app(db, settings, attempt.login_url)
        token = _exchange(db, settings, attempt, app, code)
        try:
            connection = _save_connection(db, settings, attempt, token)
        except CxloopError:
            _revoke_quietly(attempt.login_url, app, token.refresh_token or token.access_token)
            raise
    except CxloopError as exc:
        _finish_attempt(db, attempt.id, LinkingStatus.FAILED, exc.message)
        raise
    _finish_attempt(db, attempt.id, LinkingStatus.COMPLETED, "", connection.id)
    log.info("connection.linked", connection_id=connection.id, org_id=connection.org_id)
    return connection


def attempt_id_for_state(db: Database, state: str) -> str | None:
    """The id of the linking attempt an OAuth callback's `state` belongs to, if any (so that
    the callback can send the browser back to the page that started it)."""
    if not state or len(state) > 200:
        return None
    with db.reader() as uow:
        return uow.session.scalar(
            select(OAuthAttempt.id).where(OAuthAttempt.state_hash == _hash_state(state))
        )


def attempt_status(db: Database, actor: Actor, attempt_id: str) -> OAuthAttempt:
    """An attempt's state (pending, completed, failed, expired), for whoever started it."""
    with db.reader() as uow:
        attempt = uow.session.get(OAuthAttempt, attempt_id)
        if attempt is None or attempt.user_id != actor.id:
            raise NotFound(f"No linking attempt {attempt_id!r}.", subject="linking_attempt")
        if attempt.status == LinkingStatus.PENDING and attempt.expires_at <= utcnow():
            attempt.status = LinkingStatus.EXPIRED
            attempt.error = "The login link expired before it was used; start again."
        return attempt


def _new_attempt(
    session: Session,
    settings: Settings,
    app: oauth.ClientApp,
    user_id: str,
    name: str,
    connection_type: str,
    login_url: str,
    connection_id: str | None,
) -> LinkingStarted:
    # The real state is issued when the bootstrap link is opened; until then the attempt
    # holds the hash of a value nobody knows, so no callback can match it.
    code_verifier = secrets.token_urlsafe(64)
    bootstrap = secrets.token_urlsafe(32)
    now = utcnow()
    attempt = OAuthAttempt(
        state_hash=_hash_state(secrets.token_urlsafe(32)),
        user_id=user_id,
        connection_id=connection_id,
        name=name,
        type=connection_type,
        login_url=login_url,
        code_verifier=code_verifier,
        expires_at=now + timedelta(seconds=settings.oauth_attempt_ttl_s),
        bootstrap_hash=_hash_state(bootstrap),
        bootstrap_expires_at=now
        + timedelta(seconds=min(settings.oauth_bootstrap_ttl_s, settings.oauth_attempt_ttl_s)),
    )
    session.add(attempt)
    session.flush()
    url = settings.base_url.rstrip("/") + BOOTSTRAP_PATH + bootstrap
    return LinkingStarted(
        attempt_id=attempt.id,
        authorize_url=url,
        expires_at=attempt.expires_at,
        callback_url=settings.oauth_callback_url,
    )


def begin_in_browser(
    db: Database, settings: Settings, bootstrap: str, browser_user_id: str
) -> BrowserStart:
    """Open a bootstrap link in a browser signed in as `browser_user_id`: binds the attempt to
    this browser (state + one-time cookie) and returns where Salesforce's login is. Single use."""
    with db.uow() as uow:
        attempt = (
            uow.session.scalar(
                select(OAuthAttempt).where(OAuthAttempt.bootstrap_hash == _hash_state(bootstrap))
            )
            if bootstrap and len(bootstrap) <= 100
            else None
        )
        if attempt is None:
            raise LinkingFailed(
                "This linking link is unknown to cxloop: start linking again from cxloop.",
                code="bad_bootstrap",
            )
        if attempt.user_id != browser_user_id:
            raise LinkingRefused(
                "This linking link was started by another cxloop user than the one signed in "
                "in this browser. Sign in as the user who started it, or start linking yourself.",
                code="wrong_user",
            )
        now = utcnow()
        if attempt.status != LinkingStatus.PENDING or attempt.browser_hash is not None:
            raise LinkingFailed(
                "This linking link was already used. Start linking again from cxloop.",
                code="bootstrap_used",
            )
        if min(attempt.expires_at, attempt.bootstrap_expires_at or attempt.expires_at) <= now:
            raise LinkingFailed(
                "This linking link expired before it was opened. Start linking again from cxloop.",
                code="bootstrap_expired",
            )
        state, browser_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        attempt.state_hash = _hash_state(state)
        attempt.browser_hash = _hash_state(browser_secret)
        app = _client_app(uow.session, settings, attempt.login_url)
        # prompt=login consent: on refresh, let the person pick the right Salesforce user again.
        url = oauth.authorization_url(
            attempt.login_url, app, state, attempt.code_verifier,
            prompt="login consent" if attempt.connection_id else None,
        )  # fmt: skip
        uow.commit()
        return BrowserStart(
            salesforce_url=url,
            cookie_name=browser_cookie_name(attempt.id),
            cookie_value=browser_secret,
            max_age_s=max(1, int((attempt.expires_at - now).total_seconds())),
        )


def _claim_attempt(
    db: Database, state: str, browser_user_id: str | None, browser_cookies: Mapping[str, str]
) -> OAuthAttempt:
    """The pending attempt for `state`, marked as used so that a replay finds nothing to use.

    Only the browser that opened the bootstrap link may claim it: a foreign browser is refused
    before the attempt is used, so it cannot spoil it either.
    """
    if not state or len(state) > 200:
        raise LinkingFailed("The callback carried no valid state.", code="bad_state")
    with db.uow() as uow:
        attempt = uow.session.scalar(
            select(OAuthAttempt).where(OAuthAttempt.state_hash == _hash_state(state))
        )
        if attempt is None:
            raise LinkingFailed(
                "This login link is unknown to cxloop: start linking again from cxloop.",
                code="bad_state",
            )
        if attempt.status != LinkingStatus.PENDING:
            raise LinkingFailed(
                "This login link was already used. Start linking again from cxloop.",
                code="state_replayed",
            )
        if attempt.expires_at <= utcnow():
            attempt.status, attempt.error = (
                LinkingStatus.FAILED,
                "The login link expired before it was used.",
            )
            uow.commit()
            raise LinkingFailed(
                "This login link expired before it was used. Start linking again from cxloop.",
                code="state_expired",
            )
        given = browser_cookies.get(browser_cookie_name(attempt.id), "")
        if (
            attempt.browser_hash is None
            or not given
            or not secrets.compare_digest(attempt.browser_hash, _hash_state(given))
        ):
            raise LinkingRefused(
                "This Salesforce login was not started in this browser, so nothing was linked. "
                "If you meant to add a connection, start linking again from cxloop in this "
                "browser.",
                code="wrong_browser",
            )
        if browser_user_id != attempt.user_id:
            raise LinkingRefused(
                "This login link was started by another cxloop user than the one signed in "
                "in this browser (or you signed out meanwhile), so nothing was linked. Sign in "
                "as the user who started it and start linking again.",
                code="wrong_user",
            )
        attempt.status = "exchanging"
        uow.commit()
        return attempt


def _exchange(
    db: Database, settings: Settings, attempt: OAuthAttempt, app: oauth.ClientApp, code: str
) -> oauth.TokenResponse:
    try:
        token = oauth.exchange_code(
            attempt.login_url, app, code, attempt.code_verifier,
            timeout=settings.salesforce_timeout_s,
        )  # fmt: skip
    except SalesforceError as exc:
        raise LinkingFailed(
            _explain_token_error(exc, app.redirect_uri), code="token_exchange_failed"
        ) from exc
    trusted = salesforce_apps.trusted_hosts_of(db, settings)
    try:
        hosts.check_url(token.instance_url, trusted, what="instance_url")
        hosts.check_url(_origin(token.identity_url), trusted, what="identity URL")
    except HostNotAllowed as exc:
        _revoke_quietly(attempt.login_url, app, token.refresh_token or token.access_token)
        raise LinkingFailed(
            f"Salesforce sent this org's API to a host cxloop does not trust: {exc.message}",
            code="host_not_allowed",
        ) from exc
    return token


def _save_connection(
    db: Database, settings: Settings, attempt: OAuthAttempt, token: oauth.TokenResponse
) -> Connection:
    try:
        identity = oauth.fetch_identity(
            token.identity_url, token.access_token, timeout=settings.salesforce_timeout_s
        )
    except SalesforceError as exc:
        raise LinkingFailed(
            f"Linked at Salesforce, but its identity service failed ({exc}); nothing was saved. "
            "Try again in a moment.",
            code="identity_failed",
        ) from exc
    if token.refresh_token is None and attempt.connection_id is None:
        raise LinkingFailed(
            "Salesforce gave no refresh token: add the `refresh_token offline_access` scope to "
            "the connected app (see docs/salesforce-setup.md).",
            code="no_refresh_token",
        )
    with db.uow() as uow:
        now = utcnow()
        if attempt.connection_id is not None:
            connection = uow.session.get(Connection, attempt.connection_id)
            if connection is None:
                raise LinkingFailed("The connection was removed while you were logging in.")
            if connection.org_id[:15] != identity.org_id[:15]:
                raise LinkingFailed(
                    f"You logged in to another Salesforce org ({identity.org_id}) than this "
                    f"connection's ({connection.org_id}). Refreshing must land in the same org "
                    "so that its workflows keep writing where they did; to use the other org, "
                    "add a new connection.",
                    code="other_org",
                )
            action = "connection.refresh"
        else:
            _check_room_for_another(uow.session, settings, attempt.user_id, attempt.name)
            connection = Connection(owner_id=attempt.user_id, name=attempt.name, type=attempt.type)
            uow.session.add(connection)
            action = "connection.create"
        connection.login_url = attempt.login_url
        connection.instance_url = token.instance_url
        connection.identity_url = token.identity_url
        connection.org_id = identity.org_id
        connection.sf_user_id = identity.user_id
        connection.username = identity.username
        connection.access_token = token.access_token
        if token.refresh_token:
            connection.refresh_token = token.refresh_token
        connection.token_issued_at = now
        connection.token_version = (connection.token_version or 0) + 1
        connection.status, connection.status_reason = ConnectionStatus.ACTIVE, ""
        connection.last_error, connection.last_error_at = "", None
        uow.session.flush()
        audit.record(
            uow.session, attempt.user_id, action, "connection", connection.id,
            name=connection.name, org_id=connection.org_id, username=connection.username,
        )  # fmt: skip
        try:
            uow.commit()
        except IntegrityError as exc:
            raise LinkingFailed(f"You already have a connection named {attempt.name!r}.") from exc
        return connection


def _finish_attempt(
    db: Database, attempt_id: str, status: str, error: str, connection_id: str | None = None
) -> None:
    with db.uow() as uow:
        attempt = uow.session.get(OAuthAttempt, attempt_id)
        if attempt is not None:
            attempt.status, attempt.error, attempt.finished_at = status, error, utcnow()
            if connection_id:
                attempt.connection_id = connection_id
            uow.commit()


# --- reading and changing


def list_connections(db: Database, actor: Actor) -> list[Connection]:
    with db.reader() as uow:
        query = select(Connection).where(Connection.owner_id == actor.id)
        return list(uow.session.scalars(query.order_by(Connection.created_at, Connection.id)))


def get_connection(db: Database, actor: Actor, connection_id: str) -> Connection:
    with db.reader() as uow:
        return _own_connection(uow.session, actor, connection_id)


def find_connection(db: Database, actor: Actor, id_or_name: str) -> Connection:
    """One of the actor's connections, by id or by name (for the CLI)."""
    with db.reader() as uow:
        query = select(Connection).where(
            Connection.owner_id == actor.id,
            (Connection.id == id_or_name) | (Connection.name == id_or_name),
        )
        connection = uow.session.scalar(query)
        if connection is None:
            raise NotFound(f"You have no connection named {id_or_name!r}.", subject="connection")
        return connection


def rename_connection(db: Database, actor: Actor, connection_id: str, name: str) -> Connection:
    name = check_line_name(name, "connection")
    with db.uow() as uow:
        connection = _own_connection(uow.session, actor, connection_id)
        if name != connection.name:
            check_name_free(uow.session, Connection, actor.id, name, _name_taken)
            audit.record(
                uow.session, actor.id, "connection.rename", "connection", connection.id,
                before=connection.name, after=name,
            )  # fmt: skip
            connection.name = name
            try:
                uow.commit()
            except IntegrityError as exc:
                raise _name_taken(name) from exc
        return connection


def remove_connection(
    db: Database, settings: Settings, actor: Actor, connection_id: str
) -> RemovalResult:
    """Revoke the connection's token at Salesforce, then remove it here in any case."""
    with db.reader() as uow:
        connection = _own_connection(uow.session, actor, connection_id)
    revoked, why = _revoke_at_salesforce(db, settings, connection)
    with db.uow() as uow:
        current = uow.session.get(Connection, connection_id)
        if current is not None:
            audit.record(
                uow.session, actor.id, "connection.remove", "connection", connection_id,
                name=connection.name, revoked_at_salesforce=revoked,
            )  # fmt: skip
            uow.session.delete(current)
            uow.commit()
    if revoked:
        return RemovalResult(True, f"Removed {connection.name!r} and revoked its access.")
    return RemovalResult(
        False,
        f"Removed {connection.name!r} from cxloop, but {why}. To be sure, revoke it in "
        "Salesforce: Setup > Connected Apps OAuth Usage, or the user's Connections.",
    )


def revoke_connection(
    db: Database, settings: Settings, actor: Actor, connection_id: str
) -> RemovalResult:
    """Cut a connection's access at Salesforce but keep it (and the workflows that name it).

    Its status becomes `revoked`, its tokens are erased, and work that needs it pauses with
    that reason until the owner reconnects (`refresh`).
    """
    with db.reader() as uow:
        connection = _own_connection(uow.session, actor, connection_id)
    revoked, why = _revoke_at_salesforce(db, settings, connection)
    with db.uow() as uow:
        current = _own_connection(uow.session, actor, connection_id)
        current.access_token = current.refresh_token = None
        current.token_version += 1
        current.status = ConnectionStatus.REVOKED
        current.status_reason = (
            f"Access revoked in cxloop by {actor.email} on {utcnow():%Y-%m-%d %H:%M} UTC; "
            "reconnect with `cxloop connections refresh` to use it again."
        )
        audit.record(
            uow.session, actor.id, "connection.revoke", "connection", connection_id,
            revoked_at_salesforce=revoked,
        )  # fmt: skip
        uow.commit()
    if revoked:
        return RemovalResult(True, f"Revoked the access of {connection.name!r}.")
    return RemovalResult(
        False,
        f"Erased the tokens of {connection.name!r} here, but {why}. To be sure, revoke it in "
        "Salesforce: Setup > Connected Apps OAuth Usage, or the user's Connections.",
    )


def _revoke_at_salesforce(
    db: Database, settings: Settings, connection: Connection
) -> tuple[bool, str]:
    """Revoke the connection's token at Salesforce: (done, why not)."""
    token = connection.refresh_token or connection.access_token
    if not token:
        return False, "it had no token to revoke"
    try:
        oauth.revoke(connection.login_url, client_app(db, settings, connection.login_url), token)
    except (SalesforceError, CxloopError) as exc:
        return False, f"Salesforce could not be reached to revoke its token ({exc})"
    return True, ""


def delete_stale_attempts(db: Database, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget linking attempts that finished or expired long ago (a periodic job)."""
    with db.uow() as uow:
        stale = list(
            uow.session.scalars(
                select(OAuthAttempt).where(OAuthAttempt.expires_at < utcnow() - older_than)
            )
        )
        for attempt in stale:
            uow.session.delete(attempt)
        uow.commit()
    return len(stale)


# --- tokens, for the REST client


@dataclass(frozen=True)
class ConnectionTokens:
    connection_id: str
    org_id: str
    instance_url: str
    login_url: str
    access_token: str
    token_version: int
    status: str
    status_reason: str


def tokens_for(db: Database, connection_id: str) -> ConnectionTokens:
    """The current tokens of a connection (for the engine and the doctor, never for the API)."""
    with db.reader() as uow:
        connection = uow.session.get(Connection, connection_id)
        if connection is None:
            raise NotFound(f"No connection {connection_id!r}.", subject="connection")
        return _tokens(connection)


def refresh_access_token(
    db: Database, settings: Settings, connection_id: str, stale_version: int
) -> ConnectionTokens:
    """A fresh access token, refreshing at most once across every process.

    The connection row is locked (FOR UPDATE on PostgreSQL; SQLite's writers are serial anyway).
    If someone else refreshed while we waited (the token version moved), their token is used.
    A refused refresh (`invalid_grant`) marks the connection needs_reauth, with the reason.
    """
    with db.uow() as uow:
        connection = uow.session.scalar(
            select(Connection).where(Connection.id == connection_id).with_for_update(of=Connection)
        )
        if connection is None:
            raise NotFound(f"No connection {connection_id!r}.", subject="connection")
        if (
            connection.token_version != stale_version
            or connection.status != ConnectionStatus.ACTIVE
        ):
            return _tokens(connection)
        if not connection.refresh_token:
            raise NotFound("The connection has no refresh token.", subject="refresh_token")
        app = _client_app(uow.session, settings, connection.login_url)
        try:
            token = oauth.refresh(
                connection.login_url, app, connection.refresh_token,
                timeout=settings.salesforce_timeout_s,
            )  # fmt: skip
        except SalesforceError as exc:
            if exc.kind == "reauth":
                connection.status = ConnectionStatus.NEEDS_REAUTH
                connection.status_reason = (
                    f"Salesforce refused to refresh the access ({exc.message}): the token was "
                    "revoked, expired under the connected app's policy, or the user lost access. "
                    "Reconnect with `cxloop connections refresh`."
                )
                connection.last_error, connection.last_error_at = str(exc), utcnow()
                audit.record(
                    uow.session, None, "connection.needs_reauth", "connection", connection.id,
                    reason=exc.message,
                )  # fmt: skip
                uow.commit()
            raise
        connection.access_token = token.access_token
        if token.refresh_token:  # rotation: the old refresh token is dead now
            connection.refresh_token = token.refresh_token
        connection.token_issued_at = utcnow()
        connection.token_version += 1
        uow.commit()
        return _tokens(connection)


def record_outcome(db: Database, connection_id: str, error: str | None = None) -> None:
    """Note that a connection was used, and the error if the use failed."""
    with db.uow() as uow:
        connection = uow.session.get(Connection, connection_id)
        if connection is None:
            return
        now = utcnow()
        connection.last_used_at = now
        if error:
            connection.last_error, connection.last_error_at = error[:2000], now
        uow.commit()


def record_api_usage(db: Database, org_id: str, used: int, allocation: int) -> None:
    """Remember the org's API usage from the latest Sforce-Limit-Info header."""
    with db.uow() as uow:
        usage = uow.session.get(OrgApiUsage, org_id)
        if usage is None:
            uow.session.add(OrgApiUsage(org_id=org_id, used=used, allocation=allocation))
        else:
            usage.used, usage.allocation, usage.updated_at = used, allocation, utcnow()
        # another process may have recorded the same org first; the next reply updates it
        with contextlib.suppress(IntegrityError):
            uow.commit()


def api_usage(db: Database, org_id: str) -> OrgApiUsage | None:
    with db.reader() as uow:
        return uow.session.get(OrgApiUsage, org_id)


# --- helpers


def _tokens(connection: Connection) -> ConnectionTokens:
    return ConnectionTokens(
        connection_id=connection.id,
        org_id=connection.org_id,
        instance_url=connection.instance_url,
        login_url=connection.login_url,
        access_token=connection.access_token or "",
        token_version=connection.token_version,
        status=connection.status,
        status_reason=connection.status_reason,
    )


def client_app(db: Database, settings: Settings, login_url: str) -> oauth.ClientApp:
    """The connected app cxloop uses at this login URL, read now (no restart needed)."""
    with db.reader() as uow:
        return _client_app(uow.session, settings, login_url)


def _client_app(session: Session, settings: Settings, login_url: str) -> oauth.ClientApp:
    app = salesforce_apps.resolve(session, settings, login_url)
    if app is None:
        host = hosts.host_of(login_url)
        raise InvalidInput(
            f"No connected app is configured for {host}: an admin sets one with `cxloop "
            "salesforce app set --client-id ID --client-secret-stdin` (or the settings "
            "CXLOOP_SALESFORCE_CLIENT_ID and CXLOOP_SALESFORCE_CLIENT_SECRET); "
            "docs/salesforce-setup.md shows how to create the app. For a local emulator, "
            "`cxloop connections add NAME --type emulator --login-url URL` finds its app.",
            code="no_connected_app",
        )
    return oauth.ClientApp(
        client_id=app.client_id,
        client_secret=app.client_secret,
        redirect_uri=settings.oauth_callback_url,
    )


def _own_connection(session: Session, actor: Actor, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None or connection.owner_id != actor.id:
        raise NotFound(f"No connection {connection_id!r}.", subject="connection")
    return connection


def _check_room_for_another(session: Session, settings: Settings, user_id: str, name: str) -> None:
    count = session.scalar(
        select(func.count()).select_from(Connection).where(Connection.owner_id == user_id)
    )
    limit = settings.max_connections_per_user
    if count >= limit:
        raise LimitReached(
            f"You already have {count} Salesforce connections, the most allowed ({limit}). "
            "Remove one you no longer use, or ask your admin to raise "
            "CXLOOP_MAX_CONNECTIONS_PER_USER.",
            code="too_many_connections",
        )
    check_name_free(session, Connection, user_id, name, _name_taken)


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"You already have a connection named {name!r}: pick another name.", code="name_taken"
    )


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _revoke_quietly(login_url: str, app: oauth.ClientApp, token: str) -> None:
    try:
        oauth.revoke(login_url, app, token)
    except SalesforceError as exc:
        log.warning("connection.revoke_failed", error=str(exc))


def explain_callback_mismatch(callback_url: str, registered: list[str] | None = None) -> str:
    """Why Salesforce refused cxloop's callback URL, and the two ways to fix it."""
    listed = f" The connected app lists: {', '.join(registered)}." if registered else ""
    return (
        f"Salesforce refused the callback URL cxloop sent, {callback_url}: the connected app "
        f"does not list it.{listed} Either set CXLOOP_BASE_URL to the address browsers reach "
        "cxloop at (the callback is that + /oauth/salesforce/callback) and restart, or add "
        f"{callback_url} to the app's callback URLs (Salesforce: Setup > App Manager > the "
        "app > Edit > Callback URL; a local emulator: `cxloop connections add NAME --type "
        "emulator --login-url URL` registers it). Then start linking again."
    )


def _explain_token_error(exc: SalesforceError, callback_url: str) -> str:
    if exc.error_code == "invalid_grant":
        return (
            "Salesforce refused the authorization code (it was used already, expired, or the "
            f"PKCE check failed: {exc.message}). Start linking again."
        )
    if exc.error_code in ("invalid_client_id", "invalid_client", "invalid_client_credentials"):
        return (
            f"Salesforce does not accept cxloop's connected app ({exc.error_code}): check the "
            "client id and secret configured for this login host."
        )
    if exc.error_code == "redirect_uri_mismatch":
        return explain_callback_mismatch(callback_url)
    if exc.kind == "transient":
        return f"Salesforce could not be reached to finish linking ({exc}). Try again."
    return f"Salesforce refused to finish linking: {exc}."
