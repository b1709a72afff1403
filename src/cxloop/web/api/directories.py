"""/api/v1/directories, /contacts, /mailing-lists: the contact directory.

A directory belongs to one user; its owner (or an admin) may use it, anyone else gets 404.
Contacts are imported as CSV or JSON lines in the request body; a bad row is reported with its
line and reason while the good ones are stored.
"""

from __future__ import annotations

import io
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from cxloop.db.directory_models import Contact, Directory, MailingList
from cxloop.services import directory as service
from cxloop.services.directory import ContactFields
from cxloop.web.api.schemas import PageOut, Reply, RequestBody, reply_model
from cxloop.web.deps import ApiActor, Db
from cxloop.web.errors import UnsupportedMediaType

router = APIRouter(prefix="/api/v1", tags=["directory"])

EmbeddedValue = str | int | float | bool | None
# Bodies that say nothing of their format: `?format=` decides.
_UNTYPED_MEDIA_TYPES = frozenset({"", "text/plain", "application/octet-stream"})
_FORMATS_BY_MEDIA_TYPE = MappingProxyType(
    {
        "text/csv": "csv",
        "application/csv": "csv",
        "application/x-ndjson": "jsonl",
        "application/ndjson": "jsonl",
        "application/jsonl": "jsonl",
        "application/x-jsonlines": "jsonl",
        "application/json-lines": "jsonl",
    }
)


# --- shapes


class DirectoryCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    frequency_limit: int | None = Field(default=None, ge=1)
    frequency_days: int | None = Field(default=None, ge=1)


class DirectoryChanges(RequestBody):
    """Only the fields sent change; a null frequency setting turns that limit off."""

    name: str = Field(default=None, min_length=1, max_length=100)  # never null: leave it out
    frequency_limit: int | None = Field(default=None, ge=1)
    frequency_days: int | None = Field(default=None, ge=1)


class DirectoryOut(Reply):
    id: str
    owner_id: str
    name: str
    frequency_limit: int | None
    frequency_days: int | None
    created_at: datetime
    updated_at: datetime


class ContactCreate(RequestBody):
    email: str = Field(min_length=1, max_length=320)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40)
    language: str = Field(default="", max_length=16)
    external_ref: str | None = Field(default=None, max_length=100)
    embedded_data: dict[str, EmbeddedValue] = Field(default_factory=dict)


class ContactChanges(RequestBody):
    """Only the fields sent change; `embedded_data` is merged (null removes a field)."""

    email: str | None = Field(default=None, min_length=1, max_length=320)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    language: str | None = Field(default=None, max_length=16)
    external_ref: str | None = Field(default=None, max_length=100)
    embedded_data: dict[str, EmbeddedValue] | None = None


class ContactOut(Reply):
    id: str
    directory_id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    language: str
    external_ref: str | None
    embedded_data: dict[str, Any]
    opted_out: bool
    opted_out_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MailingListRef(Reply):
    id: str
    name: str


InvitationOut = reply_model("InvitationOut", service.InvitationRecord, __name__)


class ResponseRefOut(Reply):
    id: str
    survey_id: str
    finished: bool
    ended_at: datetime | None
    created_at: datetime


class HistoryOut(Reply):
    invitations: list[InvitationOut]
    responses: list[ResponseRefOut]


class ContactDetailOut(ContactOut):
    mailing_lists: list[MailingListRef]
    history: HistoryOut


class MailingListCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)


class MailingListOut(Reply):
    id: str
    directory_id: str
    name: str
    member_count: int = 0
    created_at: datetime


class Members(RequestBody):
    contact_ids: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=service.MAX_MEMBERS_PER_REQUEST
    )


class MembersChanged(Reply):
    added: int | None = None
    removed: int | None = None


class ProblemOut(Reply):
    line: int
    code: str
    message: str


class ImportOut(Reply):
    total: int
    created: int
    updated: int
    failed: int
    problems: list[ProblemOut]
    warnings: list[str]
    mailing_list_id: str | None


# --- directories


@router.get("/directories", response_model=list[DirectoryOut])
def list_directories(actor: ApiActor, db: Db) -> list[Directory]:
    """Your directories (an admin sees everyone's)."""
    return service.list_directories(db, actor)


@router.post("/directories", status_code=201, response_model=DirectoryOut)
def create_directory(body: DirectoryCreate, actor: ApiActor, db: Db) -> Directory:
    """A new directory; names are unique per owner (409)."""
    return service.create_directory(
        db, actor, body.name,
        frequency_limit=body.frequency_limit, frequency_days=body.frequency_days,
    )  # fmt: skip


@router.get("/directories/{directory_id}", response_model=DirectoryOut)
def get_directory(directory_id: str, actor: ApiActor, db: Db) -> Directory:
    return service.get_directory(db, actor, directory_id)


@router.patch("/directories/{directory_id}", response_model=DirectoryOut)
def update_directory(
    directory_id: str, body: DirectoryChanges, actor: ApiActor, db: Db
) -> Directory:
    """Rename, or set the frequency rule: at most `frequency_limit` invitations per contact per
    `frequency_days` days (both null: no rule)."""
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        del changes["name"]
    return service.update_directory(db, actor, directory_id, changes)


@router.delete("/directories/{directory_id}", status_code=204)
def delete_directory(directory_id: str, actor: ApiActor, db: Db) -> Response:
    """Delete the directory with its contacts, mailing lists and distributions."""
    service.delete_directory(db, actor, directory_id)
    return Response(status_code=204)


# --- contacts


@router.get("/directories/{directory_id}/contacts", response_model=PageOut[ContactOut])
def list_contacts(
    directory_id: str,
    actor: ApiActor,
    db: Db,
    email_contains: Annotated[str | None, Query(max_length=320)] = None,
    mailing_list_id: Annotated[str | None, Query(max_length=40)] = None,
    opted_out: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> PageOut[ContactOut]:
    page = service.list_contacts(
        db, actor, directory_id, limit=limit, cursor=cursor, email_contains=email_contains,
        mailing_list_id=mailing_list_id, opted_out=opted_out,
    )  # fmt: skip
    return PageOut[ContactOut](
        items=[ContactOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.post("/directories/{directory_id}/contacts", status_code=201, response_model=ContactOut)
def create_contact(directory_id: str, body: ContactCreate, actor: ApiActor, db: Db) -> Contact:
    """A new contact; an email the directory has already is a 409."""
    fields = ContactFields(**body.model_dump() | {"external_ref": body.external_ref or ""})
    return service.create_contact(db, actor, directory_id, fields)


@router.post(
    "/directories/{directory_id}/contacts/import",
    response_model=ImportOut,
    summary="Import contacts from a CSV or JSON-lines body",
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "required": True,
        }
    },
)
async def import_contacts(
    directory_id: str,
    request: Request,
    actor: ApiActor,
    db: Db,
    format: Literal["csv", "jsonl"] | None = None,
    match_on: Literal["email", "external_ref"] = "email",
    mailing_list: Annotated[str | None, Query(max_length=100)] = None,
) -> ImportOut:
    """The body is CSV (header row: email, first_name, last_name, phone, language,
    external_ref; other columns become embedded data) or JSON lines, told by `Content-Type`
    (`text/csv`, `application/x-ndjson`) or `?format=`. Rows are upserted by email (or by
    external_ref with `match_on=external_ref`); bad rows come back with their line numbers."""
    fmt = _format_of(request.headers.get("content-type", ""), format)
    body = await request.body()
    # Bytes that are not UTF-8 reach the parser as lone surrogates: their rows are refused.
    text = io.TextIOWrapper(
        io.BytesIO(body), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    result = await run_in_threadpool(
        service.import_contacts, db, actor, directory_id, text, fmt,
        match_on=match_on, mailing_list=mailing_list,
    )  # fmt: skip
    return ImportOut.model_validate(result)


def _format_of(content_type: str, asked: str | None) -> str:
    """The body's format: `?format=` when given, else the Content-Type's. The two must agree:
    a body sent as one format and read as the other would import garbage."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    fmt = _FORMATS_BY_MEDIA_TYPE.get(media_type)
    if asked is not None:
        if fmt is None and media_type not in _UNTYPED_MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"?format={asked} was asked for, but the body is sent as {media_type[:60]!r}: "
                "send it as text/csv or application/x-ndjson, or as text/plain."
            )
        if fmt is not None and fmt != asked:
            raise UnsupportedMediaType(
                f"?format={asked} was asked for, but the body is sent as {media_type} "
                f"({fmt}): make the two agree."
            )
        return asked
    if fmt is None:
        raise UnsupportedMediaType(
            f"Send the contacts as text/csv or application/x-ndjson (JSON lines), or say which "
            f"with ?format=csv or ?format=jsonl; got {media_type[:60] or 'no Content-Type'!r}.",
        )
    return fmt


@router.get("/contacts/{contact_id}", response_model=ContactDetailOut)
def get_contact(contact_id: str, actor: ApiActor, db: Db) -> ContactDetailOut:
    """The contact, its mailing lists and its history: invitations and responses, newest
    first (at most 100 of each)."""
    details = service.contact_details(db, actor, contact_id)
    return ContactDetailOut(
        **ContactOut.model_validate(details.contact).model_dump(),
        mailing_lists=[MailingListRef.model_validate(m) for m in details.mailing_lists],
        history=HistoryOut(
            invitations=[InvitationOut.model_validate(i) for i in details.invitations],
            responses=[ResponseRefOut.model_validate(r) for r in details.responses],
        ),
    )


@router.patch("/contacts/{contact_id}", response_model=ContactOut)
def update_contact(contact_id: str, body: ContactChanges, actor: ApiActor, db: Db) -> Contact:
    return service.update_contact(db, actor, contact_id, body.model_dump(exclude_unset=True))


@router.delete("/contacts/{contact_id}", status_code=204)
def delete_contact(contact_id: str, actor: ApiActor, db: Db) -> Response:
    service.delete_contact(db, actor, contact_id)
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/opt-out", response_model=ContactOut)
def opt_out(contact_id: str, actor: ApiActor, db: Db) -> Contact:
    """The contact gets no more invitations (doing it again changes nothing)."""
    return service.set_contact_opt_out(db, actor, contact_id, True)


@router.delete("/contacts/{contact_id}/opt-out", response_model=ContactOut)
def opt_back_in(contact_id: str, actor: ApiActor, db: Db) -> Contact:
    """Undo an opt-out (only with the contact's consent)."""
    return service.set_contact_opt_out(db, actor, contact_id, False)


# --- mailing lists


@router.get("/directories/{directory_id}/mailing-lists", response_model=list[MailingListOut])
def list_mailing_lists(directory_id: str, actor: ApiActor, db: Db) -> list[Any]:
    return service.list_mailing_lists(db, actor, directory_id)


@router.post(
    "/directories/{directory_id}/mailing-lists", status_code=201, response_model=MailingListOut
)
def create_mailing_list(
    directory_id: str, body: MailingListCreate, actor: ApiActor, db: Db
) -> MailingList:
    """A new mailing list; names are unique per directory (409)."""
    return service.create_mailing_list(db, actor, directory_id, body.name)


@router.delete("/mailing-lists/{mailing_list_id}", status_code=204)
def delete_mailing_list(mailing_list_id: str, actor: ApiActor, db: Db) -> Response:
    """Delete the list; its contacts stay in the directory."""
    service.delete_mailing_list(db, actor, mailing_list_id)
    return Response(status_code=204)


@router.post(
    "/mailing-lists/{mailing_list_id}/members",
    response_model=MembersChanged,
    response_model_exclude_none=True,
)
def add_members(mailing_list_id: str, body: Members, actor: ApiActor, db: Db) -> MembersChanged:
    """Put contacts of the list's directory on it (those already on it are left as they are)."""
    return MembersChanged(
        added=service.add_list_members(db, actor, mailing_list_id, body.contact_ids)
    )


@router.delete(
    "/mailing-lists/{mailing_list_id}/members",
    response_model=MembersChanged,
    response_model_exclude_none=True,
)
def remove_members(mailing_list_id: str, body: Members, actor: ApiActor, db: Db) -> MembersChanged:
    """Take contacts off the list (they stay in the directory)."""
    return MembersChanged(
        removed=service.remove_list_members(db, actor, mailing_list_id, body.contact_ids)
    )
