"""The emulator's pages: the OAuth login and consent pages, and a small admin page that lists
records, edits one (closing a Case fires its outbound message) and shows the outbound queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from .dml import RecordFailure, update_as_administrator
from .errors import SalesforceError
from .httputil import request_base_url
from .schema import FieldType

if TYPE_CHECKING:
    from .emulator import Emulator
    from .orgs import Org
    from .schema import SObjectDef

router = APIRouter()

_env = Environment(
    loader=PackageLoader("sfemu", "templates"), autoescape=select_autoescape(["html"])
)
UI = "/__emulator__/ui"


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """Render a page of templates/."""
    html = _env.get_template(template).render(request=request, ui=UI, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


@router.get("/__emulator__/", include_in_schema=False)
@router.get(UI, include_in_schema=False)
async def index(request: Request) -> Response:
    """Orgs, users, objects with record counts, the outbound queue and active faults."""
    emulator = _emulator(request)
    base = emulator.public_base_url(request_base_url(request))
    with emulator.lock:
        orgs = []
        for org in emulator.orgs.values():
            objects = [
                {
                    "name": s.name,
                    "label": s.label_plural,
                    "count": sum(1 for _ in emulator.table(org, s).live()),
                }
                for s in org.sobjects.values()
            ]
            orgs.append(
                {"org": org, "objects": objects, "login_url": emulator.login_url(org, base)}
            )
        outbound = emulator.outbound.messages()[-50:]
        faults = [f.as_dict() for f in emulator.faults.faults]
    return render(request, "index.html", {"orgs": orgs, "outbound": outbound, "faults": faults})


@router.get(UI + "/outbound", include_in_schema=False)
async def outbound_page(request: Request) -> Response:
    """The outbound queue."""
    emulator = _emulator(request)
    with emulator.lock:
        rules = [(org, rule) for org in emulator.orgs.values() for rule in org.outbound_rules]
    return render(
        request, "outbound.html", {"messages": emulator.outbound.messages(), "rules": rules}
    )


@router.post(UI + "/outbound/deliver", include_in_schema=False)
def outbound_deliver(request: Request) -> Response:
    """Deliver every pending message now, then show the queue."""
    _emulator(request).outbound.deliver_due(force=True)
    return RedirectResponse(UI + "/outbound", status_code=303)


@router.get(UI + "/{org_key}/{sobject_name}", include_in_schema=False)
async def records_page(request: Request, org_key: str, sobject_name: str) -> Response:
    """The newest records of one object."""
    emulator = _emulator(request)
    with emulator.lock:
        org, sobject = _org_and_object(emulator, org_key, sobject_name)
        if org is None or sobject is None:
            return _not_found(request, "No such org or object.")
        records = list(emulator.table(org, sobject).live())[-200:][::-1]
        columns = [
            f
            for f in sobject.fields.values()
            if not f.system and f.name not in ("OwnerId", "RecordTypeId")
        ][:7]
    return render(
        request,
        "records.html",
        {"org": org, "sobject": sobject, "records": records, "columns": columns},
    )


@router.get(UI + "/{org_key}/{sobject_name}/{record_id}", include_in_schema=False)
async def record_page(
    request: Request, org_key: str, sobject_name: str, record_id: str
) -> Response:
    """One record's edit form."""
    return _record_form(request, org_key, sobject_name, record_id, None, None)


def _org_and_object(
    emulator: Emulator, org_key: str, sobject_name: str
) -> tuple[Org | None, SObjectDef | None]:
    """The org and its object the page's address names (None where there is no such)."""
    org = emulator.org(org_key)
    return org, org.sobject(sobject_name) if org else None


def _not_found(request: Request, text: str) -> Response:
    return render(request, "message.html", {"title": "Not found", "text": text}, 404)


def _record_form(
    request: Request,
    org_key: str,
    sobject_name: str,
    record_id: str,
    error: str | None,
    saved: bool | None,
) -> Response:
    emulator = _emulator(request)
    with emulator.lock:
        org = emulator.org(org_key)
        sobject = org.sobject(sobject_name) if org else None
        found = emulator.find_record(org, record_id) if org else None
        if org is None or sobject is None or found is None:
            return _not_found(request, "No such record.")
        _sobject, record = found
        editable = [f for f in sobject.fields.values() if f.updateable and not f.system]
        readonly = [f for f in sobject.fields.values() if f not in editable]
    return render(
        request,
        "record.html",
        {
            "org": org,
            "sobject": sobject,
            "record": record,
            "editable": editable,
            "readonly": readonly,
            "error": error,
            "saved": saved or request.query_params.get("saved") == "1",
            "FieldType": FieldType,
        },
        400 if error else 200,
    )


@router.post(UI + "/{org_key}/{sobject_name}/{record_id}", include_in_schema=False)
async def record_save(
    request: Request, org_key: str, sobject_name: str, record_id: str
) -> Response:
    """Save the edit form as the org's administrator (outbound rules fire as for any update)."""
    emulator = _emulator(request)
    form = await request.form()
    with emulator.lock:
        org, sobject = _org_and_object(emulator, org_key, sobject_name)
        if org is None or sobject is None:
            return _not_found(request, "No such org or object.")
        body: dict[str, Any] = {}
        for fdef in sobject.fields.values():
            if not fdef.updateable or fdef.system:
                continue
            if fdef.type == FieldType.BOOLEAN:
                if f"__present__{fdef.name}" in form:
                    body[fdef.name] = fdef.name in form
            elif fdef.name in form:
                body[fdef.name] = str(form[fdef.name]).strip() or None
        try:
            update_as_administrator(emulator, org, sobject, record_id, body)
        except RecordFailure as failure:
            return _record_form(
                request,
                org_key,
                sobject_name,
                record_id,
                f"{failure.error.code}: {failure.error.message}",
                None,
            )
        except SalesforceError as exc:
            return _record_form(
                request, org_key, sobject_name, record_id, f"{exc.code}: {exc.message}", None
            )
    return RedirectResponse(f"{UI}/{org_key}/{sobject.name}/{record_id}?saved=1", status_code=303)
