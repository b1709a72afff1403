"""The response plan: how a response document becomes a stored response, for every way in.

A submitted response (the API's POST), a changed one (PATCH), an imported row and the survey
pages all go through one `ResponsePlan`, made once per survey content: the same checks
(`problems`), the same answers kept (`visible_answers`: those of shown questions, none empty),
the same defaults for declared embedded data (`with_defaults`) and the same columns (`row`).

Documents arrive as JSON. `parse_document` reads one with its pydantic model and refuses it with
every problem listed; `read_document` gives the same for an imported document, the short way
when the document is plainly what the model accepts (imports read thousands).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

from cxloop.domain.answers import ResponseRules
from cxloop.domain.document_paths import contains_nul
from cxloop.domain.ids import new_id
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.survey_flow import without_off_route_requirements
from cxloop.errors import InvalidInput
from cxloop.services.responses.errors import invalid_response, problem

Source = Literal["web", "api", "import"]
RESPONSE_ID_PATTERN = r"^R_[A-Za-z0-9]{15}$"

M = TypeVar("M", bound=BaseModel)


def new_response_id() -> str:
    """A ResponseID: `R_` and 15 random letters and digits."""
    return new_id("R_")


def duration(started: datetime | None, ended: datetime | None) -> int | None:
    """Whole seconds from start to end (never negative); None while unfinished."""
    if started is None or ended is None:
        return None
    return max(0, int((ended - started).total_seconds()))


# -- documents in ----------------------------------------------------------------------------


class ResponseDocument(BaseModel):
    """A response as submitted through the API (one object of a bulk array, a JSONL line)."""

    model_config = ConfigDict(extra="forbid")

    # A client-chosen ResponseID makes a retry safe: the same id is stored once (see
    # services/idempotency.py, which answers a repeated id with the stored response).
    id: str | None = Field(default=None, pattern=RESPONSE_ID_PATTERN)
    values: dict[str, Any] = Field(default_factory=dict)
    embedded_data: dict[str, Any] = Field(default_factory=dict)
    finished: StrictBool = True
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    language: str | None = Field(default=None, min_length=1, max_length=16)
    distribution_id: str | None = Field(default=None, min_length=1, max_length=20)
    contact_id: str | None = Field(default=None, min_length=1, max_length=20)


class ImportedDocument(ResponseDocument):
    """An imported response: may keep its ResponseID; an exported response's read-only fields
    are accepted and ignored, so that an export imports back as it is."""

    id: str | None = Field(default=None, pattern=RESPONSE_ID_PATTERN)
    survey_id: Any = None
    source: Any = None
    channel: Any = None
    duration_s: Any = None
    created_at: Any = None
    updated_at: Any = None


class ResponseChanges(BaseModel):
    """A PATCH: `values` and `embedded_data` are merged key by key (null removes a key)."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] | None = None
    embedded_data: dict[str, Any] | None = None
    finished: StrictBool | None = None
    language: str | None = Field(default=None, min_length=1, max_length=16)


def parse_document(model: type[M], raw: Any) -> M:
    """`raw` read as `model`, or InvalidInput listing every problem."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            "A response must be an object with `values` (answers keyed by QID).",
            code="invalid_response",
            details=[problem(None, "wrong_type", "A response must be an object.")],
        )
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "body"
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            elif error["type"] == "string_pattern_mismatch" and where == "id":
                message = "a ResponseId is R_ followed by 15 letters and digits"
            else:
                message = error["msg"]
            problems.append(problem(None, "invalid_field", f"{where}: {message}", where))
        raise invalid_response(problems) from None
    for name in ("values", "embedded_data"):
        if contains_nul(getattr(parsed, name, None)):
            # No database keeps NUL in text, and nothing downstream expects one.
            message = f"{name}: text must not contain NUL characters"
            raise invalid_response([problem(None, "nul_character", message, name)])
    return parsed


class PlainDocument(NamedTuple):
    """An imported document read without pydantic (see `read_document`): the fields of
    `ImportedDocument` that checking and storing it look at, under the same names."""

    values: dict[str, Any]
    embedded_data: dict[str, Any]
    finished: bool
    started_at: datetime | None
    ended_at: datetime | None
    language: str | None
    distribution_id: str | None
    contact_id: str | None
    id: str | None


def read_document(raw: Any) -> ImportedDocument | PlainDocument:
    """`parse_document(ImportedDocument, raw)`, the short way for the usual document.

    A document whose every field is plainly what the model accepts (exact types, lengths and
    patterns checked here) is read without building the pydantic model; anything else, odd or
    wrong, goes through `parse_document`, so a refusal reads exactly as it always does.
    """
    if type(raw) is dict and raw.keys() <= _IMPORTED_FIELDS:
        doc = _plain_document(raw)
        if doc is not None:
            return doc
    return parse_document(ImportedDocument, raw)


def _length_limits(field_info: Any) -> tuple[int, int]:
    """(min_length, max_length) of a text field of a pydantic model."""
    shortest, longest = 0, 1 << 62
    for constraint in field_info.metadata:
        shortest = getattr(constraint, "min_length", shortest)
        longest = getattr(constraint, "max_length", longest)
    return shortest, longest


_IMPORTED_FIELDS = frozenset(ImportedDocument.model_fields)
_SCALARS = (int, float, bool)
_SHORT_TEXT_FIELDS = tuple(
    (name, *_length_limits(ImportedDocument.model_fields[name]))
    for name in ("language", "distribution_id", "contact_id")
)
_RESPONSE_ID = re.compile(RESPONSE_ID_PATTERN.removeprefix("^").removesuffix("$"))
_AWARE_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _plain_document(raw: dict[str, Any]) -> PlainDocument | None:
    """The document, if `parse_document` would accept it as it is; None when unsure."""
    values = raw.get("values", {})
    embedded = raw.get("embedded_data", {})
    finished = raw.get("finished", True)
    if type(finished) is not bool or not (_plain_mapping(values) and _plain_mapping(embedded)):
        return None
    for name, shortest, longest in _SHORT_TEXT_FIELDS:
        text = raw.get(name)
        # ASCII only: pydantic refuses text with lone surrogates, which JSON can carry.
        if text is not None and not (
            type(text) is str and text.isascii() and shortest <= len(text) <= longest
        ):
            return None
    response_id = raw.get("id")
    if response_id is not None and not (
        type(response_id) is str and _RESPONSE_ID.fullmatch(response_id)
    ):
        return None
    try:
        started = raw.get("started_at")
        started = None if started is None else _AWARE_DATETIME.validate_python(started)
        ended = raw.get("ended_at")
        ended = None if ended is None else _AWARE_DATETIME.validate_python(ended)
    except ValidationError:
        return None
    return PlainDocument(
        values,
        embedded,
        finished,
        started,
        ended,
        raw.get("language"),
        raw.get("distribution_id"),
        raw.get("contact_id"),
        response_id,
    )


def _plain_mapping(mapping: Any) -> bool:
    """Whether `mapping` is a dict with text keys and no NUL in any text it holds: what
    `parse_document` accepts for `values` and `embedded_data`."""
    if type(mapping) is not dict:
        return False
    for key, value in mapping.items():
        if type(key) is not str or "\x00" in key:
            return False
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                return False
        elif value is not None and kind not in _SCALARS and contains_nul(value):
            return False
    return True


# -- the plan --------------------------------------------------------------------------------


class ResponsePlan:
    """How responses to one survey, as its content is now, are checked and stored.

    Made once per survey content and used for any number of responses: the content's rules
    are prepared on first use (a survey page that only needs defaults never prepares them).
    """

    def __init__(self, survey_id: str, content: SurveyContent, language: str) -> None:
        self.survey_id = survey_id
        self.content = content
        self.language = language
        # (name, default) of each declared embedded data field that has a default.
        self._defaults = tuple(
            (f.name, f.default) for f in content.embedded_data if f.default is not None
        )

    @cached_property
    def rules(self) -> ResponseRules:
        """The content's checks, prepared for many responses."""
        return ResponseRules(self.content)

    def problems(self, doc: ResponseDocument | PlainDocument) -> list[dict[str, Any]]:
        """Every problem of a response document against the content; none: it may be stored.

        An unfinished response may leave required questions open; required questions off the
        respondent's route are not required.
        """
        rules = self.rules
        found = rules.check(doc.values, doc.embedded_data, include_required=doc.finished)
        found = without_off_route_requirements(self.content, found, doc.values, doc.embedded_data)
        problems = [p.as_dict() for p in found]
        if doc.started_at and doc.ended_at and doc.ended_at < doc.started_at:
            problems.append(
                problem(None, "bad_dates", "ended_at is before started_at.", "ended_at")
            )
        return problems

    def visible_answers(self, values: Any) -> dict[str, Any]:
        """The answers worth storing: those of shown questions, without empty values."""
        return self.rules.visible_answers(values)

    def with_defaults(self, embedded_data: Any) -> dict[str, Any]:
        """The embedded data with every declared field that has a default and no value filled
        in."""
        filled = dict(embedded_data)
        for name, default in self._defaults:
            if filled.get(name) in (None, ""):
                filled[name] = default
        return filled

    def row(
        self,
        doc: ResponseDocument | PlainDocument,
        *,
        source: Source,
        now: datetime,
        response_id: str | None = None,
    ) -> dict[str, Any]:
        """The column values of a new response from a document `problems` found fine."""
        ended = _utc(doc.ended_at) or (now if doc.finished else None)
        started = _utc(doc.started_at) or ended or now
        return self.new_row(
            response_id=response_id,
            values=self.visible_answers(doc.values),
            embedded_data=self.with_defaults(doc.embedded_data),
            started_at=started,
            ended_at=ended,
            finished=doc.finished,
            source=source,
            channel="import" if source == "import" else "api",
            language=doc.language or self.language,
            distribution_id=doc.distribution_id,
            contact_id=doc.contact_id,
            now=now,
        )

    def new_row(
        self,
        *,
        values: dict[str, Any],
        embedded_data: dict[str, Any],
        started_at: datetime,
        ended_at: datetime | None,
        finished: bool,
        source: Source,
        channel: str,
        now: datetime,
        language: str | None = None,
        distribution_id: str | None = None,
        contact_id: str | None = None,
        response_id: str | None = None,
    ) -> dict[str, Any]:
        """The column values of a new response whose answers and embedded data are final."""
        return {
            "id": response_id or new_response_id(),
            "survey_id": self.survey_id,
            "values": values,
            "embedded_data": embedded_data,
            "started_at": started_at,
            "ended_at": ended_at,
            "duration_s": duration(started_at, ended_at),
            "finished": finished,
            "source": source,
            "channel": channel,
            "language": language or self.language,
            "distribution_id": distribution_id,
            "contact_id": contact_id,
            "created_at": now,
            "updated_at": now,
        }


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)
