"""The Salesforce accounts page: the user's connections, adding, renaming, refreshing,
checking and removing them."""

from __future__ import annotations

from fastapi.responses import Response

from cxloop.services import connections
from cxloop.web.ui.context import Page, ui_router

router = ui_router()


@router.get("/accounts")
def account_list(page: Page) -> Response:
    """The user's Salesforce accounts."""
    accounts = connections.list_connections(page.db, page.user)
    return page.render("ui/accounts/list.html", section="accounts", accounts=accounts)
