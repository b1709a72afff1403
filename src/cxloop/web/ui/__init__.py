"""The admin UI: server-rendered pages (Jinja2 + htmx), one module per area.

`install(app)` mounts every area's router, builds the languages' template environments (kept on
`app.state`, one set per app) and the top navigation (only entries whose page is one of ours).
To add an area: write `ui/<area>.py` with `router = ui_router()`, add it to `_routers()`, and add
its navigation entry to NAV if it has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from cxloop.web.ui.markers import N_


@dataclass(frozen=True)
class NavEntry:
    """An entry of the top navigation; `label` is translated when shown."""

    section: str
    label: str
    path: str
    admin_only: bool = False


NAV = (
    NavEntry("surveys", N_("Surveys"), "/surveys"),
    NavEntry("accounts", N_("Accounts"), "/accounts"),
    NavEntry("runs", N_("Runs"), "/runs"),
    NavEntry("admin", N_("Admin"), "/admin", admin_only=True),
)


def _routers() -> tuple[APIRouter, ...]:
    from cxloop.web.ui import accounts, admin, runs, surveys, workflows

    return (surveys.router, accounts.router, workflows.router, runs.router, admin.router)


def install(app: FastAPI) -> None:
    """Mount the admin pages on `app`; the navigation lists only pages that exist."""
    paths: set[str] = set()
    for router in _routers():
        app.include_router(router)
        paths.update(getattr(route, "path", "") for route in router.routes)
    from cxloop.web.ui.i18n import UiLanguages

    app.state.ui_languages = UiLanguages()
    app.state.ui_nav = tuple(entry for entry in NAV if entry.path in paths)
