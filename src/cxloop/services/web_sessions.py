"""Server-side sessions of the web pages.

The browser's (signed) cookie carries only a random session id; the database keeps its hash,
the user, and when it was created and last seen. A session ends at logout, when its user's
password changes or the user is deactivated (everywhere at once), after `session_idle_timeout_s`
without use, and `session_max_age_s` after login whatever happens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import User, WebSession
from cxloop.db.uow import Database
from cxloop.settings import Settings

# Recording every page view would turn every read into a write.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def session_hash(session_id: str) -> str:
    """What the database keeps of a session id (and what rows of one session refer to)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(db: Database, settings: Settings, user_id: str) -> str:
    """A new session for the user; returns its id (for the cookie only: not stored as is)."""
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    with db.uow() as uow:
        uow.session.add(
            WebSession(
                id_hash=session_hash(session_id),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=settings.session_max_age_s),
            )
        )
        uow.commit()
    return session_id


def resolve(db: Database, settings: Settings, session_id: str) -> User | None:
    """The active user of a live session, or None (unknown, ended, idle or too old: such a
    session is deleted)."""
    if not session_id or len(session_id) > 100:
        return None
    now = utcnow()
    idle = timedelta(seconds=settings.session_idle_timeout_s)
    with db.reader() as uow:
        row = uow.session.get(WebSession, session_hash(session_id))
        user = uow.session.get(User, row.user_id) if row is not None else None
    if row is None:
        return None
    if user is None or not user.is_active or row.expires_at <= now or now - row.last_seen_at > idle:
        end(db, session_id)
        return None
    if now - row.last_seen_at > _LAST_SEEN_RESOLUTION:
        with db.uow() as uow:
            live = uow.session.get(WebSession, row.id_hash)
            if live is not None:
                live.last_seen_at = now
                uow.commit()
    return user


def end(db: Database, session_id: str) -> None:
    """End one session (logout); ending an ended session is harmless."""
    with db.uow() as uow:
        uow.session.execute(
            delete(WebSession).where(WebSession.id_hash == session_hash(session_id))
        )
        uow.commit()


def end_all_for_user(session: Session, user_id: str) -> None:
    """End every session of a user, in the caller's transaction (password change, deactivation)."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def delete_expired(db: Database, settings: Settings) -> int:
    """Delete sessions past their absolute or idle timeout (a periodic job)."""
    now = utcnow()
    with db.uow() as uow:
        deleted = uow.session.execute(
            delete(WebSession).where(
                (WebSession.expires_at <= now)
                | (
                    WebSession.last_seen_at
                    < now - timedelta(seconds=settings.session_idle_timeout_s)
                )
            )
        ).rowcount
        uow.commit()
    return int(deleted or 0)


def csrf_token(secret_key: str, session_id: str) -> str:
    """The form token of a session: derived from it, so it ends with it."""
    return hmac.new(secret_key.encode(), b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()
