"""Survey pages: the list, a survey's tabs, create, import, open and close."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from cxloop.services import surveys
from cxloop.web.ui.context import Page, ui_router

router = ui_router()

PAGE_SIZE = 25


@router.get("/")
@router.get("/surveys")
def survey_list(
    page: Page,
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The surveys the user can see, searchable by name, a page at a time."""
    found = surveys.list_surveys(
        page.db, page.user, limit=PAGE_SIZE, cursor=cursor or None, name_contains=q or None
    )
    return page.render("ui/surveys/list.html", section="surveys", surveys=found, q=q)
