"""/api/v1/surveys/{id}/signed-links: survey links with signed embedded data, and the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, Field

from cxloop.services import signed_links
from cxloop.web.api.schemas import Reply, RequestBody
from cxloop.web.deps import ApiActor, AppContainer

router = APIRouter(prefix="/api/v1/surveys/{survey_id}/signed-links", tags=["surveys"])


class SignedLinkIn(RequestBody):
    embedded_data: dict[str, Any] = Field(
        default_factory=dict,
        description="Declared `query` or `personal_link` fields and their text values",
    )
    # Strict bodies take no date text; these two are read leniently (ISO 8601 with a zone).
    expires_at: AwareDatetime | None = Field(default=None, strict=False)
    expires_in_s: int | None = Field(default=None, description="Seconds from now (max 366 days)")


class SignedLinkOut(Reply):
    url: str
    expires_at: datetime


@router.post(
    "",
    status_code=201,
    response_model=SignedLinkOut,
    summary="A signed survey link carrying embedded data, with an expiry (editors and up)",
)
def create_signed_link(
    survey_id: str, body: SignedLinkIn, actor: ApiActor, container: AppContainer
) -> SignedLinkOut:
    link = signed_links.create_signed_link(
        container.db, actor, survey_id, body.embedded_data,
        expires_at=body.expires_at, expires_in_s=body.expires_in_s,
        base_url=container.settings.base_url,
    )  # fmt: skip
    return SignedLinkOut(url=link.url, expires_at=link.expires_at)


@router.post(
    "/rotate-key",
    status_code=204,
    summary="Replace the survey's signing key: every signed link made before stops working",
)
def rotate_signing_key(survey_id: str, actor: ApiActor, container: AppContainer) -> Response:
    signed_links.rotate_signing_key(container.db, actor, survey_id)
    return Response(status_code=204)
