"""Tables of running cxloop as several processes: idempotency keys of submissions, the
processes' heartbeats, and the row that proves the encryption keys fit the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cxloop.db.base import Base, UTCDateTime, key_reference, utcnow
from cxloop.db.types import EncryptedText

PROCESS_ROLES = ("worker", "scheduler")


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` for one response submission (per user and survey).

    The response id is chosen when the key is first seen, before the response is stored, so a
    retry after an interrupted request stores (or finds) that very response: the response's
    primary key makes "exactly one" hold even for two requests racing with one key.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = key_reference("users.id")
    survey_id: Mapped[str] = key_reference("surveys.id")
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ProcessHeartbeat(Base):
    """A worker's or scheduler's latest sign of life (`/readyz` reads them)."""

    __tablename__ = "process_heartbeats"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), index=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyCheck(Base):
    """One known text encrypted with the deployment's keys: a process whose keys cannot
    decrypt it has other keys than the database's secrets need, and refuses to start."""

    __tablename__ = "key_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sealed: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
