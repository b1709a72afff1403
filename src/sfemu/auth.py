"""Tokens: authorization codes, access tokens (sessions) and refresh tokens.

Access tokens look like Salesforce's (``00D...!AQ...``: the org id, '!', opaque text) and
expire after the org's session timeout of inactivity. Refresh tokens follow the connected
app's policy in the org. Revoking a refresh token kills the access tokens issued from it.
Access and refresh tokens are persisted (a file database keeps sessions across restarts);
authorization codes live only in memory (15 minutes, single use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .store import Database

CODE_LIFETIME_S = 15 * 60


def signature(client_secret: str, identity_url: str, issued_at: str) -> str:
    """Salesforce's token ``signature``: Base64(HMAC-SHA256(client secret, id + issued_at))."""
    digest = hmac.new(
        client_secret.encode(), (identity_url + issued_at).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (base64url, no padding)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class AuthCode:
    """An authorization code waiting to be exchanged."""

    code: str
    org_id: str
    user_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    login_url: str
    code_challenge: str | None
    issued_at: float
    used: bool = False


@dataclass
class IssuedToken:
    """What access and refresh tokens share: whom they are for, through which app, since when."""

    token: str
    org_id: str
    user_id: str
    client_id: str | None  # None: an access token issued without an app (tests, control API)
    scopes: list[str]
    login_url: str
    issued_at: float
    last_used: float

    @classmethod
    def issue(
        cls,
        token: str,
        org_id: str,
        user_id: str,
        client_id: str | None,
        scopes: list[str],
        login_url: str,
        **more: Any,
    ) -> Self:
        """A new token, issued (and last used) now."""
        now = time.time()
        return cls(token, org_id, user_id, client_id, scopes, login_url, now, now, **more)


@dataclass
class RefreshGrant(IssuedToken):
    """A refresh token."""

    revoked: bool = False
    kind: str = "refresh"


@dataclass
class Session(IssuedToken):
    """An access token: who it is for and when it was last used."""

    refresh_token: str | None = None
    revoked: bool = False
    kind: str = "access"
    issued_at_ms: str = field(default="")


class TokenStore:
    """Every code and token of the emulator."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.codes: dict[str, AuthCode] = {}
        self.sessions: dict[str, Session] = {}
        self.refresh: dict[str, RefreshGrant] = {}

    def load(self) -> None:
        """Read persisted tokens."""
        for token, doc in self.db.load_json("tokens"):
            if doc.get("kind") == "refresh":
                self.refresh[token] = RefreshGrant(**doc)
            else:
                self.sessions[token] = Session(**doc)

    def clear(self, org_id: str | None = None) -> None:
        """Forget tokens (of one org, or all)."""
        if org_id is None:
            self.codes.clear()
            self.sessions.clear()
            self.refresh.clear()
            self.db.clear_table("tokens")
            return
        dead = [t for t, s in self.sessions.items() if s.org_id == org_id]
        dead += [t for t, r in self.refresh.items() if r.org_id == org_id]
        for token in dead:
            self.sessions.pop(token, None)
            self.refresh.pop(token, None)
        self.codes = {c: v for c, v in self.codes.items() if v.org_id != org_id}
        self.db.delete_json("tokens", dead)

    def _save(self, item: IssuedToken) -> None:
        self.db.put_json("tokens", item.token, asdict(item))

    # -- codes ----------------------------------------------------------------------------

    def issue_code(self, **fields: Any) -> AuthCode:
        """A new authorization code."""
        code = AuthCode(code="aPrx" + secrets.token_urlsafe(48), issued_at=time.time(), **fields)
        self.codes[code.code] = code
        # Expired codes are dropped as new ones are issued, so the dict stays small.
        cutoff = time.time() - CODE_LIFETIME_S
        for stale in [c for c, v in self.codes.items() if v.issued_at < cutoff]:
            del self.codes[stale]
        return code

    def take_code(self, code: str) -> AuthCode | None:
        """The code if it exists and has not expired (whether used or not: the caller decides)."""
        found = self.codes.get(code)
        if found is None or time.time() - found.issued_at > CODE_LIFETIME_S:
            return None
        return found

    # -- sessions -------------------------------------------------------------------------

    def issue_session(
        self,
        org_id: str,
        user_id: str,
        client_id: str | None,
        scopes: list[str],
        login_url: str,
        refresh_token: str | None = None,
        kind: str = "access",
    ) -> Session:
        """A new access token for a user."""
        token = f"{org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        session = Session.issue(
            token,
            org_id,
            user_id,
            client_id,
            scopes,
            login_url,
            refresh_token=refresh_token,
            kind=kind,
        )
        session.issued_at_ms = str(int(session.issued_at * 1000))
        self.sessions[token] = session
        self._save(session)
        return session

    def session(
        self, token: str, timeout_s: float | None, now: float | None = None
    ) -> Session | None:
        """The live session for an access token, touching its last use; None if dead."""
        session = self.sessions.get(token)
        if session is None or session.revoked:
            return None
        now = time.time() if now is None else now
        if timeout_s is not None and now - session.last_used > timeout_s:
            return None
        session.last_used = now
        return session

    # -- refresh tokens -------------------------------------------------------------------

    def issue_refresh(
        self, org_id: str, user_id: str, client_id: str, scopes: list[str], login_url: str
    ) -> RefreshGrant:
        """A new refresh token."""
        token = "5Aep861" + secrets.token_urlsafe(64)
        grant = RefreshGrant.issue(token, org_id, user_id, client_id, scopes, login_url)
        self.refresh[token] = grant
        self._save(grant)
        return grant

    def touch_refresh(self, grant: RefreshGrant) -> None:
        """Record a use of a refresh token (for the expire-if-unused policy)."""
        grant.last_used = time.time()
        self._save(grant)

    # -- revocation -----------------------------------------------------------------------

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; a refresh token takes its access tokens along."""
        session = self.sessions.get(token)
        if session is not None and not session.revoked:
            session.revoked = True
            self._save(session)
            return True
        grant = self.refresh.get(token)
        if grant is not None and not grant.revoked:
            self._revoke_grant(grant)
            return True
        return False

    def _revoke_grant(self, grant: RefreshGrant) -> None:
        grant.revoked = True
        self._save(grant)
        for session in self.sessions.values():
            if session.refresh_token == grant.token and not session.revoked:
                session.revoked = True
                self._save(session)

    def revoke_user(self, org_id: str, user_id: str) -> int:
        """Revoke every token of a user; returns how many were live."""
        count = 0
        for grant in self.refresh.values():
            if grant.org_id == org_id and grant.user_id == user_id and not grant.revoked:
                self._revoke_grant(grant)
                count += 1
        for session in self.sessions.values():
            if session.org_id == org_id and session.user_id == user_id and not session.revoked:
                session.revoked = True
                self._save(session)
                count += 1
        return count

    def live_counts(self, org_id: str, user_id: str) -> dict[str, int]:
        """How many live access and refresh tokens a user has."""
        return {
            "access_tokens": sum(
                1
                for s in self.sessions.values()
                if s.org_id == org_id and s.user_id == user_id and not s.revoked
            ),
            "refresh_tokens": sum(
                1
                for r in self.refresh.values()
                if r.org_id == org_id and r.user_id == user_id and not r.revoked
            ),
        }
