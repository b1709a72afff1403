"""The tables. One model per concept of PRODUCT.md; relationships only where code walks them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import true as sa_true

from cxloop.db.base import Base, UTCDateTime, key_reference, new_id, utcnow
from cxloop.db.types import EncryptedText
from cxloop.domain.statuses import ConnectionStatus, LinkingStatus, SurveyStatus
from cxloop.domain.survey_content import RESPONSE_CHANNELS  # noqa: F401  (the one list)

SURVEY_STATUSES = tuple(SurveyStatus)
COLLABORATOR_ROLES = ("editor", "viewer")


class User(Base):
    """A person who logs in to cxloop: admin or member."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("UR_"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for /api/v1. Only its SHA-256 is kept; the prefix tells tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class TokenRevocations(Base):
    """One row counting revocations of API access (a token revoked, a user deactivated).

    Every process remembers accepted tokens for a few seconds; it compares the count it saw
    then with this row on each request, so a revocation in any process takes effect at once in
    all of them. The row may be missing (a fresh or emptied database): that reads as 0.
    """

    __tablename__ = "token_revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class Survey(Base):
    """A survey project: one owner, collaborators, later questions, responses and workflows."""

    __tablename__ = "surveys"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("SV_"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default=SurveyStatus.DRAFT)
    language: Mapped[str] = mapped_column(String(16), default="en")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The SurveyContent document (questions, pages, embedded data); deferred so that lists of
    # surveys do not load every document. content_version goes up by one on every change.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    content_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Whether `/s/{id}` without a personal or signed link takes responses.
    anonymous_link: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # The key signed links are made and checked with (random, made on first use); replacing it
    # invalidates every signed link made before.
    link_signing_key: Mapped[str | None] = mapped_column(EncryptedText, deferred=True)

    owner: Mapped[User] = relationship(lazy="joined")
    collaborators: Mapped[list[SurveyCollaborator]] = relationship(
        back_populates="survey", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (Index("ix_surveys_created", "created_at", "id"),)


class SurveyCollaborator(Base):
    """A user other than the owner who may edit (editor) or read (viewer) a survey."""

    __tablename__ = "survey_collaborators"

    survey_id: Mapped[str] = key_reference("surveys.id")
    user_id: Mapped[str] = key_reference("users.id", index=True)
    role: Mapped[str] = mapped_column(String(10))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    survey: Mapped[Survey] = relationship(back_populates="collaborators")
    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """Who did what to which object, when. Written in the same transaction as the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(20), index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)


class PeriodicSlot(Base):
    """One period of one periodic job, claimed by whichever scheduler inserts it first.

    The primary key makes "exactly once per period" hold however many schedulers run.
    """

    __tablename__ = "periodic_slots"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    executions: Mapped[int] = mapped_column(Integer, default=0)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


CONNECTION_TYPES = ("production", "sandbox", "custom", "emulator")
CONNECTION_STATUSES = tuple(ConnectionStatus)


class Connection(Base):
    """A linked Salesforce account. Belongs to one user; its tokens never leave encrypted."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("CN_"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    login_url: Mapped[str] = mapped_column(String(300))
    instance_url: Mapped[str] = mapped_column(String(300))
    org_id: Mapped[str] = mapped_column(String(18), index=True)
    sf_user_id: Mapped[str] = mapped_column(String(18))
    username: Mapped[str] = mapped_column(String(320))
    identity_url: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(16), default=ConnectionStatus.ACTIVE)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    token_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every token change: a refresher compares it to know whether someone else
    # refreshed while it waited for the lock.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class SalesforceApp(Base):
    """A connected app cxloop uses, set without a restart (`cxloop salesforce app set`, or
    discovered from a local emulator). `login_host` is "" for the default app, else the
    `host[:port]` of the login URL it serves; a host listed here is trusted for linking like
    one of CXLOOP_SALESFORCE_EXTRA_HOSTS. Settings, when given, win at the same level."""

    __tablename__ = "salesforce_apps"

    login_host: Mapped[str] = mapped_column(String(300), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(300))
    client_secret: Mapped[str] = mapped_column(EncryptedText)
    origin: Mapped[str] = mapped_column(String(16), default="manual")  # manual | emulator
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OAuthAttempt(Base):
    """One trip to Salesforce's login page: to link a new connection or refresh an existing one.

    The state in the URL is random; only its hash is stored. Nothing becomes a connection until
    the callback has checked everything, so a failed attempt leaves no half-made connection.
    """

    __tablename__ = "oauth_attempts"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("OA_"))
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    login_url: Mapped[str] = mapped_column(String(300))
    code_verifier: Mapped[str] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(16), default=LinkingStatus.PENDING)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The browser binding: the API hands out a one-time bootstrap link (its hash here); opening
    # it in a browser signed in as `user_id` issues the state and a one-time cookie (its hash
    # in `browser_hash`) that the callback must carry.
    bootstrap_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    bootstrap_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    browser_hash: Mapped[str | None] = mapped_column(String(64))


class WebSession(Base):
    """A signed-in browser. The cookie carries the random session id; only its hash is here,
    so that logout, a password change or a deactivation ends the session everywhere."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ThrottleCounter(Base):
    """Failed logins or token checks, or public submissions, counted per key (an account, a
    client address, a survey) in the database so that every server process sees the same."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OrgApiUsage(Base):
    """The last API usage Salesforce reported for an org (Sforce-Limit-Info)."""

    __tablename__ = "org_api_usage"

    org_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    used: Mapped[int] = mapped_column(Integer)
    allocation: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


RESPONSE_SOURCES = ("web", "api", "import")


class Response(Base):
    """One respondent's answers (`values`, keyed by QID), embedded data and metadata.

    A response answered page by page on the web exists from its first page on with
    finished=False; one that is never finished stays "incomplete".
    """

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("R_"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedded_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(10))  # one of RESPONSE_SOURCES
    # How it came in, finer than `source` (which link, the API, an import): RESPONSE_CHANNELS.
    channel: Mapped[str] = mapped_column(String(16), server_default="anonymous_link")
    language: Mapped[str] = mapped_column(String(16), default="en")
    # Foreign keys to the directory's contacts and distributions come with the directory.
    distribution_id: Mapped[str | None] = mapped_column(String(20))
    contact_id: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Lists, filters and exports walk one survey's responses in (created_at, id) order.
    # Survey lists count a survey's incomplete responses from an index range: migration 0015.
    __table_args__ = (
        Index("ix_responses_survey_created", "survey_id", "created_at", "id"),
        Index("ix_responses_survey_finished", "survey_id", "finished"),
    )


class PersonalLink(Base):
    """A single-use survey link bound to a contact and embedded data; only its hash is kept.

    `response_id` is set when the respondent submits the first page, `used_at` when they finish.
    """

    __tablename__ = "personal_links"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("PL_"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[str | None] = mapped_column(String(20))
    distribution_id: Mapped[str | None] = mapped_column(String(20))
    embedded_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_id: Mapped[str | None] = mapped_column(ForeignKey("responses.id", ondelete="SET NULL"))


# Larger areas keep their tables in their own modules; importing them here registers them with
# the metadata wherever the models are imported (the app, Alembic).
from cxloop.db import (  # noqa: E402, F401
    batching_models,
    directory_models,
    operations_models,
    ownership_models,
    run_models,
    workflow_models,
)
