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

import random
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import PersonalLink, Response
from cxloop.db.uow import Database
from cxloop.domain.answers import (
    AnswerProblem,
    shown_questions,
    text_key,
    validate_page,
    validate_response,
    visible_answers,
)
from cxloop.domain.piped_text import PipedTextContext, render
from cxloop.domain.signed_links import is_signed
from cxloop.domain.survey_content import (
    MAX_TEXT,
    ChoiceQuestion,
    FlowRandomizer,
    MatrixQuestion,
    SurveyContent,
    flow_fields,
    settable_embedded_data,
)
from cxloop.domain.survey_flow import (
    SCREENED_OUT_FIELD,
    Chooser,
    Route,
    choose_evenly,
    next_route_page,
    parse_assignment,
    previous_route_page,
    render_url,
    route,
    routed_content,
    shown_route_pages,
)
from cxloop.errors import Conflict, Forbidden, NotFound
from cxloop.services.access import SurveyAccess
from cxloop.services.personal_links import find_link, get_link
from cxloop.services.responses.errors import check_accepting
from cxloop.services.responses.plan import ResponsePlan, duration
from cxloop.services.signed_links import RESERVED_PARAMS, check_signed_link
from cxloop.services.survey_content import SurveyRef, content_for, survey_ref

log = structlog.get_logger(__name__)

Action = Literal["next", "back"]


class AnonymousLinkOff(Forbidden):
    """The survey's anonymous link is off: it takes responses only through personal or signed
    links."""

    code = "anonymous_link_off"

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
    # Makes the flow's random numbers (${rand://...} in embedded data) the same on every page.
    seed: str = ""


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
    route: Route | None = None
    # Where the page stands on the route: its position among the pages shown, and their count.
    position: int = 1
    total: int = 1
    has_previous: bool = False
    is_last: bool = True
    # At the end: the message to show, or the address to send the respondent to.
    end_message: str = ""
    redirect_url: str | None = None
    screened_out: bool = False

    @property
    def title(self) -> str:
        """The heading respondents see: the survey's title option, else its name."""
        title = self.content.options.title
        return self.survey_name if title is None else title


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
        state = RespondentState(
            survey_id=survey_id, started_at=utcnow(), seed=secrets.token_urlsafe(12)
        )
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
        state, way = _walk(uow.session, survey, content, state, answers)
        return _screen(survey, content, state, answers, next_route_page(content, way, answers), way)


def submit_page(
    db: Database,
    state: RespondentState,
    page: int,
    page_answers: Mapping[str, Any] | Callable[[SurveyContent], Mapping[str, Any]],
    action: Action = "next",
    shown_before: Iterable[str] | None = None,
) -> Screen:
    """Save one page's answers and say what comes next.

    `page_answers` are the page's answers, or a function that reads them given the content
    (the web form needs the question types to read its fields).

    `shown_before` are the QIDs the page showed when it was sent. When the answers make more
    of the page's questions apply (same-page display logic), the page is shown again with them,
    without problems and without saving, so the respondent can answer the follow-up.

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
        state, way = _walk(session, survey, content, state, answers, submitted=page)
        if page not in way.pages:
            # A page that does not exist or is not on the respondent's way (an edited survey,
            # a doctored form): start over.
            first = next_route_page(content, way, answers)
            return _screen(survey, content, state, answers, first, way)
        if action == "next" and shown_before is not None:
            now_shown = {q.qid for q in shown_questions(content, page, answers)}
            if now_shown - set(shown_before):
                return _screen(survey, content, state, answers, page, way)
        problems = validate_page(content, page, answers)
        if action == "back" and not content.options.back_button:
            # The survey has no Back button: a form that sends "back" anyway stays here.
            return _screen(survey, content, state, answers, page, way)
        if action == "back":
            invalid = {p.qid for p in problems if p.code != "required"}
            answers = {k: v for k, v in answers.items() if _qid_of(k) not in invalid}
            response = _save(session, survey, content, state, link, response, answers, way)
            uow.commit()
            state = replace(state, response_id=response.id if response else None)
            target = previous_route_page(content, way, answers, page) or page
            return _screen(survey, content, state, answers, target, way)
        if problems:
            return _screen(survey, content, state, answers, page, way, problems=problems)
        target = next_route_page(content, way, answers, after=page)
        finishing = target is None
        if finishing:
            # Pages may have been skipped with a doctored form: check the response as a whole
            # (only the questions the flow shows this respondent).
            shown = routed_content(content, way)
            remaining = validate_response(shown, visible_answers(shown, answers))
            if remaining:
                target = _first_page_with(content, remaining) or page
                finishing = False
                problems = [p for p in remaining if _page_of(content, p.qid) == target]
        response = _save(session, survey, content, state, link, response, answers, way, create=True)
        assert response is not None
        state = replace(state, response_id=response.id)
        if finishing:
            _finish(session, response, link, screened_out=bool(way.end and way.end.screened_out))
            uow.ledger.record_response_events(uow, [response], "created")
        uow.commit()
        return _screen(
            survey, content, state, answers, target, way, finished=finishing, problems=problems
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
    way: Route,
    *,
    finished: bool = False,
    problems: list[AnswerProblem] | None = None,
) -> Screen:
    shown = shown_route_pages(content, way, answers)
    position = shown.index(page) + 1 if page in shown else 1
    end_message, redirect_url = "", None
    if finished:
        end_message, redirect_url = _ending(survey, content, state, answers, way)
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
        route=way,
        position=position,
        total=max(len(shown), position),
        has_previous=page is not None
        and content.options.back_button
        and previous_route_page(content, way, answers, page) is not None,
        is_last=page is None
        or (not way.pending and next_route_page(content, way, answers, after=page) is None),
        end_message=end_message,
        redirect_url=redirect_url,
        screened_out=bool(finished and way.end and way.end.screened_out),
    )


def _ending(
    survey: SurveyRef,
    content: SurveyContent,
    state: RespondentState,
    answers: Mapping[str, Any],
    way: Route,
) -> tuple[str, str | None]:
    """The end's message and redirect address, piped text filled in: the flow's end-of-survey
    element where the walk stopped, else the survey options' end."""
    if way.end is not None and (way.end.message or way.end.redirect_url):
        message, url = way.end.message, way.end.redirect_url
    else:
        message, url = content.options.end_message, content.options.end_redirect_url
    context = PipedTextContext(
        survey_content=content,
        answers=answers,
        embedded_data=state.embedded_data,
        metadata={"ResponseID": state.response_id or "", "SurveyID": survey.id},
        now=utcnow(),
    )
    redirect = render_url(url, context) if url else None
    return (render(message, context, html=True) if message else ""), redirect


def _walk(
    session: Session,
    survey: SurveyRef,
    content: SurveyContent,
    state: RespondentState,
    answers: Mapping[str, Any],
    submitted: int | None = None,
) -> tuple[RespondentState, Route]:
    """The respondent's route through the flow; the embedded data it set joins the state."""
    way = route(
        content, answers, state.embedded_data, _chooser(session, survey.id), state.seed,
        lazy=True, submitted=submitted,
    )  # fmt: skip
    if way.assigned:
        log.info("respondent.randomized", survey_id=survey.id, assigned=way.assigned)
    if way.data:
        state = replace(state, embedded_data={**state.embedded_data, **way.data})
    return state, way


def _chooser(session: Session, survey_id: str) -> Chooser:
    """Balanced assignment: how often each element was presented is counted from the stored
    responses' assignments (a respondent who never submits a page is not counted)."""

    def choose(randomizer: FlowRandomizer, keys: list[str]) -> list[str]:
        counts: dict[str, int] = {}
        if randomizer.even:
            stored = Response.embedded_data[randomizer.id].as_string()
            rows = session.execute(
                select(stored, func.count())
                .where(Response.survey_id == survey_id, stored.is_not(None))
                .group_by(stored)
            )
            for value, count in rows:
                for key in parse_assignment(value):
                    counts[key] = counts.get(key, 0) + count
        return choose_evenly(randomizer, keys, counts, random.SystemRandom())

    return choose


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
        if isinstance(question, ChoiceQuestion):
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
    way: Route,
    *,
    create: bool = False,
) -> Response | None:
    values = visible_answers(routed_content(content, way), answers)
    now = utcnow()
    if response is None:
        if not values and not create:
            return None  # going back from an empty first page stores nothing
        plan = ResponsePlan(survey.id, content, survey.language)
        response = Response(
            **plan.new_row(
                values=values,
                embedded_data=plan.with_defaults(_allowed_for(content, state)),
                started_at=state.started_at,
                ended_at=None,
                finished=False,
                source="web",
                channel=_channel_of(state, link),
                distribution_id=link.distribution_id if link else None,
                contact_id=link.contact_id if link else None,
                now=now,
            )
        )
        session.add(response)
        session.flush()
        if link is not None:
            link.response_id = response.id
    else:
        response.values = values
        response.updated_at = now
        flow_data = {k: v for k, v in way.data.items() if response.embedded_data.get(k) != v}
        if flow_data:  # a new assignment or value since the response was created
            response.embedded_data = {**(response.embedded_data or {}), **flow_data}
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
    # What the flow set (randomizer assignments, set values) was set by the server.
    for name in flow_fields(content.flow or []):
        if name in state.embedded_data:
            kept[name] = state.embedded_data[name]
    return kept


def _finish(
    session: Session, response: Response, link: PersonalLink | None, *, screened_out: bool
) -> None:
    now = utcnow()
    if screened_out:  # recorded as the reference product does: finished, flagged "Screened"
        response.embedded_data = {**(response.embedded_data or {}), SCREENED_OUT_FIELD: "Screened"}
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
