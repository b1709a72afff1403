"""Reading contacts from a CSV or JSON-lines file, one row at a time.

Pure: it iterates text lines and yields one `ImportRow` per record, with the line it starts on
and either the contact's fields (the keyword arguments of the directory's `ContactFields`) or
the problems that kept it from being read. Nothing here raises on bad input: a file's problems
are reported as rows (or, for the header, as `HeaderProblem`) so that one bad line never stops
an import. Whether an email is valid is decided later, by the directory, row by row.

CSV: a header row, then one contact per record. Known columns (in many spellings: "Email",
"E-mail Address", "First Name", "FirstName", "ExternalDataReference"...) fill the contact's
fields; every other column becomes embedded data under its header as written. Empty cells never
overwrite what is stored.

JSON lines: one object per line with the same names; `embedded_data` (an object) and any other
key become embedded data.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# The contact's own fields, and the header spellings that mean them (compared after lower-casing
# and dropping spaces, underscores, hyphens and dots).
FIELD_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "email": ("email", "emailaddress", "mail", "e-mail", "recipientemail"),
    "first_name": ("firstname", "givenname", "forename", "first", "recipientfirstname"),
    "last_name": ("lastname", "surname", "familyname", "last", "recipientlastname"),
    "phone": ("phone", "phonenumber", "telephone", "mobile", "mobilephone", "tel"),
    "language": ("language", "lang", "locale"),
    "external_ref": (
        "externalref", "externalreference", "externaldatareference", "externalid",
        "externaldataref", "extref",
    ),
})  # fmt: skip
TEXT_FIELDS = tuple(FIELD_ALIASES)
EMBEDDED_KEY = "embedded_data"

MAX_LINE_CHARS = 100_000  # a contact fits in far less; a longer line is refused, not parsed
MAX_COLUMNS = 500

_SEPARATORS = re.compile(r"[\s_.\-]+")
_ALIAS_TO_FIELD = MappingProxyType(
    {
        _SEPARATORS.sub("", alias): name
        for name, aliases in FIELD_ALIASES.items()
        for alias in aliases
    }
)


@dataclass(frozen=True)
class ImportRow:
    """One record of the file: the line it starts on, and its fields or why it has none."""

    line: int
    fields: dict[str, Any] | None
    problems: list[dict[str, str]] = field(default_factory=list)


class HeaderProblem(Exception):
    """The file cannot be read at all (no header, no email column...): nothing is imported."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Column:
    """A CSV column: the contact field it fills, or the embedded data field it names."""

    index: int
    header: str
    field: str | None  # a name of TEXT_FIELDS, or None for embedded data


@dataclass
class Header:
    columns: list[Column]
    width: int
    warnings: list[str]


def field_for_header(name: str) -> str | None:
    """The contact field a column header means (`"First Name"` → `first_name`), or None."""
    key = _SEPARATORS.sub("", (name or "").strip().lower())
    return _ALIAS_TO_FIELD.get(key)


def map_header(cells: list[str]) -> Header:
    """The columns of a CSV header row. Raises HeaderProblem when no column holds the email.

    A column named twice is read once (the first); blank headers are ignored; both are named
    in the warnings.
    """
    if len(cells) > MAX_COLUMNS:
        raise HeaderProblem(
            "too_many_columns", f"The header has {len(cells)} columns; at most {MAX_COLUMNS}."
        )
    columns: list[Column] = []
    seen: dict[str, int] = {}
    warnings: list[str] = []
    blanks = 0
    for index, raw in enumerate(cells):
        header = " ".join(raw.replace("\ufeff", "").split())
        if not header:
            blanks += 1
            continue
        target = field_for_header(header)
        key = target or f"embedded:{header}"
        if key in seen:
            warnings.append(
                f"Column {index + 1} ({header!r}) repeats column {seen[key] + 1}; it was ignored."
            )
            continue
        seen[key] = index
        columns.append(Column(index, header, target))
    if blanks:
        warnings.append(f"{blanks} column(s) without a header were ignored.")
    if "email" not in seen:
        found = ", ".join(repr(c.header) for c in columns[:10]) or "none"
        raise HeaderProblem(
            "no_email_column",
            f"The header row has no email column (columns found: {found}). "
            "Name one column 'email'.",
        )
    return Header(columns, len(cells), warnings)


def read_csv(lines: Iterable[str], warnings: list[str] | None = None) -> Iterator[ImportRow]:
    """The contacts of a CSV file given as text lines (read with newline="" so that quoted
    fields keep their line breaks). Raises HeaderProblem (before the first row) if the header
    cannot be used; `warnings` collects what was ignored."""
    feed = _LineFeed(lines)
    reader = csv.reader(feed)
    records = _records(reader, feed)
    header_line, header_cells, header_problem = _first_record(records)
    if header_cells is None and header_problem is None:
        raise HeaderProblem("empty", "The file is empty: it needs a header row and contacts.")
    if header_problem is not None or header_cells is None:
        raise HeaderProblem(
            header_problem["code"] if header_problem else "bad_header",
            f"The header row (line {header_line}) cannot be read: "
            f"{header_problem['message'] if header_problem else 'not CSV'}",
        )
    header = map_header(header_cells)
    if warnings is not None:
        warnings.extend(header.warnings)
    saw_row = False
    for line, cells, problem in records:
        if problem is not None:
            saw_row = True
            yield ImportRow(line, None, [problem])
            continue
        assert cells is not None
        if not any(cell.strip() for cell in cells):
            continue
        saw_row = True
        yield _row_of_cells(line, cells, header)
    if not saw_row and warnings is not None:
        warnings.append("The file has a header but no contacts.")


def read_jsonl(lines: Iterable[str]) -> Iterator[ImportRow]:
    """The contacts of a JSON-lines file: one object per line; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_CHARS:
            yield ImportRow(number, None, [_too_long()])
            continue
        if _has_undecodable(line):
            yield ImportRow(number, None, [_not_utf8()])
            continue
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield ImportRow(number, None, [_problem("bad_json", f"Not valid JSON: {exc}"[:300])])
            continue
        yield row_of_object(number, document)


def row_of_object(line: int, document: Any) -> ImportRow:
    """A JSON object as a contact row: known names (any spelling) fill fields, the rest (and
    `embedded_data`) become embedded data."""
    if not isinstance(document, dict):
        return ImportRow(
            line, None, [_problem("not_an_object", "Each line must hold one JSON object.")]
        )
    values: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    embedded: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for key, value in document.items():
        if key == EMBEDDED_KEY:
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.append(_problem("bad_embedded_data", "embedded_data must be an object."))
                continue
            for name, item in value.items():
                _add_embedded(embedded, name, item, problems)
            continue
        target = field_for_header(key)
        if target is None:
            _add_embedded(embedded, key, value, problems)
        elif value is None:
            continue
        elif isinstance(value, str) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            values[target] = str(value)
        else:
            problems.append(_problem("bad_value", f"{key!r} must be text, not {_kind(value)}."))
    if problems:
        return ImportRow(line, None, problems)
    return ImportRow(line, {**values, "embedded_data": embedded})


def _add_embedded(
    embedded: dict[str, Any], name: Any, value: Any, problems: list[dict[str, str]]
) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str | int | float | bool):
        problems.append(
            _problem(
                "bad_value",
                f"Embedded data {str(name)[:60]!r} must be text, a number or a boolean, "
                f"not {_kind(value)}.",
            )
        )
        return
    embedded[str(name)] = value


def _row_of_cells(line: int, cells: list[str], header: Header) -> ImportRow:
    if any(cell.strip() for cell in cells[header.width :]):
        message = f"This row has {len(cells)} cells; the header has {header.width} columns."
        return ImportRow(line, None, [_problem("too_many_cells", message)])
    values: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    embedded: dict[str, Any] = {}
    for column in header.columns:
        cell = cells[column.index] if column.index < len(cells) else ""
        if column.field is not None:
            values[column.field] = cell
        elif cell.strip():
            embedded[column.header] = cell
    return ImportRow(line, {**values, "embedded_data": embedded})


class _LineFeed:
    """Lines for the csv module: counts them, and swaps a line that is too long or not UTF-8
    for an empty one, noting the problem for the record it belongs to."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.problem: dict[str, str] | None = None

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        if len(line) > MAX_LINE_CHARS:
            self.problem = self.problem or _too_long()
            return "\n"
        if _has_undecodable(line):
            self.problem = self.problem or _not_utf8()
            return "\n"
        if "\x00" in line:  # the csv module refuses NUL; no database stores it either
            return line.replace("\x00", "")
        return line


def _records(
    reader: Any, feed: _LineFeed
) -> Iterator[tuple[int, list[str] | None, dict[str, str] | None]]:
    """(first line, cells, problem) per CSV record; never raises."""
    start = 1
    while True:
        try:
            cells: list[str] | None = next(reader)
            problem = None
        except StopIteration:
            if feed.problem is not None:  # a last line that was too long or not UTF-8
                yield start, None, feed.problem
            return
        except csv.Error as exc:
            cells, problem = None, _problem("bad_csv", f"Not valid CSV: {exc}"[:300])
        if feed.problem is not None:
            cells, problem, feed.problem = None, feed.problem, None
        yield start, cells, problem
        start = reader.line_num + 1


def _first_record(
    records: Iterator[tuple[int, list[str] | None, dict[str, str] | None]],
) -> tuple[int, list[str] | None, dict[str, str] | None]:
    """The header: the first record that is not blank (or that could not be read)."""
    for line, cells, problem in records:
        if problem is not None or any(cell.strip() for cell in cells or ()):
            return line, cells, problem
    return 0, None, None


def _has_undecodable(text: str) -> bool:
    # Bytes that are not UTF-8 arrive as lone surrogates (errors="surrogateescape").
    return any("\ud800" <= char <= "\udfff" for char in text)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), "null")


def _problem(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _too_long() -> dict[str, str]:
    return _problem("line_too_long", f"The line is longer than {MAX_LINE_CHARS:,} characters.")


def _not_utf8() -> dict[str, str]:
    return _problem(
        "not_utf8", "The line is not UTF-8 text: save the file as UTF-8 (Excel: CSV UTF-8)."
    )
