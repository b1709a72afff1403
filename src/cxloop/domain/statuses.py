"""The states things move through, one `StrEnum` each.

A member equals its string (`RunStatus.FAILED == "failed"`), and the database stores the same
strings as before, so code that still writes the literal keeps working.
"""

from __future__ import annotations

from enum import StrEnum


class SurveyStatus(StrEnum):
    """Whether a survey takes responses: a draft is not open yet, a closed one no longer."""

    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class ConnectionStatus(StrEnum):
    """Whether a linked Salesforce account can make calls."""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the refresh token died: the owner logs in again
    REVOKED = "revoked"


class LinkingStatus(StrEnum):
    """Where an OAuth linking attempt stands."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


class TransferStatus(StrEnum):
    """Where a survey transfer offer stands: the receiver decides."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RunStatus(StrEnum):
    """Where a run (one workflow started by one event) stands, summed up from its task runs."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PAUSED = "paused"
    SKIPPED = "skipped"


class TaskRunStatus(StrEnum):
    """Where one task run stands in the ledger."""

    BLOCKED = "blocked"  # waits for the tasks whose output it uses
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING_RETRY = "waiting_retry"
    PAUSED = "paused"
    SKIPPED = "skipped"


class InvitationStatus(StrEnum):
    """Where one invitation email stands."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
