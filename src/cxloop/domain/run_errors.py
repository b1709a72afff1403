"""Why a task run failed or paused, in plain words, and what to do about it. Pure.

The engine keeps Salesforce's own words on a task run (`error`: kind, error_code, message,
fields) and its own sentence (`status_reason`). This table turns the common cases into an
explanation and a fix a CX or CRM admin can act on, in one place: the run page shows it, and
the API or the CLI can use it too. The texts are English with `%(name)s` placeholders
(`fields`, `detail`: Salesforce's or the engine's words, `code`); the admin UI translates them
through its `runs` catalogue, so every text here has a German entry in
`web/locale/de/LC_MESSAGES/runs.po`.

`action` names where the fix is made, without knowing URLs: "accounts" (reconnect the
account), "workflow" (open the workflow: its mapping or its account), or "" (nothing to open).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cxloop.domain.statuses import TaskRunStatus


@dataclass(frozen=True)
class Explanation:
    """An error in plain words: what happened, what to do, and where."""

    code: str  # the Salesforce error code, or ours (needs_reauth, not_owners_account, ...)
    summary: str  # what happened (English, with %(fields)s / %(detail)s / %(code)s)
    fix: str  # what to do about it
    action: str = ""  # "accounts", "workflow" or ""
    values: Mapping[str, str] = field(default_factory=dict)  # the placeholders' values


@dataclass(frozen=True)
class _Entry:
    summary: str
    fix: str
    action: str = ""


# Salesforce's error codes (REST / sObject Collections) -> plain words and the fix.
SALESFORCE_CODES: Mapping[str, _Entry] = MappingProxyType(
    {
        "REQUIRED_FIELD_MISSING": _Entry(
            "Salesforce needs a value for %(fields)s, and the task sent none.",
            "Open the workflow and map %(fields)s in this task (or make sure the value it is "
            "mapped to is never empty), save, then retry the run.",
            "workflow",
        ),
        "INVALID_FIELD": _Entry(
            "The task writes a field Salesforce does not know: %(detail)s",
            "Open the workflow and correct or remove the mapping (the field list shows the "
            "object's fields), save, then retry the run.",
            "workflow",
        ),
        "INVALID_FIELD_FOR_INSERT_UPDATE": _Entry(
            "The connected Salesforce user may not write %(fields)s.",
            "Remove the mapping, or give the user edit access to the field in Salesforce (field-"
            "level security); Check setup on the account shows what is missing. Then retry.",
            "workflow",
        ),
        "FIELD_CUSTOM_VALIDATION_EXCEPTION": _Entry(
            "A validation rule in Salesforce refused the record: %(detail)s",
            "Change the values the task sends so that the rule passes (or ask your Salesforce "
            "admin about the rule), then retry the run.",
            "workflow",
        ),
        "DUPLICATE_VALUE": _Entry(
            "Another record already has this value in a unique field: %(detail)s",
            "Use the action upsert with that field as the key field, so the record is updated "
            "instead of created twice, or map a value that is unique. Then retry the run.",
            "workflow",
        ),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": _Entry(
            "The value sent is not one of the picklist's values: %(detail)s",
            "Map a value the picklist has (the field list shows them), or add the value to the "
            "picklist in Salesforce. Then retry the run.",
            "workflow",
        ),
        "STRING_TOO_LONG": _Entry(
            "The text sent is longer than the field allows: %(detail)s",
            "Map a shorter value, or make the field longer in Salesforce. Then retry the run.",
            "workflow",
        ),
        "INVALID_TYPE_ON_FIELD_IN_RECORD": _Entry(
            "A value does not fit its field's type: %(detail)s",
            "Map a value of the field's type (a number, a date, true or false). Then retry.",
            "workflow",
        ),
        "INVALID_CROSS_REFERENCE_KEY": _Entry(
            "A lookup or Id sent does not point at a record Salesforce knows: %(detail)s",
            "Check where the Id comes from (embedded data, an earlier task's output); fix the "
            "data or the mapping, then retry the run.",
            "workflow",
        ),
        "MALFORMED_ID": _Entry(
            "A value sent as a Salesforce Id is not an Id: %(detail)s",
            "Check where the Id comes from (embedded data, an earlier task's output); fix the "
            "data or the mapping, then retry the run.",
            "workflow",
        ),
        "ENTITY_IS_DELETED": _Entry(
            "The record the task updates was deleted in Salesforce.",
            "Nothing to retry for this record; if it should exist, restore it from Salesforce's "
            "recycle bin and retry the run.",
        ),
        "NOT_FOUND": _Entry(
            "The record the task updates or deletes does not exist in Salesforce.",
            "Check the Id the task uses (the key field's value); fix the data, then retry.",
            "workflow",
        ),
        "INSUFFICIENT_ACCESS_OR_READONLY": _Entry(
            "The connected Salesforce user may not change this record: %(detail)s",
            "Give the user access to the object in Salesforce (Check setup on the account shows "
            "what is missing), then retry the run.",
            "accounts",
        ),
        "INVALID_SESSION_ID": _Entry(
            "Salesforce no longer accepts the account's login (the session or the refresh token "
            "was revoked or expired).",
            "Reconnect the account on the Accounts page (Refresh). Paused work goes on by itself "
            "once the account is active again.",
            "accounts",
        ),
        "REQUEST_LIMIT_EXCEEDED": _Entry(
            "The Salesforce org has used up its daily API requests.",
            "Nothing to do now: cxloop holds the org's work back and tries again later. If it "
            "happens often, find what else uses the org's API or raise its limit.",
        ),
        "API_DISABLED_FOR_ORG": _Entry(
            "The Salesforce org or user may not use the API.",
            "Give the connected user the 'API Enabled' permission in Salesforce (Check setup on "
            "the account says where), then retry the run.",
            "accounts",
        ),
    }
)

# Ours: situations the engine describes in its own words (a paused task run, a connection).
NEEDS_REAUTH = _Entry(
    "The Salesforce account needs to be connected again: %(detail)s",
    "Reconnect the account on the Accounts page (Refresh). Paused work goes on by itself once "
    "the account is active again.",
    "accounts",
)
NOT_OWNERS_ACCOUNT = _Entry(
    "The workflow's Salesforce account is not one of the survey owner's accounts (the survey "
    "changed owner, or the account was removed). Tasks always run with the owner's accounts.",
    "Open the workflow, pick one of the owner's accounts in the task, save, then retry the run.",
    "workflow",
)
UNREACHABLE = _Entry(
    "Salesforce could not be reached, or did not answer in time: %(detail)s",
    "Usually nothing to do: cxloop tries again by itself. If it keeps failing, check the "
    "network between cxloop and Salesforce, then retry the run.",
)
# Ours: the sweeper took the task run back from a worker that stopped renewing its lease.
WORKER_LOST_CODE = "CXLOOP_WORKER_LOST"
WORKER_LOST = _Entry(
    "The worker doing this task stopped answering in the middle of it: %(detail)s",
    "Usually nothing to do: another worker tries again by itself, and looks before it inserts "
    "again. If it keeps happening, look at the workers' logs and memory (a worker that is "
    "killed or restarts mid-call).",
)
OTHER = _Entry(
    "Salesforce refused the record (%(code)s): %(detail)s",
    "Read Salesforce's words above, fix the task's mapping or the data, then retry the run.",
    "workflow",
)
OTHER_TASK = _Entry(
    "The task did not succeed: %(detail)s",
    "Fix what the message names, then retry the run.",
)

_REAUTH_KINDS = frozenset({"auth", "reauth"})


# The task-run states that have something to explain.
_EXPLAINED_STATUSES = (
    TaskRunStatus.FAILED,
    TaskRunStatus.PAUSED,
    TaskRunStatus.WAITING_RETRY,
    TaskRunStatus.SKIPPED,
)


def explain(
    status: str, error: Mapping[str, Any] | None, status_reason: str = ""
) -> Explanation | None:
    """The explanation for a task run's `status`, `error` and `status_reason`, or None when
    there is nothing to explain (it succeeded, or is still on its way)."""
    if status not in _EXPLAINED_STATUSES:
        return None
    error = error or {}
    code = str(error.get("error_code") or "")
    kind = str(error.get("kind") or "")
    message = str(error.get("message") or status_reason or "")
    names = ", ".join(str(f) for f in error.get("fields") or []) or "?"
    values = {"fields": names, "detail": message, "code": code or "?"}
    if status == TaskRunStatus.SKIPPED:
        return None  # its reason says which earlier task it waited for; nothing else to add
    if "not one of the survey owner's connections" in status_reason:
        return _explained("not_owners_account", NOT_OWNERS_ACCOUNT, values)
    if code in SALESFORCE_CODES:
        return _explained(code, SALESFORCE_CODES[code], values)
    if code == WORKER_LOST_CODE:
        return _explained(code, WORKER_LOST, values)
    if kind in _REAUTH_KINDS or (
        status == TaskRunStatus.PAUSED
        and (
            "reconnect" in status_reason.lower()
            or "needs_reauth" in status_reason
            or "revoked" in status_reason
        )
    ):
        values["detail"] = status_reason or message
        return _explained("needs_reauth", NEEDS_REAUTH, values)
    if kind == "transient":
        return _explained("unreachable", UNREACHABLE, values)
    if code:
        return _explained(code, OTHER, values)
    if message:
        return _explained("other", OTHER_TASK, values)
    return None


def _explained(code: str, entry: _Entry, values: dict[str, str]) -> Explanation:
    return Explanation(code, entry.summary, entry.fix, entry.action, values)


def all_texts() -> list[str]:
    """Every summary and fix of the table (for the translations' completeness test)."""
    entries = [*SALESFORCE_CODES.values(), NEEDS_REAUTH, NOT_OWNERS_ACCOUNT, UNREACHABLE, OTHER]
    entries.append(WORKER_LOST)
    entries.append(OTHER_TASK)
    return [text for entry in entries for text in (entry.summary, entry.fix)]
