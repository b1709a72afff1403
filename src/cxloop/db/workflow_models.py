"""Tables of workflows and their revisions.

A workflow row holds the current document exactly as it was given (so an export gives back what
was applied) and the columns the engine filters on (survey, enabled, event type). Every change
adds a revision row: who, when, the whole document, and a short summary of what changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cxloop.db.base import Base, UTCDateTime, new_id, utcnow
from cxloop.db.types import EncryptedText

if TYPE_CHECKING:
    from cxloop.db.models import User


class Workflow(Base):
    """One event, optional conditions, ordered tasks: the document of one survey's workflow."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("WF_"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    event_type: Mapped[str] = mapped_column(String(40))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # SHA-256 of the token in this workflow's outbound-message URL (outbound events only).
    outbound_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The token itself, encrypted, so that editors can see the URL again to set Salesforce up.
    outbound_token: Mapped[str | None] = mapped_column(EncryptedText)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    revisions: Mapped[list[WorkflowRevision]] = relationship(
        back_populates="workflow",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="WorkflowRevision.revision",
    )

    # `apply` finds a workflow by its name within the survey; the index also serves
    # "the workflows of this survey".
    __table_args__ = (UniqueConstraint("survey_id", "name"),)


class WorkflowRevision(Base):
    """The document of a workflow as one save left it, with its author and what changed."""

    __tablename__ = "workflow_revisions"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(String(500), default="")
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    workflow: Mapped[Workflow] = relationship(back_populates="revisions")
    author: Mapped[User] = relationship(lazy="joined")


class WorkflowTaskPause(Base):
    """A Salesforce task held back because its connection is not one the survey's owner may
    use (the survey changed hands). Its task runs pause instead of going out; saving the
    workflow with a connection the owner may use lifts it."""

    __tablename__ = "workflow_task_pauses"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection: Mapped[str] = mapped_column(String(100))  # the reference in the document
    reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BuilderDraft(Base):
    """The workflow builder's unsaved form, kept while its user is away on an account's page
    (Add account through Salesforce's login, Rename, Refresh, Remove, Check setup) so that the
    builder comes back as it was. It belongs to one signed-in browser (its web session: logout
    ends it) and one survey, and expires soon (services/builder_drafts.py)."""

    __tablename__ = "builder_drafts"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("BD_"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_hash: Mapped[str] = mapped_column(
        ForeignKey("web_sessions.id_hash", ondelete="CASCADE"), index=True
    )
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    workflow_id: Mapped[str | None] = mapped_column(String(20))  # None: a new workflow
    revision: Mapped[str] = mapped_column(String(12), default="")  # the revision it edits
    form: Mapped[list[Any]] = mapped_column(JSON)  # the form's [name, value] pairs
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
