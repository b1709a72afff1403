"""Tables of ownership moves and of what an owner lends to a survey.

A transfer of a survey is an offer until its receiver accepts it (or an admin performs it). An
owner lends a connection to a survey's editors explicitly, one grant per survey and connection;
grants end when the survey changes hands.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cxloop.db.base import Base, UTCDateTime, key_reference, new_id, utcnow
from cxloop.db.models import Connection, Survey, User
from cxloop.domain.statuses import TransferStatus


class SurveyTransfer(Base):
    """An offer to make another user the owner of a survey, and what became of it."""

    __tablename__ = "survey_transfers"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("TR_"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    from_user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    to_user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What the sender asked for; the receiver decides whether it happens (kept_previous_owner).
    keep_previous_owner_as_editor: Mapped[bool] = mapped_column(Boolean, default=False)
    kept_previous_owner: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(10), default=TransferStatus.PENDING)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(20))

    survey: Mapped[Survey] = relationship(lazy="joined")
    from_user: Mapped[User] = relationship(foreign_keys=[from_user_id], lazy="joined")
    to_user: Mapped[User] = relationship(foreign_keys=[to_user_id], lazy="joined")

    # One open offer per survey, held by the database whatever races.
    __table_args__ = (
        Index(
            "uq_survey_transfers_open",
            "survey_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class SurveyConnectionGrant(Base):
    """The owner allows the survey's editors to pick this connection of theirs for its tasks."""

    __tablename__ = "survey_connection_grants"

    survey_id: Mapped[str] = key_reference("surveys.id")
    connection_id: Mapped[str] = key_reference("connections.id", index=True)
    granted_by: Mapped[str] = mapped_column(String(20))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    connection: Mapped[Connection] = relationship(lazy="joined")
