"""/api/v1/salesforce/app: the connected app cxloop links with (admins only; never a secret)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from cxloop.services import salesforce_apps
from cxloop.web.api.schemas import Reply, RequestBody
from cxloop.web.deps import AdminActor, AppContainer

router = APIRouter(prefix="/api/v1/salesforce", tags=["salesforce"])


class AppOut(Reply):
    scope: str = Field(description='"default", or the login host (host[:port]) it serves.')
    client_id: str
    source: str = Field(description="setting, database, or none")
    origin: str = Field(description='"manual", "emulator" (discovered), or "" for a setting.')
    overridden_by_setting: bool
    updated_at: datetime | None


class AppsOut(Reply):
    callback_url: str = Field(description="The callback URL to register in the connected app.")
    apps: list[AppOut]


class AppSet(RequestBody):
    client_id: str = Field(min_length=1, max_length=salesforce_apps.MAX_CLIENT_ID)
    client_secret: str = Field(
        min_length=1, max_length=salesforce_apps.MAX_CLIENT_SECRET, repr=False
    )
    login_url: str | None = Field(
        default=None, max_length=300, description="Only for this login host (default: all)."
    )


@router.get("/app", response_model=AppsOut)
def get_app(_admin: AdminActor, container: AppContainer) -> AppsOut:
    """The connected apps and where each comes from; secrets are never shown."""
    return _apps(container)


@router.put("/app", response_model=AppsOut)
def put_app(body: AppSet, admin: AdminActor, container: AppContainer) -> AppsOut:
    """Store the default connected app (or the one for `login_url`'s host), encrypted; the next
    linking uses it, no restart. Settings still win when given."""
    salesforce_apps.set_app(container.db, admin, body.client_id, body.client_secret, body.login_url)
    return _apps(container)


def _apps(container: AppContainer) -> AppsOut:
    views = salesforce_apps.show(container.db, container.settings)
    return AppsOut(
        callback_url=container.settings.oauth_callback_url,
        apps=[AppOut.model_validate(v, from_attributes=True) for v in views],
    )
