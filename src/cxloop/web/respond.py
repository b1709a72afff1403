"""The respondent's pages, `/s/{survey_id}`: plain HTML forms, no JavaScript, no login.

GET shows the first page (`?t=` is a personal link's token; `_exp` and `_sig` make a signed
link; other query parameters may fill embedded data as each field's source allows); each POST
saves one page and shows the next. Between pages the respondent's browser carries a signed
`_state` field (itsdangerous, with the app's secret key) naming the response in progress and
how it came (its channel), so nothing can be forged and no cookie is needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from cxloop.db.base import utcnow
from cxloop.domain.answers import resolve_answer_field, shown_questions, text_box_ids, text_key
from cxloop.domain.conditions import Condition, compare
from cxloop.domain.piped_text import PipedTextContext, render
from cxloop.domain.rich_text import looks_like_html, rich_html, text_to_html
from cxloop.domain.survey_content import (
    ChoiceQuestion,
    DescriptiveQuestion,
    MatrixQuestion,
    MultipleChoiceQuestion,
    NpsQuestion,
    Question,
    RatingQuestion,
    ScaleQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    TextEntryQuestion,
    plain_text,
)
from cxloop.errors import CxloopError, TooManyAttempts
from cxloop.services import respondent, throttle
from cxloop.services.respondent import RespondentState, Screen
from cxloop.web.deps import get_container, get_db

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
router = APIRouter(include_in_schema=False)

STATE_SALT = "cxloop.respondent.v1"
STATE_MAX_AGE_S = 30 * 24 * 3600  # a respondent may leave a tab open for a while
MAX_FORM_FIELDS = 5_000
_HEADERS = MappingProxyType({"Cache-Control": "no-store", "Referrer-Policy": "same-origin"})


# What a respondent is told, per error code: (status, title, message).
_MESSAGES: Mapping[str, tuple[int, str, str]] = MappingProxyType({
    "survey_not_found": (404, "Survey not found", "There is no survey at this address."),
    "survey_not_open": (
        404, "Not open yet", "This survey is not open yet. Please try again later.",
    ),
    "survey_closed": (
        410, "Survey closed", "This survey is closed and no longer takes responses. Thank you!",
    ),
    "link_invalid": (
        404, "Link not valid", "This survey link is not valid. Check that it was copied whole.",
    ),
    "link_expired": (410, "Link expired", "This survey link has expired."),
    "signed_link_invalid": (
        403, "Link not valid",
        "This survey link is not valid: it was changed after it was made, or it was withdrawn. "
        "Ask whoever sent it for a new one.",
    ),
    "anonymous_link_off": (
        403, "Personal link needed",
        "This survey can only be answered through the personal link you were sent.",
    ),
    "already_answered": (
        409, "Already answered", "You have already answered this survey. Thank you!",
    ),
    "state_invalid": (
        400, "Page expired",
        "This page has expired or was changed. Please open the survey link again.",
    ),
    "too_many_submissions": (
        429, "Please wait a moment",
        "Too many answers are arriving right now. Please wait a minute and send this page again.",
    ),
})  # fmt: skip


# -- routes ----------------------------------------------------------------------------------


@router.get("/s/{survey_id}", response_class=HTMLResponse)
async def show_survey(request: Request, survey_id: str) -> Response:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "t"]
    token = request.query_params.get("t")
    try:
        screen = await run_in_threadpool(
            respondent.open_survey, get_db(request), survey_id, token=token, params=params
        )
    except CxloopError as exc:
        return _message(request, exc.code, survey_id)
    return _show(request, screen)


@router.post("/s/{survey_id}", response_class=HTMLResponse)
async def submit_page(request: Request, survey_id: str) -> Response:
    container = get_container(request)
    try:  # limits per client address and per survey (settings), counted in the database
        await run_in_threadpool(
            throttle.Throttle(container.db, container.settings).submission,
            survey_id[:40], throttle.client_address(request.client),
        )  # fmt: skip
    except TooManyAttempts as exc:
        return _message(request, exc.code, survey_id, retry_after_s=exc.retry_after_s)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    state = _load_state(request, _field(form, "_state"))
    page = _page_number(_field(form, "_page"))
    if state is None or state.survey_id != survey_id or page is None:
        return _message(request, "state_invalid", survey_id)
    action = "back" if _field(form, "_action") == "back" else "next"
    # NUL has no business in an answer and no database keeps it in text: it is dropped.
    fields = {
        key: [v.replace("\x00", "") for v in form.getlist(key) if isinstance(v, str)]
        for key in form
    }
    shown_before = _field(form, "_shown").split() if "_shown" in form else None
    try:
        screen = await run_in_threadpool(
            respondent.submit_page, get_db(request), state,
            page, _FormAnswers(page, fields), action, shown_before,
        )  # fmt: skip
    except CxloopError as exc:
        return _message(request, exc.code, survey_id)
    return _show(request, screen)


# -- state -----------------------------------------------------------------------------------


def _serializer(request: Request) -> URLSafeTimedSerializer:
    secret = get_container(request).settings.secret_key
    assert secret is not None
    return URLSafeTimedSerializer(secret.get_secret_value(), salt=STATE_SALT)


def _dump_state(request: Request, state: RespondentState) -> str:
    return _serializer(request).dumps(
        {
            "s": state.survey_id,
            "t": state.started_at.timestamp(),
            "r": state.response_id,
            "l": state.link_id,
            "e": state.embedded_data,
            "c": state.channel,
            "k": state.seed,
        }
    )


def _load_state(request: Request, signed: str) -> RespondentState | None:
    if not signed or len(signed) > 500_000:
        return None
    try:
        raw = _serializer(request).loads(signed, max_age=STATE_MAX_AGE_S)
        return RespondentState(
            survey_id=str(raw["s"]),
            started_at=datetime.fromtimestamp(float(raw["t"]), UTC),
            response_id=raw["r"],
            link_id=raw["l"],
            embedded_data=dict(raw["e"]),
            # A state from before channels were recorded is treated as the anonymous link's;
            # a personal link's is recognised by its link id.
            channel=str(raw.get("c") or "anonymous_link"),
            seed=str(raw.get("k") or ""),
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _page_number(text: str) -> int | None:
    return int(text) if text.isdecimal() and len(text) <= 6 else None


# -- form fields → answers -------------------------------------------------------------------


def matrix_field(qid: str, row_id: str) -> str:
    """The form field of one matrix row (kept apart from the `QID5_1_TEXT` text boxes)."""
    return f"{qid}[{row_id}]"


@dataclass
class _FormAnswers:
    """Turns a page's form fields into answers of the canonical shapes (see domain.answers).

    What does not fit a shape is passed on as it came, so that validation says what is wrong.
    """

    page: int
    fields: Mapping[str, list[str]]

    def __call__(self, content: SurveyContent) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for question in content.questions_on_page(self.page):
            value = self._value(question)
            if value is not None:
                answers[question.qid] = value
            for box in text_box_ids(question):
                text = self._one(text_key(question.qid, box))
                # A browser keeps what was typed into "other" after another choice is picked;
                # that text is dropped rather than reported as a problem.
                if text is not None and _is_picked(value, box):
                    answers[text_key(question.qid, box)] = text
        return answers

    def _all(self, name: str) -> list[str]:
        return [v for v in self.fields.get(name, []) if v.strip()]

    def _one(self, name: str) -> Any:
        values = self._all(name)
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def _value(self, question: Question) -> Any:
        qid = question.qid
        if isinstance(question, ScaleQuestion):
            value = self._one(qid)
            text = value.strip() if isinstance(value, str) else ""
            return int(text) if text.isdecimal() and len(text) <= 6 else value
        if isinstance(question, MultipleChoiceQuestion):
            return self._all(qid) or None
        if isinstance(question, SingleChoiceQuestion | TextEntryQuestion):
            return self._one(qid)
        if isinstance(question, MatrixQuestion):
            rows: dict[str, Any] = {}
            for row in question.rows:
                name = matrix_field(qid, row.id)
                chosen = self._all(name) if question.multiple_answers else self._one(name)
                if chosen:
                    rows[row.id] = chosen
            return rows or None
        return None


def _is_picked(value: Any, box: str) -> bool:
    if isinstance(value, dict):  # a matrix: the row is answered
        return bool(value.get(box))
    return value == box or (isinstance(value, list) and box in value)


# -- rendering -------------------------------------------------------------------------------


@dataclass
class _Option:
    value: str
    text: str
    checked: bool = False
    box: dict[str, str] | None = None  # {"name", "value", "label"} of a text box


@dataclass
class _QuestionView:
    qid: str
    type: str
    text: str
    required: bool = False
    error: str | None = None
    options: list[_Option] = field(default_factory=list)
    value: str = ""
    layout: str = "vertical"
    input_type: str = "text"
    multiline: bool = False
    low_label: str = ""
    high_label: str = ""
    scale_hint: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    multiple: bool = False
    slider: dict[str, Any] = field(default_factory=dict)
    hidden: bool = False
    show_if: str = ""  # the condition the page's script evaluates (JSON), if any


def _show(request: Request, screen: Screen) -> Response:
    if screen.finished:
        if screen.redirect_url:
            # The survey's end sends the respondent on (a panel's completion link).
            return RedirectResponse(screen.redirect_url, status_code=303, headers=_HEADERS)
        return _message(request, "finished", screen.survey_id, screen)
    if screen.page is None:
        return _message(request, "empty", screen.survey_id, screen)
    content, answers, page = screen.content, screen.answers, screen.page
    image_hosts = get_container(request).settings.survey_image_hosts
    pipe = _piper(screen, image_hosts)
    errors: dict[str, list[str]] = {}
    for problem in screen.problems:
        errors.setdefault(problem.qid or "", []).append(problem.message)
    shown = {q.qid for q in shown_questions(content, page, answers)}
    on_page = content.questions_on_page(page)
    questions = []
    for q in on_page:
        view = _view(q, answers, pipe, " ".join(errors.get(q.qid, [])) or None)
        # A question whose display logic looks at this page is on the page, hidden when it
        # does not apply: the page's script shows it at once; without the script the page is
        # shown again with it after "Next".
        live = _live_condition(q, on_page, answers, content)
        if q.qid not in shown and live is None:
            continue
        view.hidden = q.qid not in shown
        view.show_if = json.dumps(live, separators=(",", ":")) if live is not None else ""
        questions.append(view)
    context = {
        "title": screen.title,
        "language": screen.language,
        "survey_id": screen.survey_id,
        "state": _dump_state(request, screen.state),
        "page": page,
        "position": screen.position,
        "total": screen.total,
        "progress_bar": content.options.progress_bar,
        "percent": round(100 * (screen.position - 1) / screen.total) if screen.total else 0,
        "questions": questions,
        "shown": " ".join(q.qid for q in questions if not q.hidden),
        "live": any(q.show_if for q in questions),
        "summary": [
            {"qid": q.qid, "text": _short_text(plain_text(q.text)), "error": q.error}
            for q in questions
            if q.error
        ]
        + [{"qid": "", "text": "", "error": m} for m in errors.get("", [])],
        "has_previous": screen.has_previous,
        "is_last": screen.is_last,
    }
    status = 422 if screen.problems else 200
    return templates.TemplateResponse(
        request, "survey/page.html", context, status_code=status,
        headers=_HEADERS,
    )  # fmt: skip


def _message(
    request: Request,
    code: str,
    survey_id: str,
    screen: Screen | None = None,
    *,
    retry_after_s: int | None = None,
) -> Response:
    if code == "finished":
        status, title, text = 200, "Thank you!", "Your response has been recorded."
        if screen is not None and screen.end_message:
            text = plain_text(screen.end_message)
    elif code == "empty":
        status, title, text = 200, "Nothing to answer", "This survey has no questions yet."
    else:
        status, title, text = _MESSAGES.get(
            code, (400, "Something is not right", "This survey cannot be answered right now.")
        )
    context = {
        "title": title,
        "message": text,
        "language": screen.language if screen else "en",
        "survey_name": screen.title if screen else "",
        "restart": f"/s/{survey_id}" if code == "state_invalid" else None,
    }
    headers = _HEADERS if retry_after_s is None else _HEADERS | {"Retry-After": str(retry_after_s)}
    return templates.TemplateResponse(
        request, "survey/message.html", context, status_code=status, headers=headers
    )


def _piper(screen: Screen, image_hosts: list[str]) -> Any:
    context = PipedTextContext(
        survey_content=screen.content,
        answers=screen.answers,
        embedded_data=screen.state.embedded_data,
        metadata={
            "ResponseID": screen.state.response_id or "",
            "SurveyID": screen.survey_id,
            "StartDate": screen.state.started_at.isoformat(),
            "UserLanguage": screen.language,
        },
        now=utcnow(),
    )

    def pipe(text: str, inline: bool = True) -> Markup:
        # The template is the survey's HTML; values piped into it arrive escaped. The result
        # goes through the sanitiser: only the safe subset of HTML is shown (rich_text).
        if not looks_like_html(text):
            return Markup(text_to_html(render(text, context)))
        return Markup(rich_html(render(text, context, html=True), image_hosts, inline=inline))

    return pipe


def _view(question: Question, answers: Mapping[str, Any], pipe: Any, error: str | None) -> Any:
    qid = question.qid
    value = answers.get(qid)
    view = _QuestionView(
        qid=qid,
        type=question.type,
        text=pipe(question.text, inline=not isinstance(question, DescriptiveQuestion)) or qid,
        required=getattr(question, "required", False),
        error=error,
    )
    if isinstance(question, ScaleQuestion):
        low, high = question.bounds
        view.options = [_Option(str(n), str(n), value == n) for n in range(low, high + 1)]
        if isinstance(question, NpsQuestion):
            view.low_label, view.high_label = "Not at all likely", "Extremely likely"
        else:
            view.low_label, view.high_label = question.low_label, question.high_label
        if view.low_label or view.high_label:
            view.scale_hint = (
                ", ".join(
                    f"{point} means {label}"
                    for point, label in ((low, view.low_label), (high, view.high_label))
                    if label
                )
                + "."
            )
        view.layout = "dropdown" if high - low > 11 else "scale"
        if isinstance(question, RatingQuestion) and question.display == "slider":
            view.layout = "slider"
            view.slider = {
                "min": low,
                "max": high,
                "step": question.step,
                # Without an answer the thumb starts in the middle, as browsers put it.
                "value": value if isinstance(value, int) else (low + high) // 2,
                "ticks": list(range(low, high + 1, question.step))
                if (high - low) // question.step <= 20
                else [],
                "labels": [pipe(label) for label in question.labels]
                or [label for label in (view.low_label, view.high_label) if label],
            }
    elif isinstance(question, ChoiceQuestion):
        selected = value if isinstance(value, list) else [value]
        view.multiple = isinstance(question, MultipleChoiceQuestion)
        view.layout = question.layout
        for choice in question.choices:
            option = _Option(choice.id, pipe(choice.text) or choice.id, choice.id in selected)
            if choice.allow_text_entry:
                key = text_key(qid, choice.id)
                option.box = {
                    "name": key,
                    "value": _text(answers.get(key)),
                    "label": f"{plain_text(option.text)}: please specify",
                }
            view.options.append(option)
    elif isinstance(question, TextEntryQuestion):
        view.value = _text(value)
        if qid not in answers and question.default:
            view.value = plain_text(pipe(question.default))  # prefilled, piped text filled in
        view.multiline = question.multiline
        view.input_type = {"email": "email", "number": "number"}.get(question.validation, "text")
    elif isinstance(question, MatrixQuestion):
        chosen_rows = value if isinstance(value, Mapping) else {}
        view.multiple = question.multiple_answers
        points = [(p.id, pipe(p.text) or p.id) for p in question.scale]
        for row in question.rows:
            chosen = chosen_rows.get(row.id)
            chosen_list = chosen if isinstance(chosen, list) else [chosen]
            key = text_key(qid, row.id)
            view.rows.append(
                {
                    "id": row.id,
                    "name": matrix_field(qid, row.id),
                    "text": pipe(row.text) or row.id,
                    "plain": plain_text(pipe(row.text)) or row.id,
                    "options": [_Option(pid, text, pid in chosen_list) for pid, text in points],
                    "box": {"name": key, "value": _text(answers.get(key))}
                    if row.allow_text_entry
                    else None,
                }
            )
    return view


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _short_text(text: str, limit: int = 80) -> str:
    """A question's text short enough for the error summary's link (a consent text is long)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _live_condition(
    question: Question,
    on_page: list[Question],
    answers: Mapping[str, Any],
    content: SurveyContent,
) -> Any:
    """The question's display logic for the page's script: conditions on a plain answer of a
    question on this page stay as they are; everything else is decided here (true/false).
    None when the logic does not look at this page (or there is none)."""
    if question.show_if is None:
        return None
    here = {q.qid for q in on_page}
    live = False

    def convert(node: Any) -> Any:
        nonlocal live
        if isinstance(node, Condition):
            if node.field in here:
                live = True
                return {"field": node.field, "operator": node.operator, "value": node.value}
            field_qid = node.field.split("/", 1)[0]
            if field_qid in here:
                live = True
                return {"unknown": True}  # a part the script cannot read: the server decides
            value = resolve_answer_field(content, answers, node.field)
            return {"const": compare(value, node.operator, node.value)}
        return {"join": node.join, "conditions": [convert(c) for c in node.conditions]}

    converted = convert(question.show_if)
    return converted if live else None
