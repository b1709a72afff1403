"""The respondent's side: open a survey link, answer page by page, finish.

No login: the anonymous link is open to anyone while the survey is active, a personal link to
whoever holds its token until it is used or expires. The first page submitted creates the
response with finished=False and every later page saves progress in it, so an abandoned response
stays "incomplete". The response is finished (and its "created" event runs) when the last page
is submitted and the whole response checks out.

The web layer keeps a `RespondentState` for the respondent between pages (signed, so it cannot
be forged) and turns form fields into answers; everything else happens here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import PersonalLink, Response
from cxloop.db.uow import Database
from cxloop.domain.answers import (
    AnswerProblem,
    next_page,
    previous_page,
    text_key,
    validate_page,
    validate_response,
    visible_answers,
)
from cxloop.domain.signed_links import is_signed
from cxloop.domain.survey_content import (
    MAX_TEXT,
    MatrixQuestion,
    MultipleChoiceQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    settable_embedded_data,
)
from cxloop.errors import Conflict, CxloopError, NotFound
from cxloop.services import response_events
from cxloop.services.access import SurveyAccess
from cxloop.services.personal_links import find_link, get_link
from cxloop.services.responses import check_accepting, duration, new_response_id, with_defaults
from cxloop.services.signed_links import RESERVED_PARAMS, check_signed_link
from cxloop.services.survey_content import SurveyRef, content_for, survey_ref

log = structlog.get_logger(__name__)

Action = Literal["next", "back"]


class AnonymousLinkOff(CxloopError):
    """The survey's anonymous link is off: it takes responses only through personal or signed
    links."""

    code = "anonymous_link_off"
    http_status = 403

    def __init__(self) -> None:
        super().__init__(
            "This survey can only be answered through the personal link you were sent."
        )


@dataclass(frozen=True)
class RespondentState:
    """What the respondent's browser carries between pages (signed by the web layer)."""

    survey_id: str
    started_at: datetime
    response_id: str | None = None
    link_id: str | None = None
    embedded_data: dict[str, Any] = field(default_factory=dict)
    channel: str = "anonymous_link"  # one of RESPONSE_CHANNELS (a web link's)


@dataclass(frozen=True)
class Screen:
    """What to show next: a page of questions (with problems, if any) or the end."""

    survey_id: str
    survey_name: str
    language: str
    content: SurveyContent
    state: RespondentState
    answers: dict[str, Any]
    page: int | None  # None: nothing (more) to answer
    finished: bool = False
    problems: list[AnswerProblem] = field(default_factory=list)


def open_survey(
    db: Database,
    survey_id: str,
    *,
    token: str | None = None,
    params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
) -> Screen:
    """The first page of a survey link, and the embedded data the link may set.

    `params` are the link's query parameters (without `t`). Who may set what follows each
    field's source (see `settable_embedded_data`):

    - a personal link (`token`): its own embedded data, and query parameters for `query`
      fields (the link's values win);
    - a signed link (parameters with `_sig`): its values for `query` and `personal_link`
      fields, once the signature and expiry check out (a changed or expired one is refused);
    - the anonymous link: query parameters for `query` fields only, and only while the
      survey's anonymous link is on. Anything else is ignored (and logged by name).

    A personal link whose respondent stopped half-way opens with their answers filled in.
    """
    items = list(params.items()) if isinstance(params, Mapping) else list(params or [])
    with db.reader() as uow:
        survey = _open(uow.session, survey_id)
        content = content_for(uow.session, survey)
        answers: dict[str, Any] = {}
        state = RespondentState(survey_id=survey_id, started_at=utcnow())
        if token is not None:
            link = find_link(uow.session, survey_id, token)
            channel = "personal_link"
            # Query parameters count as on the open link: only `query` fields.
            embedded = _settable(
                content, "anonymous_link", _query_values(items), survey_id, logged_as=channel
            )
            embedded.update(link.embedded_data or {})
            state = replace(state, link_id=link.id)
            in_progress = uow.session.get(Response, link.response_id) if link.response_id else None
            if in_progress is not None and not in_progress.finished:
                answers = dict(in_progress.values or {})
                embedded = dict(in_progress.embedded_data or embedded)
                state = replace(
                    state, response_id=in_progress.id, started_at=in_progress.started_at
                )
        elif is_signed(items):
            channel = "signed_link"
            values = check_signed_link(uow.session, survey_id, items)
            embedded = _settable(content, channel, _query_values(values.items()), survey_id)
        else:
            if not survey.anonymous_link:
                raise AnonymousLinkOff()
            channel = "anonymous_link"
            embedded = _settable(content, channel, _query_values(items), survey_id)
        state = replace(state, embedded_data=embedded, channel=channel)
        return _screen(survey, content, state, answers, next_page(content, answers))


def submit_page(
    db: Database,
    state: RespondentState,
    page: int,
    page_answers: Mapping[str, Any] | Callable[[SurveyContent], Mapping[str, Any]],
    action: Action = "next",
) -> Screen:
    """Save one page's answers and say what comes next.

    `page_answers` are the page's answers, or a function that reads them given the content
    (the web form needs the question types to read its fields).

    "next": a page with problems is shown again with them and nothing is saved; otherwise the
    answers are saved and the next page that shows anything follows, or, after the last one, the
    response is finished. "back": what is valid on the page is kept and the previous page shown.
    """
    with db.uow() as uow:
        session = uow.session
        survey = _open(session, state.survey_id)
        if state.link_id is None and state.channel != "signed_link" and not survey.anonymous_link:
            raise AnonymousLinkOff()  # turned off while the respondent was answering
        content = content_for(session, survey)
        link = get_link(session, state.link_id, for_update=True) if state.link_id else None
        response = _in_progress(session, state, link)
        if response is not None:
            state = replace(state, response_id=response.id)
        given = page_answers(content) if callable(page_answers) else page_answers
        answers = _merge_page(content, page, response.values if response else {}, given)
        if page not in content.page_numbers():
            # A page that does not exist (an edited survey, a doctored form): start over.
            return _screen(survey, content, state, answers, next_page(content, answers))
        problems = validate_page(content, page, answers)
        if action == "back":
            invalid = {p.qid for p in problems if p.code != "required"}
            answers = {k: v for k, v in answers.items() if _qid_of(k) not in invalid}
            response = _save(session, survey, content, state, link, response, answers)
            uow.commit()
            state = replace(state, response_id=response.id if response else None)
            target = previous_page(content, answers, page) or page
            return _screen(survey, content, state, answers, target)
        if problems:
            return _screen(survey, content, state, answers, page, problems=problems)
        target = next_page(content, answers, after=page)
        finishing = target is None
        if finishing:
            # Pages may have been skipped with a doctored form: check the response as a whole.
            remaining = validate_response(content, visible_answers(content, answers))
            if remaining:
                target = _first_page_with(content, remaining) or page
                finishing = False
                problems = [p for p in remaining if _page_of(content, p.qid) == target]
        response = _save(session, survey, content, state, link, response, answers)
        assert response is not None
        state = replace(state, response_id=response.id)
        if finishing:
            _finish(session, response, link)
            response_events.on_response_event(session, response, "created", uow)
        uow.commit()
        return _screen(
            survey, content, state, answers, target, finished=finishing, problems=problems
        )


# -- helpers ---------------------------------------------------------------------------------


def _open(session: Session, survey_id: str) -> SurveyRef:
    if len(survey_id) > 40:
        raise NotFound("There is no survey at this address.", code="survey_not_found")
    survey = survey_ref(session, survey_id, None, SurveyAccess.NONE)
    check_accepting(survey)
    return survey


def _screen(
    survey: SurveyRef,
    content: SurveyContent,
    state: RespondentState,
    answers: dict[str, Any],
    page: int | None,
    *,
    finished: bool = False,
    problems: list[AnswerProblem] | None = None,
) -> Screen:
    return Screen(
        survey_id=survey.id,
        survey_name=survey.name,
        language=survey.language,
        content=content,
        state=state,
        answers=answers,
        page=page,
        finished=finished,
        problems=problems or [],
    )


def _query_values(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as embedded data candidates: text of a sane length; of a repeated name,
    the last one counts (as it always has)."""
    values: dict[str, str] = {}
    for name, value in items:
        if name in RESERVED_PARAMS or not isinstance(value, str) or len(value) > MAX_TEXT:
            continue
        values[name] = value.replace("\x00", "")
    return values


def _settable(
    content: SurveyContent,
    channel: str,
    values: Mapping[str, Any],
    survey_id: str,
    *,
    logged_as: str | None = None,
) -> dict[str, Any]:
    kept, refused = settable_embedded_data(content, channel, values)
    declared = {f.name for f in content.embedded_data}
    ignored = sorted(name for name in refused if name in declared)
    if ignored:
        # Names only: the values are whatever a visitor typed. Someone trying ?CaseId= on the
        # open link shows up here.
        log.info(
            "respondent.embedded_data_ignored", survey_id=survey_id, channel=logged_as or channel,
            fields=[name[:60] for name in ignored[:20]],
        )  # fmt: skip
    return kept


def _in_progress(
    session: Session, state: RespondentState, link: PersonalLink | None
) -> Response | None:
    response_id = state.response_id or (link.response_id if link else None)
    if response_id is None:
        return None
    response = session.scalar(select(Response).where(Response.id == response_id).with_for_update())
    if response is None or response.survey_id != state.survey_id:
        return None  # deleted meanwhile: the respondent carries on in a new response
    if response.finished:
        raise Conflict(
            "You have already submitted this response. Thank you!", code="already_answered"
        )
    return response


def page_keys(content: SurveyContent, page: int) -> set[str]:
    """Every answer key that belongs to a page's questions (QIDs and their text boxes)."""
    keys: set[str] = set()
    for question in content.questions_on_page(page):
        keys.add(question.qid)
        if isinstance(question, SingleChoiceQuestion | MultipleChoiceQuestion):
            keys.update(text_key(question.qid, c.id) for c in question.choices)
        elif isinstance(question, MatrixQuestion):
            keys.update(text_key(question.qid, r.id) for r in question.rows)
    return keys


def _merge_page(
    content: SurveyContent,
    page: int,
    stored: Mapping[str, Any],
    page_answers: Mapping[str, Any],
) -> dict[str, Any]:
    own = page_keys(content, page)
    merged = {k: v for k, v in stored.items() if k not in own}
    merged.update({k: v for k, v in page_answers.items() if k in own})
    return merged


def _save(
    session: Session,
    survey: SurveyRef,
    content: SurveyContent,
    state: RespondentState,
    link: PersonalLink | None,
    response: Response | None,
    answers: dict[str, Any],
) -> Response | None:
    values = visible_answers(content, answers)
    now = utcnow()
    if response is None:
        if not values:
            return None  # going back from an empty first page stores nothing
        response = Response(
            id=new_response_id(),
            survey_id=survey.id,
            values=values,
            embedded_data=with_defaults(content, _allowed_for(content, state)),
            started_at=state.started_at,
            finished=False,
            source="web",
            channel=_channel_of(state, link),
            language=survey.language,
            distribution_id=link.distribution_id if link else None,
            contact_id=link.contact_id if link else None,
            created_at=now,
            updated_at=now,
        )
        session.add(response)
        session.flush()
        if link is not None:
            link.response_id = response.id
    else:
        response.values = values
        response.updated_at = now
    return response


def _channel_of(state: RespondentState, link: PersonalLink | None) -> str:
    if link is not None:
        return "personal_link"
    return "signed_link" if state.channel == "signed_link" else "anonymous_link"


def _allowed_for(content: SurveyContent, state: RespondentState) -> dict[str, Any]:
    """The state's embedded data, checked once more against the fields' sources as they are now
    (the survey may have changed since the first page, or the state predates the rule). A
    personal link's own data was bound by the server and is kept whole."""
    if state.link_id is not None:
        return dict(state.embedded_data)
    channel = "signed_link" if state.channel == "signed_link" else "anonymous_link"
    kept, _ = settable_embedded_data(content, channel, state.embedded_data)
    return kept


def _finish(session: Session, response: Response, link: PersonalLink | None) -> None:
    now = utcnow()
    response.finished = True
    response.ended_at = now
    response.duration_s = duration(response.started_at, now)
    if link is not None:
        link.used_at = now
    session.flush()


def _qid_of(key: str) -> str:
    return key.split("_", 1)[0]


def _page_of(content: SurveyContent, qid: str | None) -> int | None:
    question = content.question(qid) if qid else None
    return question.page if question else None


def _first_page_with(content: SurveyContent, problems: list[AnswerProblem]) -> int | None:
    pages = [p for p in (_page_of(content, problem.qid) for problem in problems) if p is not None]
    return min(pages, default=None)
