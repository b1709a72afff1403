"""Survey content: the questions, their pages and display logic, and the embedded data fields.

The whole content of a survey is one document that round-trips exactly through JSON and YAML::

    format_version: 1
    embedded_data:
      - name: CaseId                      # filled from the personal link (source personal_link)
      - name: Channel
        source: query                     # anyone may set it with ?Channel=... on the link
        default: email
    questions:
      - qid: QID1
        type: nps
        text: How likely are you to recommend us?
        required: true
      - qid: QID2
        type: text_entry
        page: 2                           # page numbers never go down; equal numbers share a page
        text: What should we improve?
        multiline: true
        show_if: {field: QID1, operator: less_or_equal, value: 6}

Question types: ``nps`` (0-10), ``rating`` (``scale_min``..``scale_max``), ``single_choice``,
``multiple_choice``, ``text_entry`` (single or multi line; validation none, email or number),
``matrix`` (rows x scale points, one or several scale points per row) and ``descriptive`` (text,
no answer). Question and choice texts are kept as written (they may hold HTML from an import);
``plain_text()`` gives the text a person reads, and the web layer escapes whatever it shows.

Display logic (``show_if``) is a condition tree from :mod:`cxloop.domain.conditions` whose fields
name answers to questions on **earlier pages** or **above it on its own page** (same-page logic:
the page is shown again with the follow-up when the answer changes it, or at once with the page's
small script):

=========================  ==================================================================
``QID1``                   the answer itself (see :mod:`cxloop.domain.answers` for its shape):
                           a number, a choice id, a list of choice ids or the text typed
``QID1/recode``            recode of the selected choice (a list for multiple choice); the
                           number itself for NPS and rating
``QID1/text/4``            the text typed into choice 4's "other, please specify" box
``QID5/row/2``             matrix: the scale point id chosen in row 2 (a list if several)
``QID5/row/2/recode``      matrix: the recode of that scale point
=========================  ==================================================================

Each embedded data field has a **source**, saying who may set it: ``query`` (any link's query
string, so anyone), ``personal_link`` (the default: a personal link, an invitation or a signed
link, and the API) or ``server`` (only the API and workflows). ``settable_embedded_data()``
applies that rule for a response's **channel** (``RESPONSE_CHANNELS``).

A ``flow`` (blocks, branches, randomizers, embedded data values, end-of-survey elements; see
:mod:`cxloop.domain.survey_flow` for how it runs) decides which pages a respondent sees; each
question then names its ``block``. ``options`` hold the respondent-facing title, the back
button, the progress bar and the normal end (message or redirect).

``SurveyContent.from_document()`` reports every problem of a document at once, each with a path
such as ``questions[2].choices[1].recode`` or ``flow[1].flow[0].block``.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from cxloop.domain.conditions import (
    CONDITION_TAGS,
    Condition,
    ConditionGroup,
    ConditionNode,
    conditions_with_paths,
)
from cxloop.domain.document_paths import (
    NoAliasLoader,
    common_message,
    document_path,
    short_value,
    unknown_key_message,
    yaml_problem,
)

FORMAT_VERSION = 1
MAX_DOCUMENT_CHARS = 5_000_000
MAX_QUESTIONS = 2_000
MAX_CHOICES = 1_000
MAX_SCALE_POINTS = 100
MAX_TEXT = 20_000
MAX_CHOICE_TEXT = 5_000
MAX_PAGE = 10_000

QID_PATTERN = r"^QID[1-9][0-9]{0,8}$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Embedded data names appear in piped text (${e://Field/Name}) and URL parameters: no slashes,
# braces or control characters, which would make those ambiguous.
FIELD_NAME_PATTERN = r"^[^\x00-\x1f\x7f/{}$?&=#%]{1,200}$"

# Export tags name CSV columns: no control characters, commas or quotes, which would need
# quoting in every script that reads the file.
EXPORT_TAG_PATTERN = r'^[^\x00-\x1f\x7f,"]{1,100}$'
QID_RE = re.compile(QID_PATTERN)
ID_RE = re.compile(ID_PATTERN)

QuestionType = Literal[
    "nps", "rating", "single_choice", "multiple_choice", "text_entry", "matrix", "descriptive"
]
QUESTION_TYPES: tuple[str, ...] = QuestionType.__args__  # type: ignore[attr-defined]

EmbeddedDataSource = Literal["query", "personal_link", "server"]
EMBEDDED_DATA_SOURCES: tuple[str, ...] = EmbeddedDataSource.__args__  # type: ignore[attr-defined]
DEFAULT_EMBEDDED_DATA_SOURCE = "personal_link"

# How a response came in. A signed link is its own channel: it is made by an editor for another
# system to embed and may be opened many times, unlike a single-use personal link.
ResponseChannel = Literal["anonymous_link", "personal_link", "signed_link", "api", "import"]
RESPONSE_CHANNELS: tuple[str, ...] = ResponseChannel.__args__  # type: ignore[attr-defined]
# Which field sources each channel may fill. The API and imports are editors speaking.
SOURCES_BY_CHANNEL: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "anonymous_link": frozenset({"query"}),
        "personal_link": frozenset({"query", "personal_link"}),
        "signed_link": frozenset({"query", "personal_link"}),
        "api": frozenset(EMBEDDED_DATA_SOURCES),
        "import": frozenset(EMBEDDED_DATA_SOURCES),
    }
)


def _check_recode(value: Any) -> int | float:
    # A plain validator instead of `int | float` so a bad recode gives one clear message, not
    # one per union member.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a recode must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a recode must be a finite number")
    if isinstance(value, int) and abs(value) > 2**53:
        # Larger whole numbers do not survive a trip through JavaScript (JSON in a browser).
        raise ValueError("a recode must be between -2^53 and 2^53")
    return value


Recode = Annotated[int | float, PlainValidator(_check_recode)]
Qid = Annotated[str, Field(pattern=QID_PATTERN)]
ChoiceId = Annotated[str, Field(pattern=ID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _Labelled(_Model):
    """An entry of a question with an id and a text that may carry markup."""

    id: ChoiceId
    text: str = Field(max_length=MAX_CHOICE_TEXT)

    def plain_text(self) -> str:
        """The text without markup."""
        return plain_text(self.text)


class _Recoded(_Labelled):
    """An entry that an answer picks, with an optional recode."""

    recode: Recode | None = None

    @property
    def effective_recode(self) -> int | float | None:
        """The recode; without one, the id when it is a number (the reference's rule)."""
        return self.recode if self.recode is not None else _id_as_number(self.id)


class Choice(_Recoded):
    """One option of a single or multiple choice question."""

    allow_text_entry: bool = False
    exclusive: bool = False


class MatrixRow(_Labelled):
    """A statement in a matrix; rows are answered on the matrix's scale."""

    allow_text_entry: bool = False


class ScalePoint(_Recoded):
    """A column of a matrix scale ("Agree"), with its recode."""


class _QuestionBase(_Model):
    qid: Qid
    text: str = Field(default="", max_length=MAX_TEXT)
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    # The column name in response exports (the reference's DataExportTag, such as "Age").
    export_tag: str | None = Field(default=None, pattern=EXPORT_TAG_PATTERN)
    # The block the question belongs to; the survey flow shows blocks (see `flow`).
    block: ChoiceId | None = None
    show_if: ConditionNode | None = None

    def plain_text(self) -> str:
        """The question text without markup, as a person reads it."""
        return plain_text(self.text)


class _AnswerableBase(_QuestionBase):
    required: bool = False


class NpsQuestion(_AnswerableBase):
    """Net Promoter Score: how likely, from 0 to 10."""

    type: Literal["nps"]

    @property
    def bounds(self) -> tuple[int, int]:
        """The lowest and the highest answer: 0 and 10."""
        return 0, 10


class RatingQuestion(_AnswerableBase):
    """A whole number on a scale from ``scale_min`` (0 or 1) to ``scale_max``."""

    type: Literal["rating"]
    scale_min: int = Field(default=1, ge=0, le=1)  # an int field: strict refuses True and 1.0
    scale_max: int = Field(ge=1, le=100)
    # What the ends of the scale mean, shown under it as NPS shows "Not at all likely".
    low_label: str = Field(default="", max_length=MAX_CHOICE_TEXT)
    high_label: str = Field(default="", max_length=MAX_CHOICE_TEXT)
    # "slider": a range input (keyboard: arrow keys) instead of a row of buttons.
    display: Literal["buttons", "slider"] = "buttons"
    step: int = Field(default=1, ge=1, le=100)  # the slider's step
    # Labels spread evenly under the slider (the first and the last are its ends).
    labels: list[Annotated[str, Field(max_length=MAX_CHOICE_TEXT)]] = Field(
        default_factory=list, max_length=11
    )
    # The slider's choice id in the reference product: its export column is QID<n>_<id>.
    choice_id: ChoiceId | None = None

    @property
    def bounds(self) -> tuple[int, int]:
        """The lowest and the highest answer: `scale_min` and `scale_max`."""
        return self.scale_min, self.scale_max

    @model_validator(mode="after")
    def _scale_is_a_range(self) -> RatingQuestion:
        if self.scale_max <= self.scale_min:
            raise ValueError("scale_max must be greater than scale_min")
        return self


class SingleChoiceQuestion(_AnswerableBase):
    """Pick one choice."""

    type: Literal["single_choice"]
    layout: Literal["vertical", "horizontal", "dropdown"] = "vertical"
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)

    def choice(self, choice_id: str) -> Choice | None:
        """The choice with this id, or None."""
        return next((c for c in self.choices if c.id == choice_id), None)


class MultipleChoiceQuestion(_AnswerableBase):
    """Pick any number of choices; an ``exclusive`` choice ("None of these") stands alone."""

    type: Literal["multiple_choice"]
    layout: Literal["vertical", "horizontal"] = "vertical"
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)

    def choice(self, choice_id: str) -> Choice | None:
        """The choice with this id, or None."""
        return next((c for c in self.choices if c.id == choice_id), None)


class TextEntryQuestion(_AnswerableBase):
    """Free text, one line or several; optionally checked as an email address or a number."""

    type: Literal["text_entry"]
    multiline: bool = False
    validation: Literal["none", "email", "number"] = "none"
    # Filled in until the respondent changes it; piped text such as ${e://Field/PROLIFIC_PID}.
    default: str | None = Field(default=None, max_length=MAX_TEXT)


class MatrixQuestion(_AnswerableBase):
    """Likert grid: each row is answered with one scale point (or several)."""

    type: Literal["matrix"]
    multiple_answers: bool = False
    rows: list[MatrixRow] = Field(min_length=1, max_length=MAX_CHOICES)
    scale: list[ScalePoint] = Field(min_length=1, max_length=MAX_SCALE_POINTS)

    def row(self, row_id: str) -> MatrixRow | None:
        """The row with this id, or None."""
        return next((r for r in self.rows if r.id == row_id), None)

    def scale_point(self, scale_id: str) -> ScalePoint | None:
        """The scale point with this id, or None."""
        return next((s for s in self.scale if s.id == scale_id), None)


class DescriptiveQuestion(_QuestionBase):
    """Text shown to the respondent; takes no answer."""

    type: Literal["descriptive"]


Question = Annotated[
    NpsQuestion
    | RatingQuestion
    | SingleChoiceQuestion
    | MultipleChoiceQuestion
    | TextEntryQuestion
    | MatrixQuestion
    | DescriptiveQuestion,
    Field(discriminator="type"),
]
# A question answered with a whole number from its `bounds`.
ScaleQuestion = NpsQuestion | RatingQuestion
# A question answered with one or more of its `choices`.
ChoiceQuestion = SingleChoiceQuestion | MultipleChoiceQuestion
QUESTION_ADAPTER: TypeAdapter[Question] = TypeAdapter(Question)


# -- survey flow and options ------------------------------------------------------------------

MAX_FLOW_ELEMENTS = 2_000
MAX_FLOW_DEPTH = 32
FLOW_TYPES = ("block", "branch", "randomizer", "embedded_data", "end_survey")
URL_PREFIXES = ("https://", "http://")


class FlowBlock(_Model):
    """Show the pages of a block (the questions whose ``block`` is this id)."""

    type: Literal["block"]
    block: ChoiceId


class FlowBranch(_Model):
    """Go through ``flow`` only when ``condition`` holds (answers given so far, embedded data)."""

    type: Literal["branch"]
    description: str = Field(default="", max_length=1_000)
    condition: ConditionNode
    flow: list[FlowElement] = Field(default_factory=list, max_length=MAX_FLOW_ELEMENTS)


class FlowRandomizer(_Model):
    """Present ``present`` of the elements in ``flow``, in random order; ``even`` balances how
    often each element is presented over all responses. The elements chosen are stored on the
    response as embedded data named ``id`` (their keys joined by ``|``)."""

    type: Literal["randomizer"]
    id: ChoiceId
    present: int = Field(ge=1, le=MAX_FLOW_ELEMENTS)
    even: bool = True
    flow: list[FlowElement] = Field(min_length=1, max_length=MAX_FLOW_ELEMENTS)


class FlowFieldValue(_Model):
    """One embedded data value set by the flow; ``value`` may hold piped text."""

    name: str = Field(pattern=FIELD_NAME_PATTERN)
    value: str = Field(default="", max_length=MAX_TEXT)


class FlowEmbeddedData(_Model):
    """Set embedded data values when the flow passes here."""

    type: Literal["embedded_data"]
    fields: list[FlowFieldValue] = Field(min_length=1, max_length=1_000)


class FlowEndSurvey(_Model):
    """End the survey here: show ``message`` or send the respondent to ``redirect_url`` (piped
    text allowed); ``screened_out`` records the response as screened out."""

    type: Literal["end_survey"]
    message: str = Field(default="", max_length=MAX_TEXT)
    redirect_url: str | None = Field(default=None, min_length=1, max_length=2_000)
    screened_out: bool = False


FlowElement = Annotated[
    FlowBlock | FlowBranch | FlowRandomizer | FlowEmbeddedData | FlowEndSurvey,
    Field(discriminator="type"),
]
FlowBranch.model_rebuild()
FlowRandomizer.model_rebuild()
FLOW_ADAPTER: TypeAdapter[list[FlowElement]] = TypeAdapter(list[FlowElement])


class SurveyOptions(_Model):
    """How the survey behaves for respondents.

    ``title`` is the heading respondents see (the survey's internal name is never shown when it
    is set); ``back_button`` shows "Back"; ``progress_bar`` is ``none``, ``pages`` ("Page 2 of
    5") or ``percent``; ``end_message`` / ``end_redirect_url`` is the survey's normal end (an
    end-of-survey element in the flow has its own).
    """

    title: str | None = Field(default=None, max_length=1_000)
    back_button: bool = True
    progress_bar: Literal["none", "pages", "percent"] = "pages"
    end_message: str = Field(default="", max_length=MAX_TEXT)
    end_redirect_url: str | None = Field(default=None, min_length=1, max_length=2_000)


def iter_flow(
    elements: Iterable[Any], path: str = "flow", start: int = 0
) -> Iterable[tuple[str, Any]]:
    """Every flow element, depth first in document order, with its document path."""
    for index, element in enumerate(elements, start):
        where = f"{path}[{index}]"
        yield where, element
        children = getattr(element, "flow", None)
        if children:
            yield from iter_flow(children, f"{where}.flow")


def flow_fields(elements: Iterable[Any]) -> list[str]:
    """The embedded data names the flow sets (randomizer assignments and set values)."""
    names: list[str] = []
    for _, element in iter_flow(elements):
        if isinstance(element, FlowRandomizer):
            names.append(element.id)
        elif isinstance(element, FlowEmbeddedData):
            names.extend(f.name for f in element.fields)
    return list(dict.fromkeys(names))


class EmbeddedDataField(_Model):
    """A named value carried by each response (``CaseId``); ``default`` when nothing sets it.

    ``source`` says who may set it: ``query`` (anyone, from a link's query string),
    ``personal_link`` (personal and signed links, the API) or ``server`` (the API, workflows).
    """

    name: str = Field(pattern=FIELD_NAME_PATTERN)
    default: str | None = Field(default=None, max_length=MAX_TEXT)
    description: str = Field(default="", max_length=1_000)
    source: EmbeddedDataSource = DEFAULT_EMBEDDED_DATA_SOURCE


class SurveyContent(_Model):
    """Everything a respondent sees and a response carries: questions and embedded data."""

    format_version: Literal[1] = FORMAT_VERSION
    embedded_data: list[EmbeddedDataField] = Field(default_factory=list, max_length=1_000)
    questions: list[Question] = Field(default_factory=list, max_length=MAX_QUESTIONS)
    # Without a flow, every page is shown in page order; with one, only what the flow shows.
    flow: list[FlowElement] | None = Field(default=None, max_length=MAX_FLOW_ELEMENTS)
    options: SurveyOptions = Field(default_factory=SurveyOptions)

    @model_validator(mode="after")
    def _consistent(self) -> SurveyContent:
        problems = find_problems(list(enumerate(self.questions)), self.embedded_data)
        if self.flow is not None:
            problems += flow_problems(list(enumerate(self.flow)), list(enumerate(self.questions)))
        problems += options_problems(self.options)
        if problems:
            raise ValueError("; ".join(str(p) for p in problems[:20]))
        return self

    # -- lookups ---------------------------------------------------------------------------

    def question(self, qid: str) -> Question | None:
        """The question with this QID, or None."""
        return next((q for q in self.questions if q.qid == qid), None)

    def questions_by_qid(self) -> dict[str, Question]:
        """All questions keyed by QID (build once when looking up many)."""
        return {q.qid: q for q in self.questions}

    def embedded_data_field(self, name: str) -> EmbeddedDataField | None:
        """The declared embedded data field with this name, or None."""
        return next((f for f in self.embedded_data if f.name == name), None)

    def flow_data_names(self) -> list[str]:
        """The embedded data the flow stores on a response besides the declared fields:
        randomizer assignments, values it sets, and ``Q_TerminateFlag`` for a screen-out."""
        if self.flow is None:
            return []
        names = flow_fields(self.flow)
        if any(isinstance(e, FlowEndSurvey) and e.screened_out for _, e in iter_flow(self.flow)):
            names.append("Q_TerminateFlag")
        declared = {f.name for f in self.embedded_data}
        return [name for name in dict.fromkeys(names) if name not in declared]

    def embedded_data_sources(self) -> dict[str, str]:
        """Each declared embedded data field's source, by name."""
        return {f.name: f.source for f in self.embedded_data}

    def page_numbers(self) -> list[int]:
        """The page numbers in use, in order."""
        return sorted({q.page for q in self.questions})

    def pages(self) -> list[list[Question]]:
        """The questions grouped by page, in order."""
        grouped: dict[int, list[Question]] = {}
        for q in self.questions:
            grouped.setdefault(q.page, []).append(q)
        return [grouped[number] for number in sorted(grouped)]

    def block_pages(self) -> dict[str, list[int]]:
        """Each block's pages, in page order."""
        pages: dict[str, list[int]] = {}
        for q in self.questions:
            if q.block is not None and q.page not in pages.setdefault(q.block, []):
                pages[q.block].append(q.page)
        return pages

    def questions_on_page(self, page: int) -> list[Question]:
        """The questions of one page, in order (display logic not applied)."""
        return [q for q in self.questions if q.page == page]

    # -- documents -------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The content as a plain JSON/YAML-ready dict; defaults are left out to keep it tidy."""
        body = self.model_dump(mode="json", exclude_defaults=True, exclude={"format_version"})
        if self.flow is not None:
            body["flow"] = FLOW_ADAPTER.dump_python(self.flow, mode="json", exclude_defaults=True)
        if "questions" in body:
            # qid and type first: that is how a person scans a YAML file of questions.
            body["questions"] = [
                {"qid": q["qid"], "type": q["type"], **q} for q in body["questions"]
            ]
        return {"format_version": FORMAT_VERSION, **body}

    @classmethod
    def from_document(cls, document: Any) -> SurveyContent:
        """Build content from a document; raises ``SurveyContentError`` with every problem."""
        problems = check_document(document)
        if problems:
            raise SurveyContentError(problems)
        try:
            return cls.model_validate(document, strict=True)
        except ValidationError as exc:  # pragma: no cover - check_document found nothing
            raise SurveyContentError(problems_from_validation(exc)) from None

    def to_json(self) -> str:
        """The document as JSON text."""
        return json.dumps(self.to_document(), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> SurveyContent:
        """Parse JSON text into content; raises ``SurveyContentError``."""
        if len(text) > MAX_DOCUMENT_CHARS:
            raise SurveyContentError([_too_big()])
        try:
            document = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise SurveyContentError([ContentProblem("", f"not valid JSON: {exc}")]) from None
        return cls.from_document(document)

    def to_yaml(self) -> str:
        """The document as YAML text."""
        return yaml.dump(
            self.to_document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
        )

    @classmethod
    def from_yaml(cls, text: str | bytes) -> SurveyContent:
        """Parse YAML text into content; raises ``SurveyContentError``."""
        if len(text) > MAX_DOCUMENT_CHARS:
            raise SurveyContentError([_too_big()])
        try:
            document = yaml.load(text, Loader=NoAliasLoader)
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            raise SurveyContentError(
                [ContentProblem("", f"not valid YAML: {yaml_problem(exc)}")]
            ) from None
        return cls.from_document(document)


def settable_embedded_data(
    content: SurveyContent, channel: str, values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The values a response coming through ``channel`` may set, and the names it may not.

    Undeclared names are dropped too (and named): only declared fields are ever stored.
    """
    allowed = SOURCES_BY_CHANNEL.get(channel, frozenset())
    sources = content.embedded_data_sources()
    kept: dict[str, Any] = {}
    refused: list[str] = []
    for name, value in values.items():
        if sources.get(name) in allowed:
            kept[name] = value
        else:
            refused.append(name)
    return kept, refused


@dataclass(frozen=True)
class ContentProblem:
    """One thing wrong with a content document, at a path like ``questions[2].choices[1].id``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SurveyContentError(ValueError):
    """A survey content document has problems; ``problems`` lists them all."""

    def __init__(self, problems: list[ContentProblem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"the survey content has {len(problems)} problem(s): {shown}{more}")


# -- answer fields (display logic) ------------------------------------------------------------


AnswerPart = Literal["value", "recode", "text", "row", "row_recode"]

# A question's id and the part of its answer a field names after it (display logic here,
# workflow conditions after `q://`): nothing for the value, `/recode`, `/text` (with the id of
# the choice whose text entry it is), `/row/<row id>` or `/row/<row id>/recode`.
ANSWER_FIELD_PATTERN = (
    r"(?P<qid>QID[1-9][0-9]{0,8})"
    r"(?:(?P<recode>/recode)"
    r"|(?P<text>/text(?:/(?P<choice>[A-Za-z0-9_-]{1,64}))?)"
    r"|/row/(?P<row>[A-Za-z0-9_-]{1,64})(?P<row_recode>/recode)?)?"
)


def answer_part(match: re.Match[str]) -> tuple[AnswerPart, str | None]:
    """The part and its item (the choice id of a text entry, the row id of a row) that a match
    of ANSWER_FIELD_PATTERN names."""
    if match["recode"]:
        return "recode", None
    if match["text"]:
        return "text", match["choice"]
    if match["row"]:
        return ("row_recode" if match["row_recode"] else "row"), match["row"]
    return "value", None


@dataclass(frozen=True)
class AnswerField:
    """A parsed display-logic field: which part of which question's answer it names."""

    qid: str
    part: AnswerPart
    item: str | None = None  # choice id for "text", row id for "row"/"row_recode"


_FIELD_RE = re.compile(rf"^{ANSWER_FIELD_PATTERN}$")


def parse_answer_field(field: str) -> AnswerField | None:
    """Parse a display-logic field such as ``QID5/row/2/recode``; None if it is not one."""
    match = _FIELD_RE.match(field) if isinstance(field, str) else None
    if not match:
        return None
    part, item = answer_part(match)
    if part == "text" and item is None:  # display logic reads one choice's text entry
        return None
    return AnswerField(match["qid"], part, item)


# -- checking a document ----------------------------------------------------------------------


_SHELL_KEYS = ("format_version", "embedded_data", "questions", "flow", "options")


def check_document(document: Any) -> list[ContentProblem]:
    """Every problem of a content document at once; an empty list means it is valid."""
    if not isinstance(document, Mapping):
        return [ContentProblem("", "the survey content must be a mapping (an object)")]
    problems: list[ContentProblem] = []
    if "format_version" not in document:
        problems.append(ContentProblem("format_version", f"is missing; use {FORMAT_VERSION}"))
    elif not (type(document["format_version"]) is int and document["format_version"] == 1):
        problems.append(
            ContentProblem(
                "format_version",
                f"{short_value(document['format_version'])} is not a format this version of cxloop "
                f"reads (it reads {FORMAT_VERSION})",
            )
        )
    for key in document:
        if key not in _SHELL_KEYS:
            problems.append(
                ContentProblem(_path((key,), keep_last=True), unknown_key_message(key, _SHELL_KEYS))
            )

    embedded: list[EmbeddedDataField] = []
    raw_embedded = document.get("embedded_data", [])
    if not isinstance(raw_embedded, list):
        problems.append(ContentProblem("embedded_data", "must be a list"))
    else:
        if len(raw_embedded) > 1_000:
            problems.append(ContentProblem("embedded_data", "at most 1000 fields are allowed"))
        for index, raw in enumerate(raw_embedded[:1_000]):
            try:
                embedded.append(EmbeddedDataField.model_validate(raw, strict=True))
            except ValidationError as exc:
                problems.extend(problems_from_validation(exc, ("embedded_data", index)))

    questions: list[tuple[int, Question]] = []
    unparsed: list[tuple[int, Any]] = []
    raw_questions = document.get("questions", [])
    if not isinstance(raw_questions, list):
        problems.append(ContentProblem("questions", "must be a list"))
    else:
        if len(raw_questions) > MAX_QUESTIONS:
            problems.append(
                ContentProblem("questions", f"at most {MAX_QUESTIONS} questions are allowed")
            )
        # Each question on its own, so one broken question does not hide the others' problems
        # and the cross-question checks still run on everything that parsed.
        for index, raw in enumerate(raw_questions[:MAX_QUESTIONS]):
            try:
                questions.append((index, QUESTION_ADAPTER.validate_python(raw, strict=True)))
            except ValidationError as exc:
                problems.extend(problems_from_validation(exc, ("questions", index)))
                unparsed.append((index, raw))
    problems.extend(find_problems(questions, embedded, unparsed))
    problems.extend(_check_flow_and_options(document, questions))
    return problems


def _check_flow_and_options(
    document: Mapping[str, Any], questions: list[tuple[int, Question]]
) -> list[ContentProblem]:
    problems: list[ContentProblem] = []
    if "options" in document:
        try:
            options = SurveyOptions.model_validate(document["options"], strict=True)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, ("options",)))
        else:
            problems.extend(options_problems(options))
    raw_flow = document.get("flow")
    if raw_flow is None:
        return problems
    if _nesting(raw_flow) > MAX_FLOW_DEPTH:
        return [*problems, ContentProblem("flow", f"is nested more than {MAX_FLOW_DEPTH} deep")]
    if not isinstance(raw_flow, list):
        return [*problems, ContentProblem("flow", "must be a list")]
    if len(raw_flow) > MAX_FLOW_ELEMENTS:
        problems.append(ContentProblem("flow", f"at most {MAX_FLOW_ELEMENTS} elements are allowed"))
    # Element by element, so one broken element does not hide the problems of the others.
    parsed: list[tuple[int, Any]] = []
    for index, raw in enumerate(raw_flow[:MAX_FLOW_ELEMENTS]):
        try:
            parsed.append((index, FLOW_ADAPTER.validate_python([raw], strict=True)[0]))
        except ValidationError as exc:
            problems.extend(_flow_validation_problems(exc, index))
    problems.extend(flow_problems(parsed, questions))
    return problems


def _nesting(value: Any, depth: int = 0) -> int:
    if depth > MAX_FLOW_DEPTH:
        return depth
    if isinstance(value, list):
        return max((_nesting(v, depth + 1) for v in value), default=depth)
    if isinstance(value, Mapping) and isinstance(value.get("flow"), list):
        return _nesting(value["flow"], depth)
    return depth


def _flow_validation_problems(exc: ValidationError, index: int) -> list[ContentProblem]:
    problems = []
    for problem in problems_from_validation(exc, ("flow",)):
        problem = ContentProblem(
            re.sub(r"^flow\[0\]", f"flow[{index}]", problem.path), problem.message
        )
        # pydantic names the element type tried after each index; the document has no such key.
        path = re.sub(r"\]\.(?:" + "|".join(FLOW_TYPES) + r")(?=\.|$)", "]", problem.path)
        path = path.replace(".condition.condition", ".condition").replace(
            ".condition.group", ".condition"
        )
        message = problem.message
        if "union_tag" in message or message.startswith("unknown question type"):
            message = "unknown flow element type; use one of: " + ", ".join(FLOW_TYPES)
        problems.append(ContentProblem(path, message))
    return problems


def options_problems(options: SurveyOptions) -> list[ContentProblem]:
    """Problems of the survey options that their fields alone do not show."""
    if options.end_redirect_url is not None and not options.end_redirect_url.startswith(
        URL_PREFIXES
    ):
        return [
            ContentProblem(
                "options.end_redirect_url", "must be a web address starting with https://"
            )
        ]
    return []


def flow_problems(
    flow: list[tuple[int, Any]], questions: list[tuple[int, Question]]
) -> list[ContentProblem]:
    """Problems of a survey flow: unknown blocks, randomizers asking for more than they hold,
    redirects that are not web addresses, questions outside any block, pages split over blocks.
    """
    problems: list[ContentProblem] = []
    blocks: dict[str, int] = {}
    block_of_page: dict[int, tuple[str | None, int]] = {}
    for index, question in questions:
        if question.block is not None:
            blocks.setdefault(question.block, index)
        else:
            problems.append(
                ContentProblem(
                    f"questions[{index}].block",
                    "is missing; with a survey flow every question belongs to a block",
                )
            )
        first = block_of_page.setdefault(question.page, (question.block, index))
        if first[0] != question.block and question.block is not None and first[0] is not None:
            problems.append(
                ContentProblem(
                    f"questions[{index}].block",
                    f"page {question.page} is in block '{first[0]}' (questions[{first[1]}]); "
                    "a page belongs to one block",
                )
            )
    qids = {question.qid for _, question in questions}
    randomizers: dict[str, str] = {}
    walked = (item for index, top in flow for item in iter_flow([top], "flow", index))
    for path, element in walked:
        if isinstance(element, FlowBlock) and element.block not in blocks:
            problems.append(
                ContentProblem(
                    f"{path}.block", f"no question belongs to block '{short_value(element.block)}'"
                )
            )
        elif isinstance(element, FlowRandomizer):
            if element.present > len(element.flow):
                problems.append(
                    ContentProblem(
                        f"{path}.present",
                        f"presents {element.present} of {len(element.flow)} elements; it "
                        "cannot present more than it holds",
                    )
                )
            if element.id in randomizers:
                problems.append(
                    ContentProblem(
                        f"{path}.id",
                        f"'{element.id}' is used twice (also {randomizers[element.id]})",
                    )
                )
            randomizers.setdefault(element.id, path)
        elif isinstance(element, FlowEndSurvey):
            if element.redirect_url is not None and not element.redirect_url.startswith(
                URL_PREFIXES
            ):
                problems.append(
                    ContentProblem(
                        f"{path}.redirect_url", "must be a web address starting with https://"
                    )
                )
        elif isinstance(element, FlowBranch):
            for cpath, condition in conditions_with_paths(element.condition, f"{path}.condition"):
                field = parse_answer_field(condition.field)
                if condition.field.startswith("e://Field/"):
                    continue
                if field is None:
                    problems.append(
                        ContentProblem(
                            f"{cpath}.field",
                            f"'{short_value(condition.field)}' is not an answer field or embedded "
                            "data; use QID1, QID1/recode, QID1/text/<choice id>, "
                            "QID1/row/<row id> or e://Field/<name>",
                        )
                    )
                elif field.qid not in qids:
                    problems.append(
                        ContentProblem(
                            f"{cpath}.field", f"{field.qid} does not exist in this survey"
                        )
                    )
    return problems


def find_problems(
    questions: list[tuple[int, Question]],
    embedded_data: Iterable[EmbeddedDataField],
    unparsed: Iterable[tuple[int, Any]] = (),
) -> list[ContentProblem]:
    """Problems across fields and questions: duplicates, page order, display logic references.

    ``unparsed`` holds (index, raw document) of questions whose own problems were reported
    already; their QIDs still count, so nothing else is reported twice or wrongly.
    """
    names = [item.name for item in embedded_data]
    problems = [
        ContentProblem(
            f"embedded_data[{index}].name",
            f"'{names[index]}' is declared twice (also embedded_data[{first}])",
        )
        for index, first in _repeats(names)
    ]

    seen_qids: dict[str, int] = {}
    page_of: dict[str, int] = {}
    unparsed_qids: dict[str, int] = {}
    for index, raw in unparsed:
        qid = raw.get("qid") if isinstance(raw, Mapping) else None
        if isinstance(qid, str):
            unparsed_qids.setdefault(qid, index)
            page = raw.get("page", 1)
            if type(page) is int:
                page_of.setdefault(qid, page)
    for _, question in reversed(questions):
        page_of[question.qid] = question.page
    previous_page = 0
    earlier: dict[str, Question] = {}  # QID -> question, for questions on earlier pages
    current_page: list[Question] = []
    for index, question in questions:
        where = f"questions[{index}]"
        first = seen_qids.get(question.qid, unparsed_qids.get(question.qid, index))
        if first != index:
            problems.append(
                ContentProblem(
                    f"{where}.qid",
                    f"{question.qid} is used twice (also questions[{first}])",
                )
            )
        seen_qids.setdefault(question.qid, index)
        if question.page < previous_page:
            problems.append(
                ContentProblem(
                    f"{where}.page",
                    f"page {question.page} comes after page {previous_page}; questions must be "
                    "listed in page order",
                )
            )
        elif question.page > previous_page:
            for q in current_page:
                earlier.setdefault(q.qid, q)
            current_page = []
            previous_page = question.page
        current_page.append(question)
        problems.extend(_item_problems(question, where))
        if question.show_if is not None:
            # Questions above it on its own page count too (same-page display logic).
            above = {**earlier, **{q.qid: q for q in current_page[:-1]}}
            problems.extend(
                _display_logic_problems(question, where, above, page_of, set(unparsed_qids))
            )
    return problems


def _repeats(keys: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(index, index of its first occurrence) of each key that occurred before it."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        if first.setdefault(key, index) != index:
            yield index, first[key]


def _item_problems(question: Question, where: str) -> list[ContentProblem]:
    problems: list[ContentProblem] = []
    groups: list[tuple[str, list[Any]]] = []
    if isinstance(question, ChoiceQuestion):
        groups.append(("choices", question.choices))
    if isinstance(question, MatrixQuestion):
        groups += [("rows", question.rows), ("scale", question.scale)]
    for name, items in groups:
        ids = [item.id for item in items]
        problems.extend(
            ContentProblem(
                f"{where}.{name}[{index}].id",
                f"'{ids[index]}' is used twice in this question (also {name}[{first}])",
            )
            for index, first in _repeats(ids)
        )
    if isinstance(question, SingleChoiceQuestion):
        for index, choice in enumerate(question.choices):
            if choice.exclusive:
                problems.append(
                    ContentProblem(
                        f"{where}.choices[{index}].exclusive",
                        "only a multiple choice question can have an exclusive choice",
                    )
                )
    return problems


def _display_logic_problems(
    question: Question,
    where: str,
    earlier: Mapping[str, Question],
    page_of: Mapping[str, int],
    unparsed_qids: set[str],
) -> list[ContentProblem]:
    problems: list[ContentProblem] = []
    assert question.show_if is not None
    for path, condition in conditions_with_paths(question.show_if, f"{where}.show_if"):
        if (field := parse_answer_field(condition.field)) and field.qid in unparsed_qids:
            continue  # that question's own problems are reported; guessing here would mislead
        message = _field_problem(condition, question, earlier, page_of)
        if message:
            problems.append(ContentProblem(f"{path}.field", message))
    return problems


def _field_problem(
    condition: Condition,
    question: Question,
    earlier: Mapping[str, Question],
    page_of: Mapping[str, int],
) -> str | None:
    field = parse_answer_field(condition.field)
    if field is None:
        return (
            f"'{short_value(condition.field)}' is not an answer field; use QID1, QID1/recode, "
            "QID1/text/<choice id>, QID1/row/<row id> or QID1/row/<row id>/recode"
        )
    target = earlier.get(field.qid)
    if target is None:
        if field.qid == question.qid:
            return f"display logic of {question.qid} refers to its own answer"
        if field.qid not in page_of:
            return f"{field.qid} does not exist in this survey"
        if page_of[field.qid] == question.page:
            return (
                f"{field.qid} comes later on the same page; display logic can use answers from "
                "earlier pages and from questions above it on its page"
            )
        return f"{field.qid} comes later; display logic can only use answers from earlier pages"
    kind = field.part
    if isinstance(target, DescriptiveQuestion):
        return f"{field.qid} is descriptive text and has no answer"
    if isinstance(target, MatrixQuestion):
        if kind not in ("row", "row_recode", "text"):
            return f"{field.qid} is a matrix; name a row, such as {field.qid}/row/<row id>"
        if kind == "text":
            row = target.row(field.item or "")
            if row is None or not row.allow_text_entry:
                return f"row '{field.item}' of {field.qid} has no text box"
            return None
        if target.row(field.item or "") is None:
            return f"{field.qid} has no row '{field.item}'"
        if kind == "row" and condition.operator not in ("is_empty", "is_not_empty"):
            return _ids_problem(condition, {s.id for s in target.scale}, field.qid, "scale point")
        return None
    if kind in ("row", "row_recode"):
        return f"{field.qid} is not a matrix and has no rows"
    if kind == "text":
        if not isinstance(target, ChoiceQuestion):
            return f"{field.qid} has no choices with a text box; use {field.qid} for its text"
        choice = target.choice(field.item or "")
        if choice is None or not choice.allow_text_entry:
            return f"choice '{field.item}' of {field.qid} has no text box"
        return None
    if kind == "recode":
        if isinstance(target, TextEntryQuestion):
            return f"{field.qid} is a text entry question and has no recode"
        return None
    if isinstance(target, ChoiceQuestion):
        if condition.operator in ("is_empty", "is_not_empty"):
            return None
        return _ids_problem(condition, {c.id for c in target.choices}, field.qid, "choice")
    return None


def _ids_problem(condition: Condition, ids: set[str], qid: str, what: str) -> str | None:
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    for value in values:
        if isinstance(value, bool) or str(value) not in ids:
            return f"{qid} has no {what} '{short_value(value)}'"
    return None


# -- error formatting -------------------------------------------------------------------------

_TAGS = frozenset(QUESTION_TYPES) | CONDITION_TAGS
# The model behind each union tag pydantic puts in an error's location.
_TAG_MODELS: Mapping[str, type[BaseModel]] = MappingProxyType({
    **{
        get_args(model.model_fields["type"].annotation)[0]: model
        for model in (
            NpsQuestion, RatingQuestion, SingleChoiceQuestion, MultipleChoiceQuestion,
            TextEntryQuestion, MatrixQuestion, DescriptiveQuestion,
        )
    },
    "condition": Condition,
    "group": ConditionGroup,
})  # fmt: skip


def problems_from_validation(
    exc: ValidationError, prefix: tuple[Any, ...] = ()
) -> list[ContentProblem]:
    """pydantic's errors as content problems with document paths and plain messages."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = prefix + tuple(error["loc"])
        kind = error["type"]
        if kind == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag", "")
            types = ", ".join(QUESTION_TYPES)
            message = f"unknown question type '{short_value(tag)}'; use one of: {types}"
        elif kind == "union_tag_not_found":
            message = "'type' is missing; use one of: " + ", ".join(QUESTION_TYPES)
            loc = (*loc, "type")
        elif kind == "string_pattern_mismatch":
            message = _pattern_message(loc, error.get("input"))
        elif kind == "literal_error" and loc[:1] == ("embedded_data",) and loc[-1:] == ("source",):
            message = (
                f"'{short_value(error.get('input'))}' is not a source; use query (anyone, from the "
                "link), personal_link (personal and signed links) or server (API, workflows)"
            )
        else:
            message = common_message(error, loc, SurveyContent, _TAG_MODELS)
        problems.append(ContentProblem(_path(loc, keep_last=kind == "extra_forbidden"), message))
    return problems


def _pattern_message(loc: tuple[Any, ...], value: Any) -> str:
    last = loc[-1] if loc else ""
    if last == "qid":
        return f"'{short_value(value)}' is not a QID; use QID followed by a number, such as QID1"
    if last == "export_tag":
        return (
            f"'{short_value(value)}' is not a usable export tag: 1-100 characters without commas, "
            "quotes or control characters"
        )
    if last == "name":
        return (
            f"'{short_value(value)}' is not a usable field name: 1-200 characters without "
            "/ { } $ ? & = # % or control characters"
        )
    return f"'{short_value(value)}' is not a usable id: 1-64 letters, digits, '-' or '_'"


def _path(loc: Iterable[Any], keep_last: bool = False) -> str:
    return document_path(loc, union_tags=_TAGS, tagged_after="show_if", keep_last=keep_last)


def _too_big() -> ContentProblem:
    return ContentProblem("", f"the document is larger than {MAX_DOCUMENT_CHARS} characters")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _id_as_number(identifier: str) -> int | None:
    return int(identifier) if identifier.isdecimal() and len(identifier) <= 15 else None


class _Dumper(yaml.SafeDumper):
    """Safe YAML that writes line-break-like characters escaped, so they survive a reload."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # YAML 1.1 reads NEL, LS and PS as line breaks and a BOM as noise; only the double-quoted
    # style writes them as escapes (\N, \L, \P, \uFEFF) that load back unchanged.
    awkward = any(char in data for char in "\x85\u2028\u2029\ufeff")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if awkward else None)


_Dumper.add_representer(str, _represent_str)


# -- plain text -------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
    _HIDDEN = frozenset({"script", "style", "template", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def plain_text(text: str) -> str:
    """Text without HTML markup: tags dropped, entities decoded, whitespace tidied.

    Not a sanitiser: the result is plain text that still needs escaping wherever it is shown.
    """
    if not isinstance(text, str):
        return ""
    if "<" not in text and "&" not in text:
        return " ".join(text.split())
    extractor = _TextExtractor()
    try:
        extractor.feed(text)
        extractor.close()
        raw = "".join(extractor.parts)
    except Exception:  # HTMLParser is lenient; this only guards against the unforeseen
        raw = html.unescape(re.sub(r"<[^>]*>", " ", text))
    lines = (" ".join(line.replace("\xa0", " ").split()) for line in raw.split("\n"))
    return "\n".join(line for line in lines if line)
