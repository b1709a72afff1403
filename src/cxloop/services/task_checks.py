"""Save-time checks of a workflow's Salesforce tasks against the org each would run in.

Saving a workflow (API, CLI, apply) checks every Salesforce task against its connection's
describe, with the doctor's own checks (`salesforce.doctor.check_task`): unknown or hidden
fields, read-only fields, required fields left out, picklist values, the connected user's object
permissions. Describes come from the container's cache (one that shows a problem is fetched
again, in case the org was fixed meanwhile), and Salesforce gets a short timeout: a
workflow can be prepared before Salesforce is ready, so what is found is a warning (with the
doctor's fix), and an org that cannot be reached is one warning more, never a refusal. Strict
saves turn all of them into errors (`SalesforceChecksFailed`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from cxloop.db.models import Connection
from cxloop.db.uow import Database
from cxloop.domain.phrases import Phrase
from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.domain.workflow import DocumentProblem, SalesforceTask
from cxloop.errors import CxloopError, InvalidInput
from cxloop.salesforce.client import DescribeCache, SalesforceClient
from cxloop.salesforce.doctor import PROFILE_CHECKS, Finding, check_against_org
from cxloop.salesforce.errors import SalesforceError
from cxloop.salesforce.remedies import Remedies
from cxloop.services.salesforce_clients import client_for
from cxloop.settings import Settings

if TYPE_CHECKING:
    from cxloop.bootstrap import Container

# A save waits at most this long for Salesforce (less if the connection's timeout is shorter).
SAVE_CHECK_TIMEOUT_S = 5.0
_USER_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_PROFILE_KEY = "@profile"  # beside the describes in the cache; no sObject name starts with @


@dataclass(frozen=True)
class SalesforceProblem(DocumentProblem):
    """A finding of the Salesforce checks about one task of a document, with what to change."""

    task: str = ""
    field: str | None = None
    code: str = ""
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """`{path, message, task, field, code, fix}`."""
        return super().as_dict() | {
            "task": self.task, "field": self.field, "code": self.code, "fix": self.fix,
        }  # fmt: skip

    def __str__(self) -> str:
        return f"{super().__str__()} Fix: {self.fix}" if self.fix else super().__str__()


class SalesforceChecksFailed(InvalidInput):
    """A strict save found problems; `problems` lists every one (details carry them too)."""

    code = "salesforce_checks_failed"

    def __init__(self, problems: Sequence[DocumentProblem]) -> None:
        count = len(problems)
        super().__init__(
            f"Strict save refused: {count} problem{'s' if count != 1 else ''} to fix first: "
            + "; ".join(str(p) for p in problems),
            details=[p.as_dict() for p in problems],
        )
        self.problems = list(problems)


@dataclass(frozen=True)
class ConnectionFacts:
    """What the checks need to know of a connection: which org and user, and its kind."""

    id: str
    type: str
    username: str
    instance_url: str
    org_id: str
    sf_user_id: str

    @classmethod
    def of(cls, connection: Connection, *, for_user: str | None = None) -> ConnectionFacts:
        """The facts of a stored connection (read them while its session is open). With
        `for_user`, a cxloop user id: the Salesforce username is kept out of the fixes unless
        that user owns the connection (an editor sees what to change, not whose login it is)."""
        username = connection.username if for_user in (None, connection.owner_id) else ""
        return cls(
            connection.id, connection.type, username, connection.instance_url,
            connection.org_id, connection.sf_user_id,
        )  # fmt: skip

    def remedies(self, profile: str | None = None) -> Remedies:
        """The fix texts for this connection (Setup for an org, the org file for the emulator)."""
        return Remedies.for_connection(
            self.type,
            username=self.username,
            instance_url=self.instance_url,
            org_id=self.org_id,
            profile=profile,
        )


@dataclass(frozen=True)
class TaskTarget:
    """A Salesforce task of a document, where it is, and the connection it would run with."""

    path: str  # tasks[2]
    task: SalesforceTask
    connection: ConnectionFacts


class SaveChecks:
    """The Salesforce checks a save runs, bound to a container's database, settings and cache."""

    def __init__(self, db: Database, settings: Settings, describe_cache: DescribeCache) -> None:
        self._db = db
        self._settings = settings
        self._describe_cache = describe_cache

    @classmethod
    def of(cls, container: Container) -> SaveChecks:
        """The checks of this container (its describe cache is shared with the engine)."""
        return cls(container.db, container.settings, container.describe_cache)

    def __call__(self, targets: Sequence[TaskTarget]) -> list[SalesforceProblem]:
        """Every problem of every target, one connection after the other."""
        if not targets:
            return []
        by_connection: dict[str, list[TaskTarget]] = {}
        for target in targets:
            by_connection.setdefault(target.connection.id, []).append(target)
        problems: list[SalesforceProblem] = []
        timeout = min(self._settings.salesforce_timeout_s, SAVE_CHECK_TIMEOUT_S)
        with httpx.Client(timeout=timeout, follow_redirects=False) as http:
            for connection_id, group in by_connection.items():
                problems += self._check_connection(connection_id, group, http)
        return problems

    def _check_connection(
        self, connection_id: str, targets: list[TaskTarget], http: httpx.Client
    ) -> list[SalesforceProblem]:
        problems: list[SalesforceProblem] = []
        target = targets[0]
        try:
            with client_for(
                self._db, self._settings, connection_id, self._describe_cache, http=http
            ) as client:
                for target in targets:
                    problems += _task_problems(client, target, self._describe_cache)
        except (SalesforceError, CxloopError) as exc:
            # One warning for the connection: its other tasks would only wait for the same.
            reason = exc.message if isinstance(exc, CxloopError) else str(exc)
            problems.append(
                SalesforceProblem(
                    target.path,
                    Phrase("could not check against Salesforce: %(reason)s", reason=reason),
                    task=target.task.id,
                    code="not_checked",
                    fix=Phrase(
                        "Check that Salesforce can be reached from this server and that the "
                        "connection works (its owner can run `cxloop connections doctor NAME`), "
                        "then save again to have the tasks checked."
                    ),
                )
            )
        return problems


def _task_problems(
    client: SalesforceClient, target: TaskTarget, cache: DescribeCache
) -> list[SalesforceProblem]:
    spec = target.task.model_copy(update={"name": target.task.id})
    was_cached = client.has_cached_describe(spec.object)
    findings = check_task_in_org(client, spec, target.connection, cache, fresh=False)
    if was_cached and any(f.level != "ok" for f in findings):
        # The org may have been fixed since the describe was cached: ask again before warning
        # (if Salesforce does not answer now, what the cached describe says stands).
        with contextlib.suppress(SalesforceError):
            findings = check_task_in_org(client, spec, target.connection, cache, fresh=True)
    return [_problem(target, f) for f in findings if f.level != "ok"]


def check_task_in_org(
    client: SalesforceClient,
    spec: SalesforceTaskSpec,
    connection: ConnectionFacts,
    cache: DescribeCache,
    *,
    fresh: bool,
) -> list[Finding]:
    """The doctor's checks of `spec` in the connection's org, with fixes for its kind of org
    that name the user's profile when a fix needs it (looked up once per connection, kept in
    the describe cache)."""
    findings = check_against_org(client, spec, connection.remedies(), fresh=fresh)
    if not any(f.check in PROFILE_CHECKS and f.level != "ok" for f in findings):
        return findings
    profile = user_profile(client, cache, connection.id, connection.sf_user_id)
    if profile is None:
        return findings
    # The describe is in the cache now: checking again only rewrites the fixes.
    return check_against_org(client, spec, connection.remedies(profile))


def user_profile(
    client: SalesforceClient, cache: DescribeCache, connection_id: str, sf_user_id: str
) -> str | None:
    """The name of the connected user's profile, or None when Salesforce does not say."""
    key = (connection_id, _PROFILE_KEY)
    cached = cache.get(key)
    if cached is not None:
        return cached.get("name")
    if not _USER_ID.match(sf_user_id):
        return None
    try:
        page = client.query(f"SELECT Profile.Name FROM User WHERE Id = '{sf_user_id}'")
    except SalesforceError:
        return None  # the fix then names the user instead
    records = page.get("records") or []
    name = (records[0].get("Profile") or {}).get("Name") if records else None
    cache.put(key, {"name": name})
    return name


def _problem(target: TaskTarget, finding: Finding) -> SalesforceProblem:
    return SalesforceProblem(
        _path_of(target, finding),
        finding.message,
        task=target.task.id,
        field=finding.field or None,
        code=finding.check,
        fix=finding.fix,
    )


def _path_of(target: TaskTarget, finding: Finding) -> str:
    """Where in the document the finding points: the mapping, key, record type or action."""
    task = target.task
    if finding.check in ("object_permission",):
        return f"{target.path}.action"
    if finding.check == "object_missing":
        return f"{target.path}.object"
    if finding.check.startswith("record_type"):
        return f"{target.path}.record_type"
    if finding.check.startswith("key_"):
        return f"{target.path}.key_field"
    for index, mapping in enumerate(task.mappings):
        if finding.field and mapping.field.lower() == finding.field.lower():
            return f"{target.path}.mappings[{index}].field"
    return f"{target.path}.mappings" if finding.check == "required_field_unmapped" else target.path
