"""The response table: the reference product's CSV layout, written and read, as pure functions.

Three header rows, then one row per response:

1. the column name (``ResponseId``, ``QID1``, ``QID5_2``, ``CaseId``),
2. a label a person reads (the question text, sub-parts joined by `` - ``),
3. ``{"ImportId": "..."}`` (with ``"timeZone"`` on date columns), which is what reading maps by.

Columns: the metadata (``StartDate``, ``EndDate``, ``Status``, ``Duration (in seconds)``,
``Finished``, ``RecordedDate``, ``ResponseId``, ``DistributionChannel``, ``UserLanguage``, and
cxloop's ``DistributionId`` and ``ContactId``), then the declared embedded data fields and what
the survey flow stores (randomizer assignments, values it sets, ``Q_TerminateFlag``), then the
questions:

=================  ================================================  ==========================
type               columns                                           cell
=================  ================================================  ==========================
nps, rating        ``QID1`` (a slider with a ``choice_id``: ``QID1_1``)  the number
single choice      ``QID2``, ``QID2_4_TEXT`` per text box            recode of the choice
multiple choice    ``QID3``, ``QID3_4_TEXT`` per text box            recodes, comma-joined
text entry         ``QID4_TEXT``                                     the text
matrix             ``QID5_<row>``, ``QID5_<row>_TEXT`` per text box  recode of the scale point
descriptive        none
=================  ================================================  ==========================

A question with an ``export_tag`` is named by it in row 1, as the reference product names its
columns: ``Age`` (single choice, number, text entry: the tag alone), ``Age_4_TEXT``, ``Trust_2``
(matrix row 2), ``Ease_1`` (a slider); row 3 keeps the QID-based ImportIds, so reading maps by
them as before.

Choices and scale points are written as their recodes when every one of the question's has a
recode and no two share one (the reference product's numeric export); otherwise as their ids,
so that reading a file back always finds the same choice. Reading also accepts choice texts (a
"choice text" export), files with a single header row, and files from the reference product
(unknown columns such as ``IPAddress`` are ignored and listed).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cxloop.domain.answers import AnswerProblem, text_key
from cxloop.domain.document_paths import shorten
from cxloop.domain.survey_content import (
    Choice,
    ChoiceQuestion,
    DescriptiveQuestion,
    MatrixQuestion,
    Question,
    RatingQuestion,
    ScalePoint,
    ScaleQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    TextEntryQuestion,
)

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_SUB_COLUMN_RE = re.compile(r"^(QID[1-9][0-9]{0,8})_([A-Za-z0-9-]{1,64})$")


class ResponseRecord(Protocol):
    """What a stored response offers the table (the ORM model has all of it)."""

    id: str
    values: Mapping[str, Any]
    embedded_data: Mapping[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration_s: int | None
    finished: bool
    source: str
    language: str
    distribution_id: str | None
    contact_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Column:
    """One column: its name (row 1), label (row 2) and ImportId (row 3)."""

    name: str
    label: str
    import_id: str
    is_date: bool = False
    # An embedded data field whose name is also another column's: row 3 says which it is.
    is_embedded_data: bool = False


# Metadata columns: (name, label, ImportId, is_date)
_METADATA = (
    ("StartDate", "Start Date", "startDate", True),
    ("EndDate", "End Date", "endDate", True),
    ("Status", "Response Type", "status", False),
    ("Duration (in seconds)", "Duration (in seconds)", "duration", False),
    ("Finished", "Finished", "finished", False),
    ("RecordedDate", "Recorded Date", "recordedDate", True),
    ("ResponseId", "Response ID", "_recordId", False),
    ("DistributionChannel", "Distribution Channel", "distributionChannel", False),
    ("UserLanguage", "User Language", "userLanguage", False),
    ("DistributionId", "Distribution ID", "distributionId", False),
    ("ContactId", "Contact ID", "contactId", False),
)
METADATA_COLUMNS = tuple(Column(n, label, i, d) for n, label, i, d in _METADATA)
# What reading does with each metadata column (others are recognised and not needed).
_META_TARGETS = MappingProxyType(
    {
        "startDate": "started_at",
        "endDate": "ended_at",
        "finished": "finished",
        "_recordId": "id",
        "userLanguage": "language",
        "distributionId": "distribution_id",
        "contactId": "contact_id",
        "duration": "duration",
    }
)
STATUS_IMPORTED = "4"
STATUS_NORMAL = "0"


# -- choices ---------------------------------------------------------------------------------


class _Options:
    """Choices (or scale points) of one question, written as recodes or ids, read back as either
    (or as their texts)."""

    def __init__(self, items: Sequence[Choice | ScalePoint]) -> None:
        recodes = [item.effective_recode for item in items]
        self.by_id = {item.id: item for item in items}
        self.uses_recodes = all(r is not None for r in recodes) and len(
            {float(r) for r in recodes if r is not None}
        ) == len(recodes)
        self.by_recode = (
            {float(r): item.id for item, r in zip(items, recodes, strict=True) if r is not None}
            if self.uses_recodes
            else {}
        )
        labels: dict[str, list[str]] = {}
        for item in items:
            labels.setdefault(item.plain_text().casefold(), []).append(item.id)
        # A text names a choice only when no other choice has the same text.
        self.by_label = {text: ids[0] for text, ids in labels.items() if len(ids) == 1 and text}

    def write(self, item_id: Any) -> str:
        item = self.by_id.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            return _plain(item_id)
        if self.uses_recodes:
            return _number_text(item.effective_recode)
        return item.id

    def read(self, cell: str) -> str | None:
        text = cell.strip()
        if self.uses_recodes and _NUMBER_RE.fullmatch(text):
            found = self.by_recode.get(float(text))
            if found is not None:
                return found
        if text in self.by_id:
            return text
        return self.by_label.get(text.casefold())

    def read_many(self, cell: str) -> list[str] | None:
        """Comma-joined values; a choice text that itself holds commas is still found."""
        parts = cell.split(",")
        chosen: list[str] = []
        start = 0
        while start < len(parts):
            # Longest run of parts first, so "Yes, often" beats "Yes".
            for end in range(len(parts), start, -1):
                found = self.read(",".join(parts[start:end]))
                if found is not None:
                    chosen.append(found)
                    start = end
                    break
            else:
                return None
        return chosen


# -- the table -------------------------------------------------------------------------------


@dataclass
class _Cell:
    """How one column's cell is written from a response and read back into a document."""

    column: Column
    kind: str  # meta | embedded | number | choice | choices | text | row | rows | box
    qid: str | None = None
    key: str | None = None  # the answer key (QID, QID_x_TEXT) or embedded field, or row id
    options: _Options | None = None


class ResponseTable:
    """The columns of one survey's response table, and how cells map to answers."""

    def __init__(self, content: SurveyContent) -> None:
        self.content = content
        self._cells: list[_Cell] = [_Cell(c, "meta", key=c.import_id) for c in METADATA_COLUMNS]
        questions = [cell for q in content.questions for cell in _question_cells(q)]
        taken = {
            key for c in self._cells + questions for key in (c.column.name, c.column.import_id)
        }
        # The declared fields, then what the survey flow stores (randomizer assignments...).
        names = [item.name for item in content.embedded_data] + content.flow_data_names()
        for name in names:
            column = Column(name, name, name, is_embedded_data=name in taken)
            self._cells.append(_Cell(column, "embedded", key=name))
        self._cells.extend(questions)

    @property
    def columns(self) -> list[Column]:
        return [cell.column for cell in self._cells]

    def header_rows(self) -> list[list[str]]:
        """The three header rows."""
        return [
            [c.name for c in self.columns],
            [c.label for c in self.columns],
            [_import_id_json(c) for c in self.columns],
        ]

    def row(self, response: ResponseRecord) -> list[str]:
        """One response as cells, in column order. Never raises on odd stored values."""
        values = response.values or {}
        embedded = response.embedded_data or {}
        cells: list[str] = []
        for cell in self._cells:
            if cell.kind == "meta":
                cells.append(_meta_cell(cell.column.import_id, response))
            elif cell.kind == "embedded":
                cells.append(_plain(embedded.get(cell.key)))
            else:
                cells.append(_answer_cell(cell, values))
        return cells

    def reader(self, header_rows: Sequence[Sequence[str]]) -> RowReader:
        """A reader for data rows under these header rows (one, or three with ImportIds)."""
        return RowReader(self, header_rows)


def _question_cells(question: Question) -> list[_Cell]:
    qid = question.qid
    label = question.plain_text() or qid
    # Row 1 names the columns by the question's export tag when it has one, as the reference
    # product does (Age, Age_4_TEXT, Trust_2); row 3's ImportIds always stay QID-based.
    tag = question.export_tag
    cells: list[_Cell] = []
    if isinstance(question, DescriptiveQuestion):
        return cells
    if isinstance(question, RatingQuestion) and question.choice_id is not None:
        # A slider keeps the reference's column name, QID3_1 (question and slider choice).
        import_id = f"{qid}_{question.choice_id}"
        name = f"{tag}_{question.choice_id}" if tag else import_id
        cells.append(_Cell(Column(name, label, import_id), "number", qid, qid))
    elif isinstance(question, ScaleQuestion):
        cells.append(_Cell(Column(tag or qid, label, qid), "number", qid, qid))
    elif isinstance(question, TextEntryQuestion):
        import_id = f"{qid}_TEXT"
        cells.append(_Cell(Column(tag or import_id, label, import_id), "text", qid, qid))
    elif isinstance(question, ChoiceQuestion):
        kind = "choice" if isinstance(question, SingleChoiceQuestion) else "choices"
        options = _Options(question.choices)
        cells.append(_Cell(Column(tag or qid, label, qid), kind, qid, qid, options))
        for choice in question.choices:
            if choice.allow_text_entry:
                key = text_key(qid, choice.id)
                name = f"{tag}_{choice.id}_TEXT" if tag else key
                text = f"{label} - {choice.plain_text() or choice.id} - Text"
                cells.append(_Cell(Column(name, text, key), "box", qid, key))
    elif isinstance(question, MatrixQuestion):
        options = _Options(question.scale)
        kind = "rows" if question.multiple_answers else "row"
        for row in question.rows:
            import_id = f"{qid}_{row.id}"
            name = f"{tag}_{row.id}" if tag else import_id
            text = f"{label} - {row.plain_text() or row.id}"
            cells.append(_Cell(Column(name, text, import_id), kind, qid, row.id, options))
            if row.allow_text_entry:
                key = text_key(qid, row.id)
                box = f"{tag}_{row.id}_TEXT" if tag else key
                cells.append(_Cell(Column(box, f"{text} - Text", key), "box", qid, key))
    return cells


def _import_id_json(column: Column) -> str:
    body: dict[str, Any] = {"ImportId": column.import_id}
    if column.is_date:
        body["timeZone"] = "UTC"
    if column.is_embedded_data:
        body["embeddedData"] = True
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _meta_cell(import_id: str, response: ResponseRecord) -> str:
    if import_id == "startDate":
        return format_date(response.started_at)
    if import_id == "endDate":
        return format_date(response.ended_at)
    if import_id == "status":
        return STATUS_IMPORTED if response.source == "import" else STATUS_NORMAL
    if import_id == "duration":
        return "" if response.duration_s is None else str(response.duration_s)
    if import_id == "finished":
        return "1" if response.finished else "0"
    if import_id == "recordedDate":
        return format_date(response.created_at)
    if import_id == "_recordId":
        return response.id
    if import_id == "distributionChannel":
        return distribution_channel(response)
    if import_id == "userLanguage":
        return response.language or ""
    if import_id == "distributionId":
        return response.distribution_id or ""
    if import_id == "contactId":
        return response.contact_id or ""
    return ""


def distribution_channel(response: ResponseRecord) -> str:
    """How the response came: anonymous (the open link), email (a personal link), api, import."""
    if response.source == "web":
        return "email" if response.distribution_id or response.contact_id else "anonymous"
    return response.source


def _answer_cell(cell: _Cell, values: Mapping[str, Any]) -> str:
    if cell.kind in ("row", "rows"):
        matrix = values.get(cell.qid or "")
        chosen = matrix.get(cell.key) if isinstance(matrix, Mapping) else None
        if chosen is None:
            return ""
        if cell.kind == "rows" and isinstance(chosen, list):
            assert cell.options is not None
            return ",".join(cell.options.write(v) for v in chosen)
        assert cell.options is not None
        return cell.options.write(chosen)
    value = values.get(cell.key or "")
    if value is None:
        return ""
    if cell.kind == "choice":
        assert cell.options is not None
        return cell.options.write(value)
    if cell.kind == "choices" and isinstance(value, list):
        assert cell.options is not None
        return ",".join(cell.options.write(v) for v in value)
    return _plain(value)


def format_date(moment: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, or an empty cell."""
    return "" if moment is None else moment.astimezone(UTC).strftime(DATE_FORMAT)


def _number_text(value: int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number_text(value)
    return json.dumps(value, ensure_ascii=False)  # stored data that no longer fits its column


# -- reading ---------------------------------------------------------------------------------


@dataclass
class RowReader:
    """Reads data rows of a CSV whose header rows were given; see `read`."""

    table: ResponseTable
    header_rows: Sequence[Sequence[str]]
    ignored_columns: list[str] = field(default_factory=list)
    _plan: list[tuple[int, _Cell, ZoneInfo | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [_clean_header(n) for n in (self.header_rows[0] if self.header_rows else [])]
        import_ids: list[tuple[str | None, str | None, bool]] = [(None, None, False)] * len(names)
        if len(self.header_rows) >= 2:  # the last header row holds the ImportIds
            import_ids = [_parse_import_id(c) for c in self.header_rows[-1]]
            import_ids += [(None, None, False)] * (len(names) - len(import_ids))
        embedded = {c.key: c for c in self.table._cells if c.kind == "embedded"}
        by_key: dict[str, _Cell] = {}
        for cell in self.table._cells:
            if cell.kind == "embedded":
                continue
            by_key.setdefault(cell.column.import_id, cell)
            by_key.setdefault(cell.column.name, cell)
        for cell in self.table._cells:  # embedded data last: a question or metadata name wins
            if cell.kind == "embedded":
                by_key.setdefault(cell.column.name, cell)
        placed: dict[int, tuple[int, str, _Cell, ZoneInfo | None]] = {}  # id(cell) -> column
        unmapped: list[tuple[int, str, ZoneInfo | None]] = []
        for index, name in enumerate(names):
            import_id, zone_name, is_embedded_data = import_ids[index]
            key = import_id or name
            zone = _zone(zone_name)
            cell = embedded.get(key) if is_embedded_data else by_key.get(key) or by_key.get(name)
            if cell is None:
                unmapped.append((index, key, zone))
                continue
            if id(cell) in placed:  # a name used twice: the last column is read
                earlier, earlier_key, _, earlier_zone = placed[id(cell)]
                unmapped.append((earlier, earlier_key, earlier_zone))
            placed[id(cell)] = (index, key, cell, zone)
        self._plan = [(index, cell, zone) for index, _, cell, zone in placed.values()]
        self._alias_sliders(sorted(unmapped), set(placed))

    def _alias_sliders(
        self, unmapped: list[tuple[int, str, ZoneInfo | None]], used: set[int]
    ) -> None:
        # The reference product writes a slider as QID7_1; cxloop imports a one-slider question
        # as a rating question with the column QID7.
        ratings = {
            q.qid: cell
            for cell in self.table._cells
            if cell.kind == "number" and id(cell) not in used
            for q in [self.table.content.question(cell.qid or "")]
            if isinstance(q, RatingQuestion)
        }
        for index, key, zone in unmapped:
            match = _SUB_COLUMN_RE.match(key)
            cell = ratings.pop(match[1], None) if match else None
            if cell is None:
                if key.strip():
                    self.ignored_columns.append(key)
                continue
            self._plan.append((index, cell, zone))

    def read(self, cells: Sequence[str]) -> tuple[dict[str, Any], list[AnswerProblem]]:
        """A response document ({values, embedded_data, id, started_at, ...}) and the problems
        of cells that could not be read (the answers themselves are checked later)."""
        document: dict[str, Any] = {"values": {}, "embedded_data": {}}
        problems: list[AnswerProblem] = []
        values: dict[str, Any] = document["values"]
        matrices: dict[str, dict[str, Any]] = {}
        for index, cell, zone in self._plan:
            raw = cells[index] if index < len(cells) else ""
            if raw == "" or raw.isspace():
                continue
            kind = cell.kind
            if kind == "meta":
                problem = _read_meta(cell, raw, zone, document)
                if problem:
                    problems.append(problem)
            elif kind == "embedded":
                document["embedded_data"][cell.key] = raw
            else:
                answer = _read_answer(cell, raw)
                if answer is None:
                    problems.append(_bad(cell, raw, _EXPECTED[kind]))
                elif kind in ("row", "rows"):
                    assert cell.qid is not None
                    matrices.setdefault(cell.qid, {})[cell.key] = answer
                else:
                    values[cell.key or ""] = answer
        values.update(matrices)
        _fill_start_from_duration(document)
        return document, problems


# What a cell of each answer kind must hold: the end of the problem when it does not. Text and
# box cells hold any text.
_EXPECTED = MappingProxyType(
    {
        "number": "a whole number",
        "choice": "one of the question's choices",
        "choices": "the question's choices, comma-separated",
        "row": "a point on the matrix's scale",
        "rows": "a point on the matrix's scale",
    }
)


def _read_answer(cell: _Cell, raw: str) -> Any:
    """The answer an (answer) cell holds, or None when it cannot be read."""
    if cell.kind == "number":
        return _whole_number(raw)
    if cell.kind in ("text", "box"):
        return raw
    assert cell.options is not None
    if cell.kind in ("choice", "row"):
        return cell.options.read(raw)
    return cell.options.read_many(raw)


def _read_meta(
    cell: _Cell, raw: str, zone: ZoneInfo | None, document: dict[str, Any]
) -> AnswerProblem | None:
    target = _META_TARGETS.get(cell.column.import_id)
    if target is None:
        return None
    if target in ("started_at", "ended_at"):
        moment = parse_date(raw, zone)
        if moment is None:
            return AnswerProblem(
                None, "bad_cell",
                f"{cell.column.name}: {_quote(raw)} is not a date; use YYYY-MM-DD HH:MM:SS.",
                cell.column.name,
            )  # fmt: skip
        document[target] = moment
    elif target == "finished":
        flag = {"1": True, "0": False, "true": True, "false": False}.get(raw.strip().lower())
        if flag is None:
            return AnswerProblem(
                None, "bad_cell",
                f"Finished: {_quote(raw)} is not 1, 0, true or false.", "Finished",
            )  # fmt: skip
        document["finished"] = flag
    elif target == "duration":
        duration = _whole_number(raw)
        if duration is not None and duration >= 0:
            document["_duration"] = duration
    else:
        document[target] = raw.strip()
    return None


def _fill_start_from_duration(document: dict[str, Any]) -> None:
    duration = document.pop("_duration", None)
    if "started_at" not in document and duration is not None and "ended_at" in document:
        document["started_at"] = document["ended_at"] - timedelta(seconds=duration)


def parse_date(text: str, zone: ZoneInfo | None = None) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` (in ``zone``, else UTC) or ISO 8601 with an offset; None if not."""
    candidate = text.strip()
    if len(candidate) > 40:
        return None
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return moment.astimezone(UTC)


def _whole_number(text: str) -> int | None:
    candidate = text.strip()
    if not _NUMBER_RE.fullmatch(candidate) or len(candidate) > 30:
        return None
    number = float(candidate)
    if not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def _bad(cell: _Cell, raw: str, expected: str) -> AnswerProblem:
    return AnswerProblem(
        cell.qid,
        "bad_cell",
        f"{cell.column.name}: {_quote(raw)} is not {expected}.",
    )


def _clean_header(name: str) -> str:
    return name.lstrip("\ufeff").strip()


def _parse_import_id(cell: str) -> tuple[str | None, str | None, bool]:
    """(ImportId, timeZone, whether it is marked as embedded data) of a row-3 cell."""
    text = cell.strip()
    if not text.startswith("{") or len(text) > 1000:
        return None, None, False
    try:
        body = json.loads(text)
    except ValueError:
        return None, None, False
    if not isinstance(body, dict) or not isinstance(body.get("ImportId"), str):
        return None, None, False
    zone = body.get("timeZone")
    is_embedded = body.get("embeddedData") is True
    return body["ImportId"], zone if isinstance(zone, str) else None, is_embedded


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or name.upper() in ("UTC", "Z"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def header_row_count(rows: Iterable[Sequence[str]]) -> int:
    """How many of the first rows are headers: 3 when the third holds ImportIds (the reference
    product's layout), 2 when the second does (its legacy layout), else 1."""
    first = list(rows)[:3]
    if len(first) >= 3 and first[2] and _parse_import_id(first[2][0])[0] is not None:
        return 3
    if len(first) >= 2 and first[1] and _parse_import_id(first[1][0])[0] is not None:
        return 2
    return 1


def _quote(value: str, limit: int = 40) -> str:
    return f"'{shorten(value, limit)}'"
