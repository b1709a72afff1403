"""/api/v1/connections: linked Salesforce accounts. Tokens never appear in a reply."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from cxloop.db.models import Connection, OAuthAttempt
from cxloop.domain.statuses import ConnectionStatus, LinkingStatus
from cxloop.services import connections, doctor
from cxloop.web.api.schemas import Reply, RequestBody
from cxloop.web.deps import ApiActor, AppContainer, Db

router = APIRouter(prefix="/api/v1/connections", tags=["connections"])

ConnectionType = Literal["production", "sandbox", "custom", "emulator"]


class ConnectionCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    type: ConnectionType
    login_url: str | None = Field(default=None, max_length=300)


class ConnectionRename(RequestBody):
    name: str = Field(min_length=1, max_length=100)


class LinkingOut(Reply):
    attempt_id: str
    authorize_url: str = Field(
        description="A one-time link on cxloop (`/oauth/salesforce/start/...`, valid for "
        "`oauth_bootstrap_ttl_s`): open it in a browser signed in to cxloop as the same user "
        "(or sign in when asked); it leads on to Salesforce's login page. Linking completes "
        "only in that browser."
    )
    expires_at: datetime
    callback_url: str = Field(
        description="Where Salesforce sends the browser back (CXLOOP_BASE_URL + "
        "/oauth/salesforce/callback): the connected app must list it."
    )
    status: LinkingStatus = LinkingStatus.PENDING


class AttemptOut(Reply):
    id: str
    status: LinkingStatus
    error: str
    connection_id: str | None
    expires_at: datetime
    finished_at: datetime | None


class ConnectionOut(Reply):
    id: str
    name: str
    type: str
    login_url: str
    instance_url: str
    org_id: str
    username: str
    status: ConnectionStatus
    status_reason: str
    last_used_at: datetime | None
    last_error: str
    last_error_at: datetime | None
    created_at: datetime


class RemovalOut(Reply):
    removed: bool
    revoked_at_salesforce: bool
    message: str


class FindingOut(Reply):
    level: str
    check: str
    message: str
    fix: str


class DoctorOut(Reply):
    connection_id: str
    ok: bool
    findings: list[FindingOut]


@router.post("", status_code=201, response_model=LinkingOut)
def create_connection(
    body: ConnectionCreate, actor: ApiActor, container: AppContainer
) -> LinkingOut:
    """Start linking: open `authorize_url` in a browser signed in to cxloop as yourself, then
    log in at Salesforce; poll the attempt to know when it is done."""
    started = connections.start_linking(
        container.db, container.settings, actor, body.name, body.type, body.login_url
    )
    return LinkingOut.model_validate(started)


@router.get("", response_model=list[ConnectionOut])
def list_connections(actor: ApiActor, db: Db) -> list[Connection]:
    return connections.list_connections(db, actor)


@router.get("/attempts/{attempt_id}", response_model=AttemptOut)
def get_attempt(attempt_id: str, actor: ApiActor, db: Db) -> OAuthAttempt:
    """Whether a linking attempt has completed (poll this after opening the authorize URL)."""
    return connections.attempt_status(db, actor, attempt_id)


@router.get("/{connection_id}", response_model=ConnectionOut)
def get_connection(connection_id: str, actor: ApiActor, db: Db) -> Connection:
    return connections.get_connection(db, actor, connection_id)


@router.patch("/{connection_id}", response_model=ConnectionOut)
def rename_connection(
    connection_id: str, body: ConnectionRename, actor: ApiActor, db: Db
) -> Connection:
    return connections.rename_connection(db, actor, connection_id, body.name)


@router.delete("/{connection_id}", response_model=RemovalOut)
def remove_connection(connection_id: str, actor: ApiActor, container: AppContainer) -> RemovalOut:
    """Revoke the token at Salesforce and remove the connection (removed here even if Salesforce
    cannot be reached; the reply says so)."""
    result = connections.remove_connection(container.db, container.settings, actor, connection_id)
    return RemovalOut(
        removed=True, revoked_at_salesforce=result.revoked_at_salesforce, message=result.message
    )


@router.post("/{connection_id}/revoke", response_model=RemovalOut)
def revoke_connection(connection_id: str, actor: ApiActor, container: AppContainer) -> RemovalOut:
    """Revoke the access at Salesforce but keep the connection (status `revoked`) so that the
    workflows using it pause with a reason; `refresh` reconnects it."""
    result = connections.revoke_connection(container.db, container.settings, actor, connection_id)
    return RemovalOut(
        removed=False, revoked_at_salesforce=result.revoked_at_salesforce, message=result.message
    )


@router.post("/{connection_id}/refresh", response_model=LinkingOut)
def refresh_connection(connection_id: str, actor: ApiActor, container: AppContainer) -> LinkingOut:
    """Re-run the OAuth flow for this connection (it keeps its id; it must stay in its org)."""
    started = connections.start_refresh(container.db, container.settings, actor, connection_id)
    return LinkingOut.model_validate(started)


@router.get("/{connection_id}/doctor", response_model=DoctorOut)
def run_doctor(
    connection_id: str,
    actor: ApiActor,
    container: AppContainer,
    survey_id: Annotated[str | None, Query(max_length=40)] = None,
) -> DoctorOut:
    """Check the Salesforce side: API access, refresh, API requests left, and (with a survey)
    each Salesforce task's object, fields, picklists, required fields, record type and key."""
    report = doctor.run(container, actor, connection_id, survey_id=survey_id)
    return DoctorOut(
        connection_id=connection_id,
        ok=report.ok,
        findings=[FindingOut.model_validate(f) for f in report.findings],
    )
