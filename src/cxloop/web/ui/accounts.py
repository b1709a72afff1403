"""The Salesforce accounts page: the user's connections; add (OAuth), rename, refresh (log in
again), remove (revokes at Salesforce) and check setup (the doctor).

Adding or refreshing goes through the OAuth flow of services/connections.py: the page starts
the linking, the browser opens the one-time start link, logs in at Salesforce and comes back to
cxloop's callback, which sends it back to the page that started it (`return_to`, kept in this
browser's session under the attempt's id; only a local path).

The add-account form and the account list are partials (`ui/accounts/_add_form.html`,
`ui/accounts/_list.html`) that other pages reuse: the workflow builder's Salesforce task posts
the same form with its own `return_to`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from cxloop.db.models import Connection
from cxloop.domain.statuses import ConnectionStatus
from cxloop.errors import CxloopError, Forbidden, NotFound
from cxloop.services import connections, doctor
from cxloop.web.ui.context import (
    Page,
    PageContext,
    flash,
    form_errors,
    safe_next,
    ui_router,
)
from cxloop.web.ui.i18n import N_

router = ui_router()

ACCOUNTS_PATH = "/accounts"
# Where a form goes back to when it is done (a local path; `safe_next` holds it to that): a
# query parameter of the page that shows the form, a field of the form posted.
ReturnToQuery = Annotated[str, Query(max_length=2000)]
ReturnToForm = Annotated[str, Form(max_length=2000)]
RETURN_KEY = "oauth_return"
MAX_REMEMBERED = 5  # pending linkings remembered per browser (the session is a cookie)
# The connection types a person chooses from; "custom" is Salesforce's My Domain login.
CONNECTION_CHOICES = (
    ("production", N_("Salesforce production (OAuth)")),
    ("sandbox", N_("Salesforce sandbox (OAuth)")),
    ("custom", N_("My Domain (OAuth)")),
)
TYPE_LABELS = MappingProxyType(
    {
        "production": N_("Production"),
        "sandbox": N_("Sandbox"),
        "custom": N_("My Domain"),
        "emulator": N_("Emulator"),
    }
)
STATUS_LABELS = MappingProxyType(
    {
        "active": N_("Connected"),
        "needs_reauth": N_("Needs a new login"),
        "revoked": N_("Revoked"),
    }
)
# Which form field a service's error code is about.
_ERROR_FIELDS = MappingProxyType(
    {
        "bad_login_url": "login_url",
        "bad_connection_type": "connection_type",
        "bad_name": "account_name",
        "name_taken": "account_name",
    }
)


def _account(connection_id: str, page: Page) -> Connection:
    return connections.get_connection(page.db, page.user, connection_id)


# The account a page of one account is about: the path's connection_id, if the user may see it
# (404 / 403 as in the API).
Account = Annotated[Connection, Depends(_account)]


def remember_return_to(request: Request, attempt_id: str, return_to: str | None) -> None:
    """Keep where to come back to after the OAuth callback of `attempt_id` (a local path)."""
    remembered = dict(request.session.get(RETURN_KEY) or {})
    remembered[attempt_id] = safe_next(return_to, ACCOUNTS_PATH)
    request.session[RETURN_KEY] = dict(list(remembered.items())[-MAX_REMEMBERED:])


def take_return_to(request: Request, attempt_id: str | None) -> str | None:
    """Where the page that started `attempt_id` wants the browser back (once), if anywhere."""
    remembered = dict(request.session.get(RETURN_KEY) or {})
    if not attempt_id or attempt_id not in remembered:
        return None
    target = remembered.pop(attempt_id)
    request.session[RETURN_KEY] = remembered
    return safe_next(target, ACCOUNTS_PATH)


@router.get(ACCOUNTS_PATH)
def account_list(page: Page) -> Response:
    """The user's Salesforce accounts, how many of the allowed number are used, and a
    reconnect banner for each that needs a new login."""
    return page.render("ui/accounts/list.html", **_list_context(page))


def _list_context(page: PageContext) -> dict[str, Any]:
    accounts = connections.list_connections(page.db, page.user)
    return {
        "section": "accounts",
        "accounts": accounts,
        "limit": page.container.settings.max_connections_per_user,
        "type_labels": TYPE_LABELS,
        "account_status_labels": STATUS_LABELS,
        "needing_login": [a for a in accounts if a.status != ConnectionStatus.ACTIVE],
    }


@router.get(ACCOUNTS_PATH + "/new")
def add_account_form(page: Page, return_to: ReturnToQuery = ACCOUNTS_PATH) -> Response:
    """The add-account form: connection type, login URL (My Domain), account name."""
    return _add_page(page, safe_next(return_to, ACCOUNTS_PATH))


def _add_page(
    page: PageContext,
    return_to: str,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    template = "ui/accounts/_add_form.html" if page.is_htmx else "ui/accounts/add.html"
    return page.render(
        template,
        status_code=status_code,
        section="accounts",
        return_to=return_to,
        errors=errors or {},
        values=values or {"connection_type": "production"},
        connection_choices=CONNECTION_CHOICES,
    )


@router.post(ACCOUNTS_PATH + "/new")
def add_account(
    page: Page,
    connection_type: Annotated[str, Form(max_length=20)] = "",
    account_name: Annotated[str, Form(max_length=400)] = "",
    login_url: Annotated[str, Form(max_length=400)] = "",
    return_to: ReturnToForm = ACCOUNTS_PATH,
) -> Response:
    """Start linking a new account, then send the browser to Salesforce's login (via cxloop's
    one-time start link); every problem with the form is shown beside its input instead."""
    return_to = safe_next(return_to, ACCOUNTS_PATH)
    values = {
        "connection_type": connection_type,
        "account_name": account_name,
        "login_url": login_url,
    }
    errors: dict[str, str] = {}
    if connection_type not in {choice for choice, _label in CONNECTION_CHOICES}:
        errors["connection_type"] = page._("Choose the kind of Salesforce org to connect.")
    if connection_type == "custom" and not login_url.strip():
        errors["login_url"] = page._(
            "Enter your My Domain login URL, like https://acme.my.salesforce.com."
        )
    if not account_name.strip():
        errors["account_name"] = page._("Give the account a name, like “Acme production”.")
    if not errors:
        try:
            started = connections.start_linking(
                page.db,
                page.container.settings,
                page.user,
                account_name,
                connection_type,
                login_url.strip() if connection_type == "custom" else None,
            )
        except CxloopError as exc:
            errors = form_errors(exc, default=_ERROR_FIELDS.get(exc.code, ""), page=page)
            # the sentence for the code does not repeat what was entered: name it
            if errors.get("login_url") and login_url.strip() not in errors["login_url"]:
                errors["login_url"] += f" ({login_url.strip()})"
    if errors:
        return _add_page(page, return_to, errors, values, status_code=422)
    remember_return_to(page.request, started.attempt_id, return_to)
    return _to_salesforce(page, started.authorize_url)


@router.post(ACCOUNTS_PATH + "/{connection_id}/refresh")
def refresh_account(
    connection_id: str, page: Page, return_to: ReturnToForm = ACCOUNTS_PATH
) -> Response:
    """Log in to Salesforce again for this account (the same org only; the same account id,
    so workflows keep working)."""
    started = connections.start_refresh(page.db, page.container.settings, page.user, connection_id)
    remember_return_to(page.request, started.attempt_id, return_to)
    return _to_salesforce(page, started.authorize_url)


def _to_salesforce(page: PageContext, authorize_url: str) -> Response:
    if page.is_htmx:  # a whole-page visit, not a swap
        return Response(status_code=204, headers={"HX-Redirect": authorize_url})
    return RedirectResponse(authorize_url, status_code=303)


@router.get(ACCOUNTS_PATH + "/{connection_id}/rename")
def rename_form(account: Account, page: Page, return_to: ReturnToQuery = ACCOUNTS_PATH) -> Response:
    return _account_page(
        page, "ui/accounts/rename.html", account, return_to,
        errors={}, values={"account_name": account.name},
    )  # fmt: skip


@router.post(ACCOUNTS_PATH + "/{connection_id}/rename")
def rename_account(
    account: Account,
    page: Page,
    account_name: Annotated[str, Form(max_length=400)] = "",
    return_to: ReturnToForm = ACCOUNTS_PATH,
) -> Response:
    """Rename the account; back to the page the menu was on (the accounts page, or a workflow
    builder's task, which is told the old and new name so that its task follows)."""
    return_to = safe_next(return_to, ACCOUNTS_PATH)
    try:
        renamed = connections.rename_connection(page.db, page.user, account.id, account_name)
    except CxloopError as exc:
        if isinstance(exc, Forbidden | NotFound):
            raise
        return _account_page(
            page, "ui/accounts/rename.html", account, return_to, status_code=422,
            errors=form_errors(exc, default="account_name", page=page),
            values={"account_name": account_name},
        )  # fmt: skip
    if return_to != ACCOUNTS_PATH:
        return_to = with_query(return_to, renamed_from=account.name, account=renamed.name)
    return page.redirect(
        return_to,
        page._("Renamed %(old)s to %(new)s.", old=account.name, new=renamed.name),
    )


def with_query(path: str, **values: str) -> str:
    """A local path with more query parameters."""
    return path + ("&" if "?" in path else "?") + urlencode(values)


@router.get(ACCOUNTS_PATH + "/{connection_id}/remove")
def remove_form(account: Account, page: Page, return_to: ReturnToQuery = ACCOUNTS_PATH) -> Response:
    return _account_page(page, "ui/accounts/remove.html", account, return_to)


@router.post(ACCOUNTS_PATH + "/{connection_id}/remove")
def remove_account(
    account: Account, page: Page, return_to: ReturnToForm = ACCOUNTS_PATH
) -> Response:
    """Revoke the account's access at Salesforce and remove it from cxloop."""
    return_to = safe_next(return_to, ACCOUNTS_PATH)
    result = connections.remove_connection(page.db, page.container.settings, page.user, account.id)
    if result.revoked_at_salesforce:
        message = page._(
            "Removed %(name)s and revoked its access at Salesforce.", name=account.name
        )
        return page.redirect(return_to, message)
    flash(
        page.request,
        page._(
            "Removed %(name)s from cxloop, but Salesforce could not be told. To be sure, revoke "
            "it in Salesforce: Setup > Connected Apps OAuth Usage.",
            name=account.name,
        ),
        kind="warning",
    )
    return page.redirect(return_to)


@router.get(ACCOUNTS_PATH + "/{connection_id}/check")
def check_account(
    account: Account, page: Page, return_to: ReturnToQuery = ACCOUNTS_PATH
) -> Response:
    """The doctor's findings for this account, each with its fix."""
    report = doctor.run(page.container, page.user, account.id)
    return _account_page(page, "ui/accounts/check.html", account, return_to, report=report)


def _account_page(
    page: PageContext,
    template: str,
    account: Connection,
    return_to: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """A page about one account (its rename and remove forms, its check) in the accounts
    section, with a way back to `return_to` (if it is a local path)."""
    return page.render(
        template,
        status_code=status_code,
        section="accounts",
        account=account,
        return_to=safe_next(return_to, ACCOUNTS_PATH),
        **context,
    )
