"""Statuses are StrEnums whose values are the strings the database has always stored."""

from __future__ import annotations

import json

from cxloop.db.directory_models import INVITATION_STATUSES
from cxloop.db.models import CONNECTION_STATUSES, SURVEY_STATUSES
from cxloop.db.run_models import OPEN_STATUSES, READY_STATUSES, RUN_STATUSES, TASK_RUN_STATUSES
from cxloop.domain.statuses import (
    ConnectionStatus,
    InvitationStatus,
    LinkingStatus,
    RunStatus,
    TaskRunStatus,
    TransferStatus,
)


def test_stored_values_stay_the_same_strings() -> None:
    assert SURVEY_STATUSES == ("draft", "active", "closed")
    assert CONNECTION_STATUSES == ("active", "needs_reauth", "revoked")
    assert RUN_STATUSES == ("pending", "running", "succeeded", "failed", "paused", "skipped")
    assert TASK_RUN_STATUSES == (
        "blocked", "pending", "running", "succeeded", "failed", "waiting_retry", "paused",
        "skipped",
    )  # fmt: skip
    assert READY_STATUSES == ("pending", "waiting_retry")
    assert OPEN_STATUSES == ("blocked", "pending", "running", "waiting_retry", "paused")
    assert INVITATION_STATUSES == ("pending", "sent", "failed", "skipped")
    assert tuple(TransferStatus) == ("pending", "accepted", "declined", "cancelled", "expired")
    assert tuple(LinkingStatus) == ("pending", "completed", "failed", "expired")


def test_a_status_reads_and_serialises_as_its_string() -> None:
    assert RunStatus.FAILED == "failed" and TaskRunStatus.FAILED == "failed"
    assert f"{ConnectionStatus.NEEDS_REAUTH}" == "needs_reauth"
    assert json.dumps({"status": InvitationStatus.SENT}) == '{"status": "sent"}'
    assert {"paused": 1}[TaskRunStatus.PAUSED] == 1
