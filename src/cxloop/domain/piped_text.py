"""Piped text: ``${namespace://path}`` references in question texts, emails and mappings.

The syntax is the reference product's, so its users feel at home. Path parts are separated by
``/`` and may be URL-encoded (``${e://Field/Team%20Member}``, ``m%2Fd%2FY``).

==========  ===================================================================================
namespace   references
==========  ===================================================================================
``q``       ``${q://QID1/QuestionText}``, ``${q://QID1/ChoiceGroup/SelectedChoices}`` (choice
            texts, comma-joined; the number for NPS and rating),
            ``${q://QID1/ChoiceGroup/SelectedChoicesRecode}`` (also without ``ChoiceGroup/``),
            ``${q://QID1/ChoiceGroup/UnselectedChoices}``, ``${q://QID1/SelectedChoicesCount}``,
            ``${q://QID1/ChoiceGroup/SelectedChoicesTextEntry}``,
            ``${q://QID2/ChoiceTextEntryValue}`` (the text typed), ``${q://QID1/ChoiceTextEntryValue/4}``
            (text typed into choice 4's box), ``${q://QID4/ChoiceNumericEntryValue/1}`` (the number
            of an NPS, rating or number question; the choice part is kept for imported sliders);
            matrix: ``${q://QID5/ChoiceGroup/SelectedAnswers/2}`` (scale text chosen in row 2),
            ``${q://QID5/SelectedAnswerRecode/2}`` (its recode),
            ``${q://QID5/SelectedChoicesForAnswer/4}`` (rows answered with scale point 4)
``e``       ``${e://Field/CaseId}``: embedded data (its declared default when unset) and the
            response's own fields: ResponseID, SurveyID, StartDate, EndDate, RecordedDate,
            Finished, Duration, Q_TotalDuration, Q_URL, RecipientEmail, RecipientFirstName,
            RecipientLastName, ExternalDataReference, DistributionChannel, UserLanguage
``rm``      ``${rm://Field/ResponseID}``: the response's own fields only (workflows)
``m``       ``${m://FirstName}``: the contact the survey was sent to: FirstName, LastName, Email,
            ExternalDataReference, Language
``l``       ``${l://SurveyLink}``, ``${l://SurveyLink?d=Take%20the%20survey}``, ``${l://SurveyURL}``,
            ``${l://OptOutLink?d=Unsubscribe}``; in HTML, ``...Link`` renders an ``<a>`` whose
            text is ``d`` (or the address), ``...URL`` the bare address
``date``    ``${date://CurrentDate/SL}``, ``${date://CurrentTime/MS}``,
            ``${date://OtherDate/Y-m-d/-1 day}``; see ``DATE_PRESETS`` and ``format_date``
``event``   ``${event://Field/CaseNumber}``: a field of the Salesforce outbound message
``task``    ``${task://TASK_ID/Id}``: an output of an earlier task of the workflow
==========  ===================================================================================

Rendering never raises: whatever cannot be resolved (an unanswered or hidden question, a missing
field, a malformed reference's value) renders as an empty string, and a malformed reference
stays in the text as written. Values are inserted as they are and never parsed again, so an
answer holding ``${...}`` stays literal. With ``html=True`` the inserted values are
HTML-escaped (the template itself is taken as HTML and left alone).
"""

from __future__ import annotations

import calendar
import html as html_lib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from cxloop.domain.answers import clean_value, text_key, visible_answers
from cxloop.domain.survey_content import (
    ChoiceQuestion,
    MatrixQuestion,
    Question,
    ScaleQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    TextEntryQuestion,
)

NAMESPACES = frozenset({"q", "e", "rm", "m", "l", "date", "event", "task"})
# The reference product's namespaces that cxloop does not provide (yet).
UNSUPPORTED_NAMESPACES = MappingProxyType(
    {
        "rand": "random numbers",
        "gr": "scoring",
        "lm": "loop and merge",
        "loc": "GeoIP location",
        "tm": "unknown",
    }
)
METADATA_FIELDS = frozenset(
    {
        "ResponseID",
        "SurveyID",
        "StartDate",
        "EndDate",
        "RecordedDate",
        "Finished",
        "Duration",
        "Q_TotalDuration",
        "Q_URL",
        "RecipientEmail",
        "RecipientFirstName",
        "RecipientLastName",
        "ExternalDataReference",
        "DistributionChannel",
        "UserLanguage",
    }
)
RECIPIENT_FIELDS = frozenset(
    {"FirstName", "LastName", "Email", "ExternalDataReference", "Language"}
)
_RECIPIENT_ALIASES = MappingProxyType(
    {
        "RecipientEmail": "Email",
        "RecipientFirstName": "FirstName",
        "RecipientLastName": "LastName",
        "ExternalDataReference": "ExternalDataReference",
    }
)
LINKS = frozenset({"SurveyLink", "SurveyURL", "OptOutLink", "OptOutURL"})

# Our reading of the reference's date presets, as format_date() formats.
DATE_PRESETS = MappingProxyType(
    {
        "SL": "m/d/Y",  # 11/28/2024
        "DS": "Y-m-d",  # 2024-11-28
        "PT": "F j, Y",  # November 28, 2024
        "FL": "l, F j, Y",  # Thursday, November 28, 2024
        "SH": "M j, Y",  # Nov 28, 2024
        "DMY": "d/m/Y",  # 28/11/2024
        "ISO": "c",  # 2024-11-28T14:05:09+01:00
        "MS": "H:i:s",  # 14:05:09
        "TS": "g:i:s A",  # 2:05:09 PM
    }
)
_DATE_KINDS = ("CurrentDate", "CurrentTime", "OtherDate")

_QUESTION_SELECTORS = (
    "QuestionText",
    "SelectedChoices",
    "SelectedChoicesRecode",
    "UnselectedChoices",
    "SelectedChoicesCount",
    "SelectedChoicesTextEntry",
    "ChoiceTextEntryValue",
    "ChoiceNumericEntryValue",
    "SelectedAnswers",
    "SelectedAnswerRecode",
    "SelectedChoicesForAnswer",
)
_MAX_PROBLEMS = 500

_REFERENCE_RE = re.compile(r"\$\{([a-z]+)://([^{}\r\n]*)\}")
_REFERENCE_START_RE = re.compile(r"\$\{[a-z]+://")
_OFFSET_RE = re.compile(
    r"^\s*([+-]?)\s*(\d{1,6})\s*(second|minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE
)


# -- segments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Literal text between references."""

    raw: str
    start: int


@dataclass(frozen=True)
class Reference:
    """A well-formed ``${namespace://path}`` reference."""

    raw: str
    start: int
    namespace: str
    path: str
    parts: tuple[str, ...]  # URL-decoded path parts
    link_text: str | None = None  # the ``?d=`` text of a link
    query: str | None = None  # whatever followed ``?`` in a link


@dataclass(frozen=True)
class Malformed:
    """Something that starts like a reference but is not one; it renders as written."""

    raw: str
    start: int
    reason: str


Segment = Text | Reference | Malformed


def parse(template: str) -> list[Segment]:
    """Split a template into literal text, references and malformed references, in order.

    Joining every segment's ``raw`` gives back the template exactly.
    """
    if not isinstance(template, str):
        return []
    segments: list[Segment] = []
    literal_from = position = 0
    length = len(template)
    while (found := template.find("${", position)) >= 0:
        match = _REFERENCE_RE.match(template, found)
        if match:
            segment: Segment = _reference(match.group(0), found, match[1], match[2])
            end = match.end()
        else:
            end = found + 2
            while end < length and template[end] not in "{}$\r\n":
                end += 1
            if end < length and template[end] == "}":
                end += 1
            segment = Malformed(template[found:end], found, _malformed_reason(template, found, end))
        if found > literal_from:
            segments.append(Text(template[literal_from:found], literal_from))
        segments.append(segment)
        literal_from = position = end
    if literal_from < length:
        segments.append(Text(template[literal_from:], literal_from))
    return segments


def _reference(raw: str, start: int, namespace: str, path: str) -> Reference:
    link_text = query = None
    if namespace == "l" and "?" in path:
        path, _, query = path.partition("?")
        if query.startswith("d="):
            link_text = unquote(query[2:])
    parts = tuple(unquote(part) for part in path.split("/"))
    return Reference(raw, start, namespace, path, parts, link_text, query)


def _malformed_reason(template: str, start: int, end: int) -> str:
    unclosed = end == len(template) or template[end - 1] != "}"
    if _REFERENCE_START_RE.match(template, start) and unclosed:
        return "this reference is not closed with '}' (or holds a '{', '$' or line break)"
    return "this is not piped text, which looks like ${q://QID1/ChoiceGroup/SelectedChoices}"


# -- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipedTextContext:
    """Everything piped text may draw on. Pure data: the caller reads the clock, not we."""

    survey_content: SurveyContent | None = None
    answers: Mapping[str, Any] = field(default_factory=dict)
    embedded_data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # ResponseID, StartDate, ...
    recipient: Mapping[str, Any] = field(default_factory=dict)  # FirstName, Email, ...
    links: Mapping[str, str] = field(default_factory=dict)  # SurveyLink, OptOutLink, ...
    event_fields: Mapping[str, Any] = field(default_factory=dict)
    task_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    now: datetime | None = None


def render(template: str, context: PipedTextContext, *, html: bool = False) -> str:
    """Replace every reference in ``template`` with its value; never raises.

    With ``html=True`` values are HTML-escaped and links become ``<a>`` elements.
    """
    if not isinstance(template, str):
        return ""
    if "${" not in template:
        return template
    return PipedTextRenderer(context, html=html).text(template)


def render_value(template: str, context: PipedTextContext) -> Any:
    """Like `render`, but a template that is exactly one reference gives its raw value.

    A multiple-choice answer stays a list (so it can become a multi-select picklist `A;B`
    without splitting choice texts on commas), a number stays a number. Never raises.
    """
    if not isinstance(template, str):
        return None
    return PipedTextRenderer(context).value(template)


def _segments(template: str) -> tuple[Segment, ...]:
    """`parse`, remembered for short templates: the same ones (a workflow's mappings, an
    email's subject) are rendered for every response, and segments are immutable. Long ones
    (mail bodies, question texts) are parsed each time, so the cache stays small."""
    if len(template) > _CACHED_TEMPLATE_CHARS:
        return tuple(parse(template))
    return _cached_segments(template)


_CACHED_TEMPLATE_CHARS = 2000


@lru_cache(maxsize=4096)
def _cached_segments(template: str) -> tuple[Segment, ...]:
    return tuple(parse(template))


class PipedTextRenderer:
    """Renders any number of templates against one context (`render` and `render_value` for
    each of them), doing once what they share: the visible answers, the parsed templates."""

    def __init__(self, context: PipedTextContext, *, html: bool = False) -> None:
        self._renderer = _Renderer(context, html)

    def text(self, template: str) -> str:
        """`render(template, context)`."""
        if not isinstance(template, str):
            return ""
        if "${" not in template:
            return template
        renderer = self._renderer
        out: list[str] = []
        for segment in _segments(template):
            if isinstance(segment, Reference):
                try:
                    out.append(renderer.render(segment))
                except Exception:
                    # A response or an email must never fail over one value we could not make
                    # sense of (odd stored data, a context built by hand): it renders empty.
                    out.append("")
            else:
                out.append(segment.raw)
        return "".join(out)

    def value(self, template: str) -> Any:
        """`render_value(template, context)`."""
        if not isinstance(template, str):
            return None
        if "${" not in template:
            return template
        segments = _segments(template.strip())
        if (
            len(segments) == 1
            and isinstance(segments[0], Reference)
            and segments[0].namespace != "l"
        ):
            try:
                return self._renderer._value(segments[0])
            except Exception:
                return None
        return self.text(template)


class _Renderer:
    def __init__(self, context: PipedTextContext, html: bool) -> None:
        self.context = context if isinstance(context, PipedTextContext) else PipedTextContext()
        self.html = html
        self._answers: Mapping[str, Any] | None = None

    def render(self, ref: Reference) -> str:
        if ref.namespace == "l":
            return self._link(ref)
        value = self._value(ref)
        text = to_text(value)
        return html_lib.escape(text, quote=True) if self.html else text

    def _value(self, ref: Reference) -> Any:
        ctx, parts = self.context, ref.parts
        if ref.namespace == "q":
            return self._question(parts)
        if ref.namespace in ("e", "rm", "event") and len(parts) == 2 and parts[0] == "Field":
            name = parts[1]
            if ref.namespace == "event":
                return _get(ctx.event_fields, name)
            if ref.namespace == "rm":
                return _get(ctx.metadata, name)
            return self._embedded(name)
        if ref.namespace == "m" and len(parts) == 1:
            return _get(ctx.recipient, parts[0])
        if ref.namespace == "date":
            return _date_value(parts, ctx.now)
        if ref.namespace == "task" and len(parts) >= 2:
            value: Any = _get(ctx.task_outputs, parts[0])
            for key in parts[1:]:
                value = _get(value, key)
            return value
        return None

    def _embedded(self, name: str) -> Any:
        ctx = self.context
        value = _get(ctx.metadata, name) if name in METADATA_FIELDS else None
        if value is None:
            value = _get(ctx.embedded_data, name)
        if value is None and name in _RECIPIENT_ALIASES:
            value = _get(ctx.recipient, _RECIPIENT_ALIASES[name])
        if value is None and ctx.survey_content is not None:
            declared = ctx.survey_content.embedded_data_field(name)
            value = declared.default if declared else None
        return value

    def _link(self, ref: Reference) -> str:
        if len(ref.parts) != 1:
            return ""
        name = ref.parts[0]
        links = self.context.links
        url = _get(links, name)
        if url is None and name.endswith("URL"):
            url = _get(links, name.removesuffix("URL") + "Link")
        if url is None and name.endswith("Link"):
            url = _get(links, name.removesuffix("Link") + "URL")
        if not isinstance(url, str):
            return ""
        if not self.html:
            return url
        if not url.lower().startswith(("https://", "http://")):
            return ""  # never put a javascript: or data: address into an href
        address = html_lib.escape(url, quote=True)
        if name.endswith("URL"):
            return address
        label = html_lib.escape(ref.link_text if ref.link_text else url, quote=True)
        return f'<a href="{address}">{label}</a>'

    # -- q:// -----------------------------------------------------------------------------

    def _question(self, parts: tuple[str, ...]) -> Any:
        content = self.context.survey_content
        if content is None or not parts:
            return None
        question = content.question(parts[0])
        if question is None:
            return None
        rest = list(parts[1:])
        if rest and rest[0] == "ChoiceGroup":
            rest = rest[1:]
        if not rest:
            return None
        selector, args = rest[0], rest[1:]
        if selector == "QuestionText":
            return question.plain_text()
        answers = self._visible_answers(content)
        value = clean_value(question, answers.get(question.qid))
        return _question_value(question, selector, args, value, answers)

    def _visible_answers(self, content: SurveyContent) -> Mapping[str, Any]:
        if self._answers is None:
            # Hidden questions pipe nothing, as in the reference product.
            self._answers = visible_answers(content, self.context.answers)
        return self._answers


def _question_value(
    question: Question, selector: str, args: list[str], value: Any, answers: Mapping[str, Any]
) -> Any:
    qid = question.qid
    arg = args[0] if args else None
    if isinstance(question, ScaleQuestion):
        if selector in ("SelectedChoices", "SelectedChoicesRecode", "ChoiceNumericEntryValue"):
            return value
        return None
    if isinstance(question, TextEntryQuestion):
        if selector == "ChoiceTextEntryValue" and arg is None:
            return value
        if selector == "ChoiceNumericEntryValue" and question.validation == "number":
            return value
        return None
    if isinstance(question, ChoiceQuestion):
        if isinstance(question, SingleChoiceQuestion):
            selected = [value] if isinstance(value, str) else []
        else:
            selected = list(value) if isinstance(value, list) else []
        chosen = [c for c in question.choices if c.id in selected]
        if selector == "SelectedChoices":
            return [c.plain_text() for c in chosen]
        if selector == "SelectedChoicesRecode":
            return [c.effective_recode for c in chosen if c.effective_recode is not None]
        if selector == "UnselectedChoices":
            return [c.plain_text() for c in question.choices if c.id not in selected]
        if selector == "SelectedChoicesCount":
            return len(chosen)
        if selector == "SelectedChoicesTextEntry":
            return [answers.get(text_key(qid, c.id)) for c in chosen if c.allow_text_entry]
        if selector == "ChoiceTextEntryValue":
            if arg is not None:
                return answers.get(text_key(qid, arg))
            if len(chosen) == 1 and chosen[0].allow_text_entry:
                return answers.get(text_key(qid, chosen[0].id))
        return None
    if isinstance(question, MatrixQuestion):
        rows = value if isinstance(value, dict) else {}
        if selector in ("SelectedAnswers", "SelectedAnswerRecode") and arg is not None:
            points = _points(question, rows.get(arg))
            if selector == "SelectedAnswers":
                return [p.plain_text() for p in points]
            return [p.effective_recode for p in points if p.effective_recode is not None]
        if selector == "SelectedChoicesForAnswer" and arg is not None:
            return [
                r.plain_text()
                for r in question.rows
                if any(p.id == arg for p in _points(question, rows.get(r.id)))
            ]
        if selector == "ChoiceTextEntryValue" and arg is not None:
            return answers.get(text_key(qid, arg))
    return None


def _points(question: MatrixQuestion, chosen: Any) -> list[Any]:
    ids = [chosen] if isinstance(chosen, str) else chosen if isinstance(chosen, list) else []
    return [p for p in question.scale if p.id in ids]


def _get(mapping: Any, key: str) -> Any:
    if isinstance(mapping, Mapping):
        return mapping.get(key)
    return None


def to_text(value: Any) -> str:
    """How a piped value reads as text: lists comma-joined, flags as 1/0, dates as the
    reference writes them (``2024-11-28 14:05:09``), whole floats without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print: not a value worth piping
            return ""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(text for text in (to_text(v) for v in value) if text)
    return ""  # mappings and other objects have no text form in piped text


# -- dates ------------------------------------------------------------------------------------

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date_value(parts: tuple[str, ...], now: datetime | None) -> str | None:
    if now is None or len(parts) < 2 or parts[0] not in _DATE_KINDS:
        return None
    moment = now
    if parts[0] == "OtherDate":
        if len(parts) != 3:
            return None
        moment = shift_date(now, parts[2])
        if moment is None:
            return None
    elif len(parts) != 2:
        return None
    return format_date(moment, DATE_PRESETS.get(parts[1], parts[1]))


def shift_date(moment: datetime, offset: str) -> datetime | None:
    """``moment`` moved by an offset like ``-1 day``, ``+2 weeks``, ``1 month``; None if unreadable.

    Months and years keep the day of the month where they can (Jan 31 + 1 month = Feb 28/29).
    """
    match = _OFFSET_RE.match(offset)
    if not match:
        return None
    amount = int(match[2]) * (-1 if match[1] == "-" else 1)
    unit = match[3].lower()
    try:
        if unit in ("month", "year"):
            months = moment.month - 1 + amount * (12 if unit == "year" else 1)
            year, month = moment.year + months // 12, months % 12 + 1
            day = min(moment.day, calendar.monthrange(year, month)[1])
            return moment.replace(year=year, month=month, day=day)
        seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}[unit]
        return moment + timedelta(seconds=amount * seconds)
    except (ValueError, OverflowError):
        return None


def format_date(moment: datetime, fmt: str) -> str:
    """Format like PHP's ``date()``, which the reference follows.

    ``d`` 01-31, ``j`` 1-31, ``D`` Mon, ``l`` Monday, ``N`` 1-7, ``w`` 0-6, ``z`` 0-365,
    ``S`` st/nd/rd/th, ``m`` 01-12, ``n`` 1-12, ``F`` January, ``M`` Jan, ``t`` days in month,
    ``Y`` 2024, ``y`` 24, ``L`` leap year 1/0, ``a``/``A`` am/AM, ``g``/``G`` 1-12/0-23,
    ``h``/``H`` 01-12/00-23, ``i`` minutes, ``s`` seconds, ``O`` +0100, ``P`` +01:00, ``T``
    zone name, ``c`` ISO 8601, ``U`` Unix seconds; ``\\`` makes the next character literal;
    anything else is copied.
    """
    out: list[str] = []
    escaped = False
    for char in fmt[:200]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(_date_part(moment, char))
    return "".join(out)


def _date_part(m: datetime, char: str) -> str:
    hour12 = m.hour % 12 or 12
    offset = m.utcoffset()
    if char == "d":
        return f"{m.day:02d}"
    if char == "j":
        return str(m.day)
    if char == "D":
        return _DAYS[m.weekday()][:3]
    if char == "l":
        return _DAYS[m.weekday()]
    if char == "N":
        return str(m.isoweekday())
    if char == "w":
        return str(m.isoweekday() % 7)
    if char == "z":
        return str(m.timetuple().tm_yday - 1)
    if char == "S":
        if m.day in (11, 12, 13):
            return "th"
        return {1: "st", 2: "nd", 3: "rd"}.get(m.day % 10, "th")
    if char == "m":
        return f"{m.month:02d}"
    if char == "n":
        return str(m.month)
    if char == "F":
        return _MONTHS[m.month - 1]
    if char == "M":
        return _MONTHS[m.month - 1][:3]
    if char == "t":
        return str(calendar.monthrange(m.year, m.month)[1])
    if char == "Y":
        return str(m.year)
    if char == "y":
        return f"{m.year % 100:02d}"
    if char == "L":
        return "1" if calendar.isleap(m.year) else "0"
    if char in "aA":
        marker = "am" if m.hour < 12 else "pm"
        return marker if char == "a" else marker.upper()
    if char == "g":
        return str(hour12)
    if char == "G":
        return str(m.hour)
    if char == "h":
        return f"{hour12:02d}"
    if char == "H":
        return f"{m.hour:02d}"
    if char == "i":
        return f"{m.minute:02d}"
    if char == "s":
        return f"{m.second:02d}"
    if char in "OP":
        if offset is None:
            return ""
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        hours, rest = divmod(abs(minutes), 60)
        return f"{sign}{hours:02d}{':' if char == 'P' else ''}{rest:02d}"
    if char == "T":
        return m.tzname() or ""
    if char == "c":
        return m.isoformat(timespec="seconds")
    if char == "U":
        return str(int(m.timestamp()))
    return char


# -- validation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceProblem:
    """A reference that will not render as meant: its text, where it starts, and why."""

    reference: str
    position: int
    message: str


def validate(
    template: str,
    survey_content: SurveyContent | None,
    allowed_namespaces: Iterable[str],
    known_task_ids: Iterable[str] = (),
    known_event_fields: Iterable[str] | None = None,
) -> list[ReferenceProblem]:
    """Check every reference in a template against the survey and the place it is used.

    ``allowed_namespaces``: the namespaces this place may use (an email to a contact may use
    ``l``; a survey question may not use ``task``). ``known_task_ids``: tasks that run before
    this one. ``known_event_fields``: the outbound message's fields, or None when unknown.
    Without ``survey_content`` question references cannot be checked and are reported.
    """
    if not isinstance(template, str):
        return [ReferenceProblem("", 0, "piped text must be text")]
    checker = _Validator(
        survey_content,
        frozenset(allowed_namespaces),
        frozenset(known_task_ids),
        None if known_event_fields is None else frozenset(known_event_fields),
    )
    problems: list[ReferenceProblem] = []
    for segment in parse(template):
        if isinstance(segment, Text):
            continue
        if isinstance(segment, Malformed):
            message: str | None = segment.reason
        else:
            message = checker.check(segment)
        if message:
            problems.append(ReferenceProblem(segment.raw[:200], segment.start, message))
            if len(problems) >= _MAX_PROBLEMS:
                break
    return problems


class _Validator:
    def __init__(
        self,
        content: SurveyContent | None,
        allowed: frozenset[str],
        task_ids: frozenset[str],
        event_fields: frozenset[str] | None,
    ) -> None:
        self.content = content
        self.allowed = allowed
        self.task_ids = task_ids
        self.event_fields = event_fields

    def check(self, ref: Reference) -> str | None:
        namespace, parts = ref.namespace, ref.parts
        if namespace in UNSUPPORTED_NAMESPACES:
            return (
                f"{namespace}:// piped text ({UNSUPPORTED_NAMESPACES[namespace]}) is not supported"
            )
        if namespace not in NAMESPACES:
            return f"'{namespace}://' is not a piped text namespace; use one of {self._allowed()}"
        if namespace not in self.allowed:
            return f"{namespace}:// references cannot be used here; allowed here: {self._allowed()}"
        if namespace == "q":
            return self._question(parts)
        if namespace in ("e", "rm", "event"):
            if len(parts) != 2 or parts[0] != "Field" or not parts[1]:
                return f"write this as ${{{namespace}://Field/<name>}}"
            return self._field(namespace, parts[1])
        if namespace == "m":
            if len(parts) != 1 or parts[0] not in RECIPIENT_FIELDS:
                return f"use one of {_names(RECIPIENT_FIELDS)} (for example ${{m://FirstName}})"
            return None
        if namespace == "l":
            return self._link(ref)
        if namespace == "date":
            return _date_problem(parts)
        return self._task(parts)

    def _allowed(self) -> str:
        usable = sorted(self.allowed & NAMESPACES)
        return ", ".join(f"{n}://" for n in usable) if usable else "none"

    def _field(self, namespace: str, name: str) -> str | None:
        if namespace == "event":
            if self.event_fields is not None and name not in self.event_fields:
                return f"'{name}' is not a field of this event's outbound message"
            return None
        if name in METADATA_FIELDS:
            return None
        if namespace == "rm":
            return f"'{name}' is not a response field; use one of {_names(METADATA_FIELDS)}"
        if self.content is not None and self.content.embedded_data_field(name) is None:
            return f"embedded data field '{name}' is not declared in this survey"
        return None

    def _link(self, ref: Reference) -> str | None:
        if len(ref.parts) != 1 or ref.parts[0] not in LINKS:
            return f"use one of {_names(LINKS)} (for example ${{l://SurveyLink?d=Take the survey}})"
        if ref.query is not None and ref.link_text is None:
            return "the only option of a link is its text: ?d=<text>"
        return None

    def _task(self, parts: tuple[str, ...]) -> str | None:
        if len(parts) < 2 or not all(parts):
            return "write this as ${task://<task id>/<output field>}, for example ${task://T1/Id}"
        if parts[0] not in self.task_ids:
            return f"task '{parts[0]}' is not an earlier task of this workflow"
        return None

    def _question(self, parts: tuple[str, ...]) -> str | None:
        qid = parts[0] if parts else ""
        if not re.fullmatch(r"QID[1-9][0-9]{0,8}", qid):
            return f"'{qid}' is not a question ID; question IDs look like QID1"
        if self.content is None:
            return f"there is no survey here to look up {qid} in"
        question = self.content.question(qid)
        if question is None:
            return f"{qid} does not exist in this survey"
        rest = list(parts[1:])
        if rest and rest[0] == "ChoiceGroup":
            rest = rest[1:]
        if not rest or rest[0] not in _QUESTION_SELECTORS:
            shown = rest[0] if rest else ""
            return (
                f"'{shown}' is not something cxloop can pipe from a question; use one of "
                + ", ".join(_QUESTION_SELECTORS)
            )
        return _selector_problem(question, rest[0], rest[1:])


def _selector_problem(question: Question, selector: str, args: list[str]) -> str | None:
    qid = question.qid
    kind = question.type.replace("_", " ")
    needs_arg = {
        "SelectedAnswers": "row",
        "SelectedAnswerRecode": "row",
        "SelectedChoicesForAnswer": "scale point",
    }
    if selector in needs_arg and len(args) != 1:
        return f"{selector} needs a {needs_arg[selector]} id: {qid}/{selector}/<id>"
    optional_arg = selector in ("ChoiceTextEntryValue", "ChoiceNumericEntryValue")
    if len(args) > 1 or (args and selector not in needs_arg and not optional_arg):
        return f"too many parts after {selector}"
    arg = args[0] if args else None
    if selector == "QuestionText":
        return None
    if isinstance(question, ScaleQuestion):
        if selector in ("SelectedChoices", "SelectedChoicesRecode", "ChoiceNumericEntryValue"):
            return None
    elif isinstance(question, TextEntryQuestion):
        if selector == "ChoiceTextEntryValue" and arg is None:
            return None
        if selector == "ChoiceNumericEntryValue" and question.validation == "number":
            return None
    elif isinstance(question, ChoiceQuestion):
        if selector == "ChoiceTextEntryValue":
            if arg is None:
                if isinstance(question, SingleChoiceQuestion) and any(
                    c.allow_text_entry for c in question.choices
                ):
                    return None
                return f"name the choice whose text box to pipe: {qid}/ChoiceTextEntryValue/<id>"
            choice = question.choice(arg)
            if choice is None:
                return f"{qid} has no choice '{arg}'"
            return None if choice.allow_text_entry else f"choice '{arg}' of {qid} has no text box"
        if selector not in ("ChoiceNumericEntryValue", *needs_arg):
            return None
    elif isinstance(question, MatrixQuestion):
        if selector in ("SelectedAnswers", "SelectedAnswerRecode", "ChoiceTextEntryValue"):
            if arg is None:
                return f"name the row: {qid}/{selector}/<row id>"
            row = question.row(arg)
            if row is None:
                return f"{qid} has no row '{arg}'"
            if selector == "ChoiceTextEntryValue" and not row.allow_text_entry:
                return f"row '{arg}' of {qid} has no text box"
            return None
        if selector == "SelectedChoicesForAnswer":
            return None if question.scale_point(arg or "") else f"{qid} has no scale point '{arg}'"
    return f"{qid} is a {kind} question; {selector} does not apply to it"


def _date_problem(parts: tuple[str, ...]) -> str | None:
    if not parts or parts[0] not in _DATE_KINDS:
        return "use date://CurrentDate/<format>, date://CurrentTime/<format> or " + (
            "date://OtherDate/<format>/<offset>"
        )
    if len(parts) < 2 or not parts[1]:
        return f"give a format, such as {parts[0]}/SL or {parts[0]}/Y-m-d"
    if parts[0] == "OtherDate":
        if len(parts) != 3:
            return "write this as date://OtherDate/<format>/<offset>, such as OtherDate/SL/-1 day"
        if _OFFSET_RE.match(parts[2]) is None:
            return f"'{parts[2]}' is not an offset such as '-1 day', '+2 weeks' or '+1 month'"
    elif len(parts) != 2:
        return "too many parts; a slash in the format must be written %2F"
    return None


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


# -- the reference --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceEntry:
    """One row of the piped-text reference (docs/piped-text.md is generated from these).

    `applies_to` is a question type for `q://` rows (the example survey's question of that
    type is the one named), else what the row is about. The doc's example output comes from
    rendering `reference` with this module against an example response, so it cannot drift.
    """

    namespace: str
    applies_to: str
    reference: str
    meaning: str


def _q(question_type: str, reference: str, meaning: str) -> ReferenceEntry:
    return ReferenceEntry("q", question_type, reference, meaning)


REFERENCE: tuple[ReferenceEntry, ...] = (
    # q:// -- answers, by question type (`ChoiceGroup/` may be left out everywhere)
    _q("nps", "${q://QID1/QuestionText}", "the question's text, without markup"),
    _q("nps", "${q://QID1/ChoiceGroup/SelectedChoices}", "the score, 0-10"),
    _q("nps", "${q://QID1/ChoiceGroup/SelectedChoicesRecode}", "the score (the same number)"),
    _q("nps", "${q://QID1/ChoiceNumericEntryValue}", "the score as a number"),
    _q("rating", "${q://QID2/QuestionText}", "the question's text"),
    _q("rating", "${q://QID2/ChoiceGroup/SelectedChoices}", "the rating on its scale"),
    _q("rating", "${q://QID2/ChoiceGroup/SelectedChoicesRecode}", "the rating (the same number)"),
    _q("rating", "${q://QID2/ChoiceNumericEntryValue}", "the rating as a number"),
    _q("single_choice", "${q://QID3/QuestionText}", "the question's text"),
    _q("single_choice", "${q://QID3/ChoiceGroup/SelectedChoices}", "the chosen choice's text"),
    _q(
        "single_choice",
        "${q://QID3/ChoiceGroup/SelectedChoicesRecode}",
        "its recode (without one: the choice id when it is a number)",
    ),
    _q("single_choice", "${q://QID3/ChoiceGroup/UnselectedChoices}", "the other choices' texts"),
    _q("single_choice", "${q://QID3/SelectedChoicesCount}", "how many are chosen: 0 or 1"),
    _q(
        "single_choice",
        "${q://QID3/ChoiceGroup/SelectedChoicesTextEntry}",
        "the text typed into the chosen choice's text box",
    ),
    _q(
        "single_choice",
        "${q://QID3/ChoiceTextEntryValue}",
        "the same, when a choice of the question has a text box",
    ),
    _q("single_choice", "${q://QID3/ChoiceTextEntryValue/3}", "the text typed into choice 3's box"),
    _q("multiple_choice", "${q://QID4/QuestionText}", "the question's text"),
    _q(
        "multiple_choice",
        "${q://QID4/ChoiceGroup/SelectedChoices}",
        "the chosen choices' texts, comma-joined (a list in a Salesforce mapping: a "
        "multi-select picklist gets `A;B`)",
    ),
    _q("multiple_choice", "${q://QID4/ChoiceGroup/SelectedChoicesRecode}", "their recodes"),
    _q("multiple_choice", "${q://QID4/ChoiceGroup/UnselectedChoices}", "the choices not chosen"),
    _q("multiple_choice", "${q://QID4/SelectedChoicesCount}", "how many are chosen"),
    _q(
        "multiple_choice",
        "${q://QID4/ChoiceGroup/SelectedChoicesTextEntry}",
        "the texts typed into the chosen choices' boxes",
    ),
    _q(
        "multiple_choice",
        "${q://QID4/ChoiceTextEntryValue/3}",
        "the text typed into choice 3's box",
    ),
    _q("text_entry", "${q://QID5/QuestionText}", "the question's text"),
    _q("text_entry", "${q://QID5/ChoiceTextEntryValue}", "the text the respondent typed"),
    _q(
        "text_entry",
        "${q://QID6/ChoiceNumericEntryValue}",
        "the number typed (a text entry question with `validation: number`)",
    ),
    _q("matrix", "${q://QID7/QuestionText}", "the question's text"),
    _q(
        "matrix",
        "${q://QID7/ChoiceGroup/SelectedAnswers/1}",
        "the scale point chosen in row 1 (its text)",
    ),
    _q("matrix", "${q://QID7/SelectedAnswerRecode/1}", "the recode of the scale point of row 1"),
    _q(
        "matrix",
        "${q://QID7/SelectedChoicesForAnswer/3}",
        "the rows answered with scale point 3 (their texts)",
    ),
    _q("matrix", "${q://QID7/ChoiceTextEntryValue/3}", "the text typed into row 3's box"),
    _q(
        "descriptive",
        "${q://QID8/QuestionText}",
        "the text shown (a descriptive question takes no answer)",
    ),
    # e:// -- embedded data and the response's own fields
    ReferenceEntry(
        "e",
        "embedded data",
        "${e://Field/CaseId}",
        "a declared embedded data field: the response's value, else the field's default",
    ),
    ReferenceEntry("e", "response", "${e://Field/ResponseID}", "the response's id"),
    ReferenceEntry("e", "response", "${e://Field/SurveyID}", "the survey's id"),
    ReferenceEntry("e", "response", "${e://Field/StartDate}", "when the respondent started (UTC)"),
    ReferenceEntry("e", "response", "${e://Field/EndDate}", "when the respondent finished (UTC)"),
    ReferenceEntry("e", "response", "${e://Field/RecordedDate}", "when the response was recorded"),
    ReferenceEntry("e", "response", "${e://Field/Finished}", "1 when finished, else 0"),
    ReferenceEntry("e", "response", "${e://Field/Duration}", "seconds from start to end"),
    ReferenceEntry(
        "e", "response", "${e://Field/Q_TotalDuration}", "the same (the reference's name)"
    ),
    ReferenceEntry("e", "response", "${e://Field/Q_URL}", "the survey page's address"),
    ReferenceEntry("e", "response", "${e://Field/RecipientEmail}", "the invited contact's email"),
    ReferenceEntry("e", "response", "${e://Field/RecipientFirstName}", "the contact's first name"),
    ReferenceEntry("e", "response", "${e://Field/RecipientLastName}", "the contact's last name"),
    ReferenceEntry(
        "e", "response", "${e://Field/ExternalDataReference}", "the contact's external reference"
    ),
    ReferenceEntry(
        "e", "response", "${e://Field/DistributionChannel}", "how it came: anonymous, email, ..."
    ),
    ReferenceEntry("e", "response", "${e://Field/UserLanguage}", "the response's language"),
    ReferenceEntry(
        "rm",
        "response",
        "${rm://Field/ResponseID}",
        "the response's own fields only (any of the `e://` response fields above)",
    ),
    # m:// -- the contact the survey was sent to
    ReferenceEntry("m", "contact", "${m://FirstName}", "the contact's first name"),
    ReferenceEntry("m", "contact", "${m://LastName}", "the contact's last name"),
    ReferenceEntry("m", "contact", "${m://Email}", "the contact's email address"),
    ReferenceEntry(
        "m", "contact", "${m://ExternalDataReference}", "the contact's external reference"
    ),
    ReferenceEntry("m", "contact", "${m://Language}", "the contact's language"),
    # l:// -- links of an invitation
    ReferenceEntry(
        "l",
        "invitation",
        "${l://SurveyLink?d=Take%20the%20survey}",
        "the personal survey link; in HTML an `<a>` whose text is `d`",
    ),
    ReferenceEntry(
        "l", "invitation", "${l://SurveyLink}", "the link; in HTML its text is the address"
    ),
    ReferenceEntry("l", "invitation", "${l://SurveyURL}", "the bare address, also in HTML"),
    ReferenceEntry("l", "invitation", "${l://OptOutLink?d=Unsubscribe}", "the opt-out link"),
    ReferenceEntry("l", "invitation", "${l://OptOutURL}", "the opt-out address"),
    # date:// -- now (when the text is rendered), in a preset or a format of your own
    *(
        ReferenceEntry("date", "date", f"${{date://CurrentDate/{preset}}}", f"preset {preset}")
        for preset in DATE_PRESETS
    ),
    ReferenceEntry("date", "date", "${date://CurrentTime/MS}", "the time now, preset MS"),
    ReferenceEntry(
        "date", "date", "${date://CurrentDate/Y-m-d H:i}", "a format of your own (see below)"
    ),
    ReferenceEntry(
        "date", "date", "${date://CurrentDate/d%2Fm%2FY}", "a slash in a format is written %2F"
    ),
    ReferenceEntry("date", "date", "${date://OtherDate/SL/-1 day}", "yesterday"),
    ReferenceEntry("date", "date", "${date://OtherDate/Y-m-d/+2 weeks}", "in two weeks"),
    ReferenceEntry(
        "date",
        "date",
        "${date://OtherDate/Y-m-d/+1 month}",
        "a month on, keeping the day where it can (Jan 31 + 1 month = Feb 28/29)",
    ),
    # event:// -- the Salesforce outbound message
    ReferenceEntry(
        "event",
        "outbound message",
        "${event://Field/CaseNumber}",
        "a field of the record the outbound message carries (any field it sends)",
    ),
    ReferenceEntry("event", "outbound message", "${event://Field/Id}", "the record's Id"),
    # task:// -- outputs of earlier tasks of the workflow
    ReferenceEntry(
        "task", "salesforce task", "${task://response/Id}", "the Id of the record it wrote"
    ),
    ReferenceEntry(
        "task",
        "salesforce task",
        "${task://response/created}",
        "1 when it created the record, 0 when it updated one",
    ),
    ReferenceEntry("task", "email task", "${task://alert/message_id}", "the Message-ID sent"),
    *(
        ReferenceEntry("task", "directory task", f"${{task://invite/{name}}}", meaning)
        for name, meaning in (
            ("Id", "the contact's id"),
            ("ContactID", "the contact's id"),
            ("Email", "the contact's email"),
            ("DirectoryID", "the directory's id"),
            ("DistributionID", "the distribution's id"),
            ("InvitationID", "the invitation's id"),
            ("MessageID", "the invitation mail's Message-ID"),
        )
    ),
)
