"""The doctor: checks the Salesforce side of a connection and of the tasks that use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cxloop.domain.phrases import Phrase
from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.domain.statuses import ConnectionStatus
from cxloop.domain.workflow import SalesforceTask
from cxloop.salesforce.client import DescribeCache, SalesforceClient
from cxloop.salesforce.doctor import Finding
from cxloop.salesforce.errors import ApiDisabled, SalesforceError
from cxloop.salesforce.remedies import Remedies
from cxloop.services import connections, surveys, workflows
from cxloop.services.access import Actor
from cxloop.services.salesforce_clients import client_for
from cxloop.services.task_checks import ConnectionFacts, check_task_in_org, user_profile

if TYPE_CHECKING:
    from cxloop.bootstrap import Container

LOW_API_REQUESTS = 0.10  # warn when less than this share of the daily allocation is left


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)


def run(
    container: Container,
    actor: Actor,
    connection_id: str,
    *,
    survey_id: str | None = None,
    tasks: Sequence[SalesforceTaskSpec] = (),
) -> DoctorReport:
    """Check a connection, then each task (given, or of the survey) against its org."""
    db, settings = container.db, container.settings
    connection = connections.get_connection(db, actor, connection_id)
    report = DoctorReport()
    if connection.status != ConnectionStatus.ACTIVE:
        report.findings.append(
            Finding(
                "error",
                "connection_status",
                Phrase(
                    "The connection is %(status)s: %(reason)s",
                    status=connection.status,
                    reason=connection.status_reason,
                ),
                Phrase(
                    "Reconnect it: `cxloop connections refresh %(name)s`.", name=connection.name
                ),
            )
        )
        return report
    facts = ConnectionFacts.of(connection)
    if not _check_refresh(container, facts, connection.token_version, report):
        return report
    cache = container.describe_cache
    with client_for(db, settings, connection_id, cache) as client:
        if not _check_api(client, facts, cache, report):
            return report
        task_specs = list(tasks)
        if survey_id is not None:
            task_specs += survey_tasks(container, actor, survey_id, connection_id, report)
        for spec in task_specs:
            report.findings += _check_one_task(client, spec, facts, cache)
    return report


def survey_tasks(
    container: Container, actor: Actor, survey_id: str, connection_id: str, report: DoctorReport
) -> list[SalesforceTaskSpec]:
    """The Salesforce tasks of a survey's workflows that use this connection."""
    survey = surveys.get_survey(container.db, actor, survey_id)  # NotFound unless visible
    found: list[SalesforceTaskSpec] = []
    for workflow in workflows.list_workflows(container.db, actor, survey_id):
        document = container.ledger.workflow_document(
            workflow.id, workflow.revision, workflow.document
        )
        for task in document.tasks:
            if not isinstance(task, SalesforceTask):
                continue
            connection = workflows.resolve_connection(container.db, survey, task.connection)
            if connection is not None and connection.id == connection_id:
                found.append(task.model_copy(update={"name": f"{workflow.name} / {task.name}"}))
    if not found:
        report.findings.append(
            Finding(
                "ok",
                "survey_tasks",
                Phrase(
                    "Survey %(survey)s has no workflow tasks that use this connection.",
                    survey=survey_id,
                ),
            )
        )
    return found


def _check_refresh(
    container: Container, facts: ConnectionFacts, version: int, report: DoctorReport
) -> bool:
    try:
        connections.refresh_access_token(container.db, container.settings, facts.id, version)
    except SalesforceError as exc:
        fix = (
            facts.remedies().refresh_policy()
            if exc.kind == "reauth"
            else Phrase(
                "Check that Salesforce is reachable from this server, then run the doctor again."
            )
        )
        report.findings.append(
            Finding(
                "error",
                "refresh",
                Phrase("Refreshing the access token failed: %(error)s", error=str(exc)),
                fix,
            )
        )
        return False
    report.findings.append(Finding("ok", "refresh", Phrase("The refresh token works.")))
    return True


def _check_api(
    client: SalesforceClient, facts: ConnectionFacts, cache: DescribeCache, report: DoctorReport
) -> bool:
    try:
        limits = client.limits()
    except ApiDisabled as exc:
        fix = (
            Phrase(
                "This Salesforce edition has no API access; use Enterprise, Unlimited, Developer "
                "or Performance edition, or ask Salesforce to enable the API."
            )
            if exc.error_code == "API_DISABLED_FOR_ORG"
            else _with_profile(client, facts, cache).api_enabled()
        )
        report.findings.append(
            Finding(
                "error", "api_access", Phrase("API access is off: %(error)s", error=str(exc)), fix
            )
        )
        return False
    except SalesforceError as exc:
        report.findings.append(
            Finding(
                "error",
                "api_access",
                Phrase("The API call failed: %(error)s", error=str(exc)),
                Phrase("Run the doctor again."),
            )
        )
        return False
    report.findings.append(Finding("ok", "api_access", Phrase("The user has API access.")))
    daily = limits.get("DailyApiRequests") or {}
    maximum, remaining = int(daily.get("Max") or 0), int(daily.get("Remaining") or 0)
    if maximum and remaining == 0:
        report.findings.append(
            Finding(
                "error",
                "api_requests",
                Phrase("The org has used all %(max)s of its daily API requests.", max=maximum),
                facts.remedies().api_requests()
                if facts.type == "emulator"
                else Phrase(
                    "Wait for the rolling 24-hour window to free requests, or buy more from "
                    "Salesforce; cxloop holds its work meanwhile."
                ),
            )
        )
    elif maximum and remaining < maximum * LOW_API_REQUESTS:
        report.findings.append(
            Finding(
                "warning",
                "api_requests",
                Phrase(
                    "Only %(remaining)s of %(max)s daily API requests are left.",
                    remaining=remaining,
                    max=maximum,
                ),
                facts.remedies().api_requests(),
            )
        )
    else:
        report.findings.append(
            Finding(
                "ok",
                "api_requests",
                Phrase(
                    "%(remaining)s of %(max)s daily API requests left.",
                    remaining=remaining,
                    max=maximum,
                ),
            )
        )
    return True


def _with_profile(
    client: SalesforceClient, facts: ConnectionFacts, cache: DescribeCache
) -> Remedies:
    """The connection's remedies, naming the user's profile if Salesforce says which it is."""
    return facts.remedies(user_profile(client, cache, facts.id, facts.sf_user_id))


def _check_one_task(
    client: SalesforceClient, spec: SalesforceTaskSpec, facts: ConnectionFacts, cache: DescribeCache
) -> list[Finding]:
    try:
        return check_task_in_org(client, spec, facts, cache, fresh=True)
    except SalesforceError as exc:
        return [
            Finding(
                "error",
                "describe",
                Phrase(
                    "task '%(name)s': describe failed: %(error)s", name=spec.name, error=str(exc)
                ),
            )
        ]
