"""The Admin page (admins only): the people who can sign in to cxloop."""

from __future__ import annotations

from fastapi.responses import Response

from cxloop.errors import Forbidden
from cxloop.services import users
from cxloop.web.ui.context import Page, ui_router

router = ui_router()


@router.get("/admin")
def admin_page(page: Page) -> Response:
    """Every user: email, name, admin or not, active or not, created, last login."""
    if not page.user.is_admin:  # as the API's admin-only endpoints (web.deps.admin_actor)
        raise Forbidden("Only an admin can do this.", code="admin_only")
    return page.render("ui/admin/users.html", section="admin", people=users.list_users(page.db))
