"""Survey pages: the list (search, paging), create a blank survey, import a file with its report,
a survey's tabs (Survey, Workflows, Distributions, Responses), open and close."""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import File, Form, Query, UploadFile
from fastapi.responses import Response

from cxloop.db.models import Survey
from cxloop.domain.statuses import SurveyStatus
from cxloop.errors import CxloopError, InvalidInput
from cxloop.services import distributions, survey_content, surveys
from cxloop.services.access import SurveyAccess, access_to
from cxloop.web.ui.context import Page, PageContext, form_errors, ui_router
from cxloop.web.ui.i18n import N_

router = ui_router()

PAGE_SIZE = 25
IMPORT_ACCEPT = ".qsf,.json,.yaml,.yml"
STATUS_LABELS = MappingProxyType(
    {"draft": N_("Draft"), "active": N_("Open"), "closed": N_("Closed")}
)
ROLE_LABELS = MappingProxyType({"editor": N_("Editor"), "viewer": N_("Viewer")})
SOURCE_LABELS = MappingProxyType(
    {
        "query": N_("Link query string (anyone)"),
        "personal_link": N_("Personal and signed links, API"),
        "server": N_("API and workflows only"),
    }
)


@router.get("/")
@router.get("/surveys")
def survey_list(
    page: Page,
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The surveys the user can see, searchable by name, a page at a time."""
    return _list_page(page, q=q.strip(), cursor=cursor or None)


def _list_page(
    page: PageContext,
    *,
    q: str = "",
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    import_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    found = surveys.list_surveys(
        page.db, page.user, limit=PAGE_SIZE, cursor=cursor, name_contains=q or None
    )
    stats = surveys.survey_stats(page.db, page.user, [s.id for s in found.items])
    query = {"q": q} if q else {}
    next_url = (
        "/surveys?" + urlencode({**query, "cursor": found.next_cursor})
        if found.next_cursor
        else None
    )
    first_url = ("/surveys?" + urlencode(query)) if cursor else None
    return page.render(
        "ui/surveys/list.html",
        status_code=status_code,
        section="surveys",
        surveys=found.items,
        stats=stats,
        q=q,
        next_url=next_url,
        first_url=first_url,
        errors=errors or {},
        import_errors=import_errors or {},
        values=values or {},
        status_labels=STATUS_LABELS,
        import_accept=IMPORT_ACCEPT,
    )


@router.post("/surveys")
def create_survey(page: Page, name: Annotated[str, Form(max_length=400)] = "") -> Response:
    """Create a blank survey owned by the user; a bad name is shown beside its input."""
    try:
        survey = surveys.create_survey(page.db, page.user, name)
    except InvalidInput as exc:
        return _list_page(
            page,
            errors=form_errors(exc, default="name", page=page),
            values={"name": name},
            status_code=422,
        )
    return page.redirect(
        f"/surveys/{survey.id}", page._("Survey %(name)s created.", name=survey.name)
    )


def _with_file_name(errors: dict[str, str], filename: str) -> dict[str, str]:
    """The file's problem names the file (the sentence for a service's code does not)."""
    if filename and "file" in errors and filename not in errors["file"]:
        errors["file"] = f"{errors['file']} ({filename})"
    return errors


@router.post("/surveys/import")
async def import_survey(
    page: Page,
    file: Annotated[UploadFile | None, File()] = None,
    import_name: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Create a survey from a QSF, JSON or YAML file and show what was imported."""
    data = await file.read() if file is not None else b""
    filename = file.filename if file is not None and file.filename else ""
    problem: CxloopError | None = None
    if not filename:
        problem = InvalidInput(
            page._("Choose a .qsf, .json or .yaml file to import."), localized=True
        )
    elif not data:
        problem = InvalidInput(page._("The file %(name)s is empty.", name=filename), localized=True)
    elif len(import_name.strip()) > 200:
        problem = InvalidInput(
            page._("The survey name is too long: at most 200 characters."),
            details=[{"field": "import_name", "problem": page._("At most 200 characters.")}],
            localized=True,
        )
    if problem is None:
        try:
            survey, report = survey_content.create_survey_from_file(
                page.db, page.user, filename, data, name=import_name.strip() or None
            )
        except InvalidInput as exc:
            problem = exc
    if problem is not None:
        return _list_page(
            page,
            import_errors=_with_file_name(
                form_errors(problem, default="file", page=page), filename
            ),
            values={"import_name": import_name},
            status_code=422,
        )
    return page.render(
        "ui/surveys/import_report.html", section="surveys", survey=survey, report=report
    )


@router.get("/surveys/{survey_id}")
def survey_page(survey_id: str, page: Page) -> Response:
    """A survey's Survey tab: status, owner and collaborators, questions, embedded data, link."""
    survey = surveys.get_survey(page.db, page.user, survey_id)
    content = survey_content.get_content(page.db, page.user, survey_id).content
    return _render_tab(
        page,
        survey,
        "survey",
        "ui/surveys/survey.html",
        content=content,
        source_labels=SOURCE_LABELS,
        role_labels=ROLE_LABELS,
        public_link=(
            page.container.settings.base_url.rstrip("/") + f"/s/{survey.id}"
            if survey.anonymous_link
            else None
        ),
    )


@router.get("/surveys/{survey_id}/distributions")
def distributions_tab(survey_id: str, page: Page) -> Response:
    """A survey's distributions (invitations sent by directory tasks), newest first."""
    survey = surveys.get_survey(page.db, page.user, survey_id)
    found = distributions.list_distributions(page.db, page.user, survey_id, limit=50)
    return _render_tab(
        page, survey, "distributions", "ui/surveys/distributions.html", distributions=found.items
    )


@router.get("/surveys/{survey_id}/responses")
def responses_tab(survey_id: str, page: Page) -> Response:
    """A survey's responses, summed up (the response browser comes later)."""
    survey = surveys.get_survey(page.db, page.user, survey_id)
    stats = surveys.survey_stats(page.db, page.user, [survey_id])[survey_id]
    return _render_tab(page, survey, "responses", "ui/surveys/responses.html", stats=stats)


@router.post("/surveys/{survey_id}/status")
def change_status(
    survey_id: str, page: Page, status: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """Open (take responses) or close a survey: owner and editors."""
    if status not in (SurveyStatus.ACTIVE, SurveyStatus.CLOSED):
        raise InvalidInput(page._("Choose to open or close the survey."), localized=True)
    change = surveys.open_survey if status == SurveyStatus.ACTIVE else surveys.close_survey
    survey = change(page.db, page.user, survey_id)  # audited as survey.open / survey.close
    message = (
        page._("Survey %(name)s is open for responses.", name=survey.name)
        if status == SurveyStatus.ACTIVE
        else page._("Survey %(name)s is closed.", name=survey.name)
    )
    return page.redirect(f"/surveys/{survey_id}", message)


def _render_tab(
    page: PageContext, survey: Survey, tab: str, template: str, **context: Any
) -> Response:
    access = access_to(survey, page.user)
    return page.render(
        template,
        section="surveys",
        survey=survey,
        tab=tab,
        can_edit=access >= SurveyAccess.EDIT,
        access=_access_name(survey, page),
        status_labels=STATUS_LABELS,
        **context,
    )


def _access_name(survey: Survey, page: PageContext) -> str:
    """The user's role on the survey, as the page says it."""
    if survey.owner_id == page.user.id:
        return "owner"
    for collaborator in survey.collaborators:
        if collaborator.user_id == page.user.id:
            return collaborator.role
    return "admin" if page.user.is_admin else "viewer"
