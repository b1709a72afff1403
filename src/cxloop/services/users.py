"""Use cases for users and their API tokens."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop import security
from cxloop.caching import TtlCache
from cxloop.coalescing import CoalescedRead
from cxloop.db.base import utcnow
from cxloop.db.models import ApiToken, TokenRevocations, User
from cxloop.db.uow import Database
from cxloop.domain import emails
from cxloop.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from cxloop.services import audit, throttle, web_sessions
from cxloop.services.access import Actor

log = structlog.get_logger(__name__)

# Touching last_used_at on every request would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)

# How long a process remembers a token it accepted (a revocation ends it at once anyway).
TOKEN_MEMORY_TTL_S = 10.0
TOKEN_MEMORY_ENTRIES = 10_000


@dataclass(frozen=True)
class RememberedToken:
    """A token accepted moments ago: its user, the revocation generation seen then, and when
    the token expires."""

    user: User
    generation: int
    expires_at: datetime | None


class TokenMemory:
    """The API tokens this process accepted in the last few seconds (one per container).

    A remembered token is answered without its two queries as long as no revocation happened
    since it was accepted: each answer reads the revocation generation (`token_revocations`,
    one primary-key row) on a connection kept for that alone, outside the ORM and any
    transaction, so it sees every commit of every process at once. In-process on SQLite, it
    costs microseconds; on PostgreSQL it is a round trip, which the API's event loop does not
    wait for (`user_of_async`: one read in a thread serves the requests that asked before it
    began).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.accepted: TtlCache[str, RememberedToken] = TtlCache(
            TOKEN_MEMORY_ENTRIES, ttl_s=TOKEN_MEMORY_TTL_S
        )
        self._connection: Any = None  # a pooled connection, kept (see _generation)
        self._lock = threading.Lock()
        self._in_process = db.engine.dialect.name == "sqlite"
        self._coalesced_generation = CoalescedRead(self._generation)

    def remember(self, digest: str, token: RememberedToken) -> None:
        """Remember a token just accepted."""
        self.accepted.set(digest, token)

    def user_of(self, digest: str) -> User | None:
        """The user of a token accepted moments ago and not revoked since; None otherwise."""
        remembered = self.remembered(digest)
        if remembered is None:
            return None
        return self._unless_revoked(digest, remembered, self._generation())

    async def user_of_async(self, digest: str) -> User | None:
        """`user_of` for the event loop: the generation is read in a thread (except on SQLite,
        where the read is in-process), shared by the requests that asked before it began."""
        remembered = self.remembered(digest)
        if remembered is None:
            return None
        if self._in_process:
            generation = self._generation()
        else:
            generation = await self._coalesced_generation()
        return self._unless_revoked(digest, remembered, generation)

    def remembered(self, digest: str) -> RememberedToken | None:
        """The memory of a token accepted moments ago and not yet expired (whatever was
        revoked since: the caller compares its generation)."""
        remembered = self.accepted.get(digest)
        if remembered is None:
            return None
        if remembered.expires_at is not None and remembered.expires_at <= utcnow():
            return None
        return remembered

    def _unless_revoked(
        self, digest: str, remembered: RememberedToken, generation: int | None
    ) -> User | None:
        if generation != remembered.generation:
            self.accepted.pop(digest)
            return None
        return remembered.user

    def close(self) -> None:
        """Let go of the connection (the container closes)."""
        with self._lock:
            self._drop_connection()

    def _generation(self) -> int | None:
        """The revocation generation now; None if it cannot be read (the caller then checks
        the token in full, so a failure here never lets a revoked token through)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._db.engine.raw_connection()
                    driver = self._connection.driver_connection
                    if not isinstance(driver, sqlite3.Connection):
                        # PostgreSQL: each read its own statement, no transaction left open.
                        # (SQLite's connections are in autocommit mode already: see db/engine.)
                        driver.autocommit = True
                cursor = self._connection.driver_connection.cursor()
                try:
                    cursor.execute(_READ_REVOCATIONS_SQL)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception:
                log.warning("token_memory.generation_unreadable", exc_info=True)
                self._drop_connection()
                return None
        return int(row[0]) if row else 0

    def _drop_connection(self) -> None:
        if self._connection is not None:
            # Invalidated, not returned: the pool must not hand out its autocommit setting.
            self._connection.invalidate()
            self._connection = None


def normalize_email(email: str) -> str:
    """The canonical form of a user's email address (`domain.emails`), or InvalidInput saying
    what is wrong with it."""
    try:
        return emails.normalize_email(email)
    except emails.NotAnEmail as exc:
        message = f"{email!r} is not a valid email address: {exc.reason}"
        raise InvalidInput(message, code="bad_email") from None


def create_user(
    db: Database,
    email: str,
    password: str | None,
    *,
    is_admin: bool = False,
    name: str = "",
    actor: Actor | None = None,
) -> User:
    """Create a user. A password, when given, must be strong enough; emails are unique."""
    email = normalize_email(email)
    if password is not None:
        security.check_password_strength(password)
    if actor is not None and not actor.is_admin:
        raise Forbidden("Only an admin can create users.")
    with db.uow() as uow:
        if uow.session.scalar(select(User.id).where(User.email == email)):
            raise Conflict(f"A user with email {email} already exists.", code="email_taken")
        user = User(
            email=email,
            name=name.strip(),
            is_admin=is_admin,
            password_hash=security.hash_password(password) if password else None,
        )
        uow.session.add(user)
        uow.session.flush()
        audit.record(
            uow.session, actor.id if actor else None, "user.create", "user", user.id,
            email=email, is_admin=is_admin,
        )  # fmt: skip
        try:
            uow.commit()
        except IntegrityError as exc:  # a concurrent create won the race
            raise Conflict(
                f"A user with email {email} already exists.", code="email_taken"
            ) from exc
        return user


def list_users(db: Database) -> list[User]:
    with db.reader() as uow:
        return list(uow.session.scalars(select(User).order_by(User.created_at, User.id)))


def get_user_by_email(db: Database, email: str) -> User:
    with db.reader() as uow:
        user = uow.session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None:
            raise NotFound(f"No user with email {email}.", code="user_not_found")
        return user


def count_users(db: Database) -> int:
    with db.reader() as uow:
        return uow.session.scalar(select(func.count()).select_from(User)) or 0


def authenticate_password(
    db: Database,
    email: str,
    password: str,
    *,
    guard: throttle.Throttle | None = None,
    address: str = "unknown",
) -> User:
    """The user with this email and password; Unauthenticated otherwise (same message for both).

    With a `guard`, failures are counted per account and per client address, and a subject that
    must wait is refused with TooManyAttempts before the password is even checked.
    """
    refused = Unauthenticated("Wrong email or password.", code="bad_credentials")
    subjects = guard.login_subjects(email, address) if guard is not None else []
    if guard is not None:
        guard.check(subjects)
    try:
        user = _check_password(db, email, password)
    except Unauthenticated:
        if guard is not None:
            guard.failed(subjects)
        raise refused from None
    if guard is not None:
        guard.succeeded(subjects[:1])  # the account's count; the address keeps its own
    return user


def _check_password(db: Database, email: str, password: str) -> User:
    refused = Unauthenticated("Wrong email or password.", code="bad_credentials")
    try:
        email = normalize_email(email)
    except InvalidInput:
        raise refused from None
    with db.uow() as uow:
        user = uow.session.scalar(select(User).where(User.email == email))
        if user is None or not user.is_active:
            security.hash_password(password)  # spend the same time as a real check
            raise refused
        if not security.verify_password(user.password_hash, password):
            raise refused
        user.last_login_at = utcnow()
        uow.commit()
        return user


def set_password(db: Database, email: str, password: str, *, actor: Actor | None = None) -> User:
    """Give a user a new password (checked like any other); every web session of the user
    ends. An actor may change their own password; an admin anyone's."""
    security.check_password_strength(password)
    password_hash = security.hash_password(password)  # slow on purpose: outside the transaction
    with db.uow() as uow:
        user = _user_for_change(uow.session, email, actor)
        user.password_hash = password_hash
        web_sessions.end_all_for_user(uow.session, user.id)
        audit.record(uow.session, actor.id if actor else None, "user.password", "user", user.id)
        uow.commit()
        return user


def set_active(db: Database, email: str, active: bool, *, actor: Actor | None = None) -> User:
    """Deactivate (or reactivate) a user. A deactivated user's web sessions end at once and
    their API tokens stop working at once, in every process. Admins only."""
    if actor is not None and not actor.is_admin:
        raise Forbidden("Only an admin can deactivate or reactivate users.")
    with db.uow() as uow:
        user = _user_for_change(uow.session, email, actor)
        if user.is_active != active:
            user.is_active = active
            if not active:
                web_sessions.end_all_for_user(uow.session, user.id)
                _bump_revocations(uow.session)
            audit.record(
                uow.session, actor.id if actor else None,
                "user.activate" if active else "user.deactivate", "user", user.id,
            )  # fmt: skip
            uow.commit()
    return user


def _user_for_change(session: Session, email: str, actor: Actor | None) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None or (actor is not None and not actor.is_admin and actor.id != user.id):
        raise NotFound(f"No user with email {email}.", code="user_not_found")
    return user


def check_token(
    db: Database,
    guard: throttle.Throttle,
    token: str,
    address: str,
    memory: TokenMemory | None = None,
) -> User:
    """`authenticate_token` behind the throttle: a client address with too many failed token
    checks must wait (429) before its next token is even looked at; only failures are counted."""
    subjects = guard.token_subjects(address)
    guard.check(subjects)
    try:
        return authenticate_token(db, token, memory)
    except Unauthenticated:
        guard.failed(subjects)
        raise


@dataclass(frozen=True)
class IssuedToken:
    """A token as created: the only time its secret value exists outside the caller's hands."""

    token: str
    record: ApiToken


def create_token(
    db: Database,
    user_email: str,
    name: str = "",
    *,
    expires_in: timedelta | None = None,
    actor: Actor | None = None,
) -> IssuedToken:
    """Issue an API token for a user. Only its hash is stored."""
    token = security.new_api_token()
    with db.uow() as uow:
        user = uow.session.scalar(select(User).where(User.email == normalize_email(user_email)))
        if user is None:
            raise NotFound(f"No user with email {user_email}.", code="user_not_found")
        if actor is not None and not actor.is_admin and actor.id != user.id:
            raise Forbidden("You can only create tokens for yourself.")
        record = ApiToken(
            user_id=user.id,
            name=name.strip() or f"token {utcnow():%Y-%m-%d %H:%M}",
            token_prefix=token[:12],
            token_hash=security.hash_api_token(token),
            expires_at=utcnow() + expires_in if expires_in is not None else None,
        )
        uow.session.add(record)
        uow.session.flush()
        audit.record(
            uow.session, actor.id if actor else None, "token.create", "api_token", str(record.id),
            user=user.email, name=record.name,
        )  # fmt: skip
        uow.commit()
        return IssuedToken(token=token, record=record)


def list_tokens(db: Database, user_email: str | None = None) -> list[ApiToken]:
    with db.reader() as uow:
        query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if user_email:
            query = query.join(ApiToken.user).where(User.email == normalize_email(user_email))
        return list(uow.session.scalars(query))


def revoke_token(db: Database, token_id: int, *, actor: Actor | None = None) -> ApiToken:
    """Revoke a token for good, at once in every process; revoking twice is harmless."""
    with db.uow() as uow:
        record = uow.session.get(ApiToken, token_id)
        if record is None or (actor and not actor.is_admin and record.user_id != actor.id):
            raise NotFound(f"No API token {token_id}.", code="token_not_found")
        if record.revoked_at is None:
            record.revoked_at = utcnow()
            _bump_revocations(uow.session)
            audit.record(
                uow.session, actor.id if actor else None, "token.revoke", "api_token",
                str(record.id),
            )  # fmt: skip
            uow.commit()
        return record


def authenticate_token(db: Database, token: str, memory: TokenMemory | None = None) -> User:
    """The active user a bearer token belongs to; Unauthenticated with the reason otherwise.

    With a `memory`, a token accepted in the last few seconds is answered from it (two queries
    saved on every API call) as long as no revocation happened since (`token_revocations`, one
    primary-key read): revoking a token or deactivating a user takes effect at once, in every
    process sharing the database.
    """
    _check_token_shape(token)
    digest = security.hash_api_token(token)
    if memory is not None:
        user = memory.user_of(digest)
        if user is not None:
            return user
    with db.reader() as uow:
        # Read before the token: a revocation committed after this read makes the generation
        # remembered below stale, so the next request looks again.
        generation = revocation_generation(uow.session)
        record = uow.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        now = utcnow()
        if record is None:
            raise Unauthenticated("Unknown API token.", code="bad_token")
        if record.revoked_at is not None:
            raise Unauthenticated("This API token was revoked.", code="token_revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthenticated("This API token has expired.", code="token_expired")
        if not record.user.is_active:
            raise Unauthenticated(
                "The user of this API token is deactivated.", code="user_inactive"
            )
        user, needs_touch = record.user, _is_stale(record.last_used_at, now)
    if needs_touch:
        _touch_token(db, record.id, now)
    if memory is not None:
        memory.remember(digest, RememberedToken(user, generation, record.expires_at))
    return user


class TokenCheckDue(Exception):
    """A remembered token met a revocation generation other than its own: check it again
    (`authenticate_token`) before acting for its user."""


def remembered_token(memory: TokenMemory, token: str) -> RememberedToken | None:
    """The memory of a token `authenticate_token` accepted in the last few seconds (not yet
    expired), without reading the revocation generation: the caller compares the generation in
    the transaction that acts for the user (`TokenCheckDue` when it differs)."""
    _check_token_shape(token)
    return memory.remembered(security.hash_api_token(token))


async def recently_authenticated(memory: TokenMemory, token: str) -> User | None:
    """The user of a token `authenticate_token` accepted in the last few seconds, if nothing
    was revoked since; None otherwise. No ORM and no transaction: the API's async path answers
    from here without a trip to a worker thread of its own."""
    _check_token_shape(token)
    return await memory.user_of_async(security.hash_api_token(token))


def _check_token_shape(token: str) -> None:
    if not token.startswith(security.API_TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("That is not a cxloop API token.", code="bad_token")


_READ_REVOCATIONS = select(TokenRevocations.generation).where(TokenRevocations.id == 1)
_READ_REVOCATIONS_SQL = "SELECT generation FROM token_revocations WHERE id = 1"
# The row may be missing (a database emptied by hand): the first revocation then creates it.
# The same statement on SQLite and PostgreSQL.
_BUMP_REVOCATIONS = text(
    "INSERT INTO token_revocations (id, generation) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET generation = token_revocations.generation + 1"
)


def revocation_generation(session: Session) -> int:
    """How many API token revocations (and user deactivations) there have been: a token
    remembered under another generation must be checked again."""
    return session.scalar(_READ_REVOCATIONS) or 0


def _bump_revocations(session: Session) -> None:
    """Count a revocation, in the transaction that makes it (so both commit, or neither)."""
    session.execute(_BUMP_REVOCATIONS)


def _is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at > _LAST_USED_RESOLUTION


def _touch_token(db: Database, token_id: int, now: datetime) -> None:
    with db.uow() as uow:
        record = uow.session.get(ApiToken, token_id)
        if record is not None:
            record.last_used_at = now
            uow.commit()


def get_user(db: Database, user_id: str) -> User | None:
    with db.reader() as uow:
        return uow.session.get(User, user_id)
