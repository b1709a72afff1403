"""Tables of the directory: directories, mailing lists, contacts, distributions and invitations.

A directory belongs to a user (as a connection does); the survey owner's directories are the
ones a workflow's directory task may use. A contact's email is unique within its directory. A
distribution is one sending of a survey (one per directory task run, or one made by hand to a
mailing list); an invitation is one contact's mail in it, unique per (distribution, contact), so
that a message Salesforce delivers twice never mails anyone twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cxloop.db.base import Base, UTCDateTime, key_reference, new_id, utcnow
from cxloop.db.types import EncryptedText
from cxloop.domain.statuses import InvitationStatus

INVITATION_STATUSES = tuple(InvitationStatus)


class Directory(Base):
    """A set of contacts and mailing lists, owned by one user. `frequency_*` is its contact
    frequency rule: at most `frequency_limit` invitations per contact per `frequency_days`."""

    __tablename__ = "directories"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("DR_"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    frequency_limit: Mapped[int | None] = mapped_column(Integer)
    frequency_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class MailingList(Base):
    """A named list of contacts of one directory."""

    __tablename__ = "mailing_lists"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("ML_"))
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("directory_id", "name"),)


class Contact(Base):
    """A person cxloop may invite: email (lower-cased, unique per directory), name, phone,
    language, an external reference (such as the Salesforce Contact Id), embedded data and
    whether they opted out."""

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("CT_"))
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    external_ref: Mapped[str | None] = mapped_column(String(100))
    embedded_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("directory_id", "email"),
        Index("ix_contacts_directory_external_ref", "directory_id", "external_ref"),
    )


class MailingListMember(Base):
    """A contact on a mailing list."""

    __tablename__ = "mailing_list_members"

    mailing_list_id: Mapped[str] = key_reference("mailing_lists.id")
    contact_id: Mapped[str] = key_reference("contacts.id", index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Distribution(Base):
    """One sending of a survey by email: its template and where it came from."""

    __tablename__ = "distributions"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("DS_"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    mailing_list_id: Mapped[str | None] = mapped_column(
        ForeignKey("mailing_lists.id", ondelete="SET NULL")
    )
    # The directory task run that made it; a retried task run finds its distribution again.
    task_run_id: Mapped[str | None] = mapped_column(String(20), unique=True)
    subject: Mapped[str] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    link_expiry_days: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(Base):
    """One contact's mail in a distribution, with its personal link.

    The link's token is kept encrypted so that a retried send mails the same link; only its hash
    opens the survey (personal_links).
    """

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("IV_"))
    distribution_id: Mapped[str] = mapped_column(ForeignKey("distributions.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    personal_link_id: Mapped[str | None] = mapped_column(
        ForeignKey("personal_links.id", ondelete="SET NULL")
    )
    link_token: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(16), default=InvitationStatus.PENDING)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("distribution_id", "contact_id"),
        # The frequency rule counts a contact's recent invitations.
        Index("ix_invitations_contact_created", "contact_id", "created_at"),
    )
