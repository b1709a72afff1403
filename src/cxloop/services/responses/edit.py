"""One stored response: read it, change it (checked as a whole, like a new one), delete it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.uow import Database
from cxloop.errors import NotFound
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.responses.errors import invalid_response
from cxloop.services.responses.plan import (
    ResponseChanges,
    ResponseDocument,
    ResponsePlan,
    duration,
    parse_document,
)
from cxloop.services.survey_content import content_of

# Longer ids are no response's: refused without a look in the database.
MAX_RESPONSE_ID_LENGTH = 40


def get_response(db: Database, actor: Actor, survey_id: str, response_id: str) -> Response:
    """One response (viewers and up)."""
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        return _response_in(uow.session, survey_id, response_id)


def update_response(
    db: Database, actor: Actor, survey_id: str, response_id: str, changes: Any
) -> Response:
    """Change answers, embedded data, finished or language (editors and up).

    The result is checked as a whole, like a new response; a "updated" event runs.
    """
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        response = _response_in(uow.session, survey_id, response_id)
        patch = parse_document(ResponseChanges, changes)
        plan = ResponsePlan(survey.id, content_of(survey), survey.language)
        values = _merge(response.values, patch.values)
        embedded = _merge(response.embedded_data, patch.embedded_data)
        finished = response.finished if patch.finished is None else patch.finished
        changed = ResponseDocument.model_construct(
            values=values, embedded_data=embedded, finished=finished
        )
        problems = plan.problems(changed)
        if problems:
            raise invalid_response(problems)
        now = utcnow()
        response.values = plan.visible_answers(values)
        response.embedded_data = embedded
        if finished and not response.finished and response.ended_at is None:
            response.ended_at = now
            response.duration_s = duration(response.started_at, now)
        response.finished = finished
        if patch.language is not None:
            response.language = patch.language
        response.updated_at = now
        uow.session.flush()
        audit.record(
            uow.session, actor.id, "response.update", "response", response.id,
            survey_id=survey_id, changed=sorted(patch.model_dump(exclude_unset=True)),
        )  # fmt: skip
        uow.ledger.record_response_events(uow, [response], "updated")
        uow.commit()
    return response


def delete_response(db: Database, actor: Actor, survey_id: str, response_id: str) -> None:
    """Delete one response for good (editors and up)."""
    with db.uow() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        response = _response_in(uow.session, survey_id, response_id)
        audit.record(
            uow.session, actor.id, "response.delete", "response", response.id, survey_id=survey_id
        )
        uow.session.delete(response)
        uow.commit()


def _merge(current: Mapping[str, Any] | None, changes: Mapping[str, Any] | None) -> dict:
    merged = dict(current or {})
    for key, value in (changes or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _response_in(session: Session, survey_id: str, response_id: str) -> Response:
    response = (
        session.get(Response, response_id) if len(response_id) <= MAX_RESPONSE_ID_LENGTH else None
    )
    if response is None or response.survey_id != survey_id:
        raise NotFound(f"No response {response_id!r} in survey {survey_id!r}.", subject="response")
    return response
