"""Tables that let several worker processes batch as one: who owns a batch key, how many
Collections calls each org may have in flight, and the describes every process renders with
(shared by every process, on any machine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cxloop.db.base import Base, UTCDateTime, utcnow


class BatchKeyOwner(Base):
    """The worker process that batches a key now, until its lease (`until`) runs out.

    One process at a time fills a key's batches, so two processes never split one between
    them; a dead owner's row is free again once `until` has passed.
    """

    __tablename__ = "batch_key_owners"

    batch_key: Mapped[str] = mapped_column(String(250), primary_key=True)
    worker: Mapped[str] = mapped_column(String(80))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


class OrgConcurrency(Base):
    """How many Collections calls an org may have in flight at once (the adaptive bound)."""

    __tablename__ = "org_concurrency"

    org_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    bound: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When Salesforce last said "too much" (the bound then does not grow for a while).
    shrunk_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrgBatchInFlight(Base):
    """A Collections call being sent now: one slot of its org's bound, until `until` (a dead
    process's slot frees itself)."""

    __tablename__ = "org_batches_in_flight"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(18), index=True)
    worker: Mapped[str] = mapped_column(String(80))
    batch_key: Mapped[str] = mapped_column(String(250))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


class SalesforceDescribe(Base):
    """An sObject's describe as a connection's org gave it, shared by every process: one
    process asks Salesforce, the others (web processes checking a save, workers rendering
    batches, on any machine) read it here until it is `salesforce_describe_ttl_s` old."""

    __tablename__ = "salesforce_describes"

    connection_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    sobject: Mapped[str] = mapped_column(String(255), primary_key=True)  # lower case
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    describe: Mapped[dict[str, Any]] = mapped_column(JSON)
