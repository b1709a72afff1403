"""What the workflow pages show besides the documents: run counts per workflow, recent
responses to try a workflow on, and the Salesforce objects and fields of the survey owner's
connections (from describe) for the builder's pickers.

Every function checks the actor's access to the survey first (viewers and up), as the
workflow service does; a connection is only ever one of the survey OWNER's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from cxloop.db.models import Response
from cxloop.db.run_models import Run
from cxloop.db.uow import Database
from cxloop.db.workflow_models import Workflow
from cxloop.domain.phrases import Phrase
from cxloop.domain.statuses import ConnectionStatus, RunStatus
from cxloop.errors import CxloopError, NotFound
from cxloop.salesforce.client import DescribeCache
from cxloop.salesforce.errors import SalesforceError
from cxloop.services.access import Actor, SurveyAccess, access_to, get_survey_for
from cxloop.services.salesforce_clients import client_for
from cxloop.services.workflows import resolve_connection
from cxloop.settings import Settings

_OBJECTS_KEY = "@objects"  # beside the describes in the cache; no sObject name starts with @


@dataclass(frozen=True)
class RunStats:
    """A workflow's last run and its runs and failures in the last 24 hours."""

    last_run_at: datetime | None = None
    last_status: str | None = None
    runs_24h: int = 0
    failures_24h: int = 0


def survey_role(db: Database, actor: Actor, survey_id: str) -> SurveyAccess:
    """The actor's access to the survey (viewers and up; anyone else: NotFound)."""
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        return access_to(survey, actor)


def run_stats(
    db: Database, actor: Actor, survey_id: str, *, now: datetime | None = None
) -> dict[str, RunStats]:
    """Per workflow id of the survey: its last run and counts over the last 24 hours.

    The last 24 hours come from the (survey, created) index in one query; only a workflow
    that has not run in that time is looked up on its own (newest run first), so the tab stays
    fast for a survey with a long run history."""
    since = (now or datetime.now().astimezone()) - timedelta(hours=24)
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        workflow_ids = list(
            uow.session.scalars(select(Workflow.id).where(Workflow.survey_id == survey_id))
        )
        window = (Run.survey_id == survey_id) & (Run.created_at >= since)
        counted = (
            select(
                Run.workflow_id.label("workflow_id"),
                func.count().label("runs"),
                func.sum(case((Run.status == RunStatus.FAILED, 1), else_=0)).label("failures"),
                func.max(Run.created_at).label("last_at"),
            )
            .where(window)
            .group_by(Run.workflow_id)
            .subquery()
        )
        rows = uow.session.execute(
            select(
                counted.c.workflow_id, counted.c.runs, counted.c.failures, counted.c.last_at,
                Run.status,
            ).join(
                Run,
                (Run.workflow_id == counted.c.workflow_id) & (Run.created_at == counted.c.last_at)
                & window,
            )
        ).all()  # fmt: skip
        stats: dict[str, RunStats] = {}
        for workflow_id, runs, failures, last_at, status in rows:
            if workflow_id:
                stats[workflow_id] = RunStats(last_at, status, int(runs), int(failures or 0))
        for workflow_id in workflow_ids:
            if workflow_id in stats:
                continue
            last = uow.session.execute(
                select(Run.created_at, Run.status)
                .where(Run.workflow_id == workflow_id)
                .order_by(Run.created_at.desc())
                .limit(1)
            ).first()
            if last is not None:
                stats[workflow_id] = RunStats(last[0], last[1])
    return stats


@dataclass(frozen=True)
class RecentResponse:
    """A response to try a workflow on."""

    id: str
    created_at: datetime
    finished: bool
    channel: str


def recent_responses(
    db: Database, actor: Actor, survey_id: str, *, limit: int = 20
) -> list[RecentResponse]:
    """The survey's newest responses, newest first (viewers and up)."""
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        rows = uow.session.execute(
            select(Response.id, Response.created_at, Response.finished, Response.channel)
            .where(Response.survey_id == survey_id)
            .order_by(Response.created_at.desc(), Response.id.desc())
            .limit(limit)
        ).all()
    return [RecentResponse(r[0], r[1], bool(r[2]), str(r[3] or "")) for r in rows]


@dataclass(frozen=True)
class SalesforceField:
    """A field of an object as the builder's picker shows it."""

    name: str
    label: str
    type: str
    required: bool
    createable: bool
    updateable: bool
    external_id: bool
    picklist: list[str] = field(default_factory=list)

    @property
    def writable(self) -> bool:
        return self.createable or self.updateable


@dataclass(frozen=True)
class OrgCatalogue:
    """What the builder knows of a connection's org: its objects and the fields of some."""

    objects: list[tuple[str, str]] = field(default_factory=list)  # (name, label)
    fields: dict[str, list[SalesforceField]] = field(default_factory=dict)  # by object
    problem: str | None = None  # why Salesforce could not be asked


def org_catalogue(
    db: Database,
    settings: Settings,
    cache: DescribeCache,
    actor: Actor,
    survey_id: str,
    connection: str,
    objects: list[str],
) -> OrgCatalogue:
    """The objects of the survey owner's connection `connection` (name or id) and the fields
    of `objects`, from describe (cached). A connection that is not the owner's, or that
    Salesforce refuses, gives a catalogue with `problem` set, never an error page."""
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        found = resolve_connection(uow.session, survey, connection)
        if found is None:
            return OrgCatalogue(
                problem=Phrase("%(name)s is not one of the owner's accounts.",
                               name=repr(connection))
            )  # fmt: skip
        connection_id, status = found.id, found.status
    if status != ConnectionStatus.ACTIVE:
        return OrgCatalogue(
            problem=Phrase("The account %(name)s needs a new login (%(status)s).",
                           name=repr(connection), status=status)
        )  # fmt: skip
    try:
        with client_for(db, settings, connection_id, cache) as client:
            listed = cache.get((connection_id, _OBJECTS_KEY))
            if listed is None:
                listed = {
                    "objects": [
                        [o["name"], o.get("label", o["name"])]
                        for o in client.describe_global().get("sobjects", [])
                        if o.get("createable") or o.get("updateable") or o.get("queryable")
                    ]
                }
                cache.put((connection_id, _OBJECTS_KEY), listed)
            names = {name.lower(): name for name, _ in listed["objects"]}
            fields: dict[str, list[SalesforceField]] = {}
            for wanted in dict.fromkeys(objects):
                if wanted and wanted.lower() in names:
                    fields[wanted] = _fields(client.describe(names[wanted.lower()]))
    except (SalesforceError, CxloopError, NotFound) as exc:
        reason = exc.message if isinstance(exc, CxloopError) else str(exc)
        return OrgCatalogue(
            problem=Phrase("Salesforce could not be asked: %(reason)s", reason=reason)
        )
    objects_list = sorted((str(n), str(label)) for n, label in listed["objects"])
    return OrgCatalogue(objects=objects_list, fields=fields)


def _fields(describe: dict[str, Any]) -> list[SalesforceField]:
    result = []
    for f in describe.get("fields", []):
        required = (
            bool(f.get("createable"))
            and not f.get("nillable", True)
            and not f.get("defaultedOnCreate", False)
            and f.get("type") != "boolean"
        )
        result.append(
            SalesforceField(
                name=f["name"],
                label=f.get("label", f["name"]),
                type=f.get("type", ""),
                required=required,
                createable=bool(f.get("createable")),
                updateable=bool(f.get("updateable")),
                external_id=bool(f.get("externalId")) or f["name"] == "Id",
                picklist=[
                    p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)
                ],
            )
        )
    return sorted(result, key=lambda x: x.name.lower())
