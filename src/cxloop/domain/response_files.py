"""Reading responses to import from a file (CSV, JSON lines) or a JSON array, one row at a time.

Pure, like `contacts_import` beside it: each reader yields one `SourceRow` per record, with
where it was (line number, or array index) and the document read from it, or the problems that
kept it from being read. Nothing here raises on bad input, so that one bad line never stops an
import; whether a document is a valid response is decided later, against the survey's content,
by the response plan (`services.responses.plan`).

CSV: the reference product's layout (`response_csv`): one header row, or its three (names,
labels, ImportIds). JSON lines: one response object per line; blank lines are skipped.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TextIO

from cxloop.domain.response_csv import ResponseTable, header_row_count
from cxloop.domain.survey_content import SurveyContent

# A file's suffix and the format it holds.
IMPORT_FORMATS = MappingProxyType({".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"})
# Unknown CSV columns named in the warning; the rest are counted.
SHOWN_IGNORED_COLUMNS = 20


@dataclass(frozen=True)
class SourceRow:
    """One row to import: where it was (line number, or array index), the document read from
    it (None when it could not be read) and the problems found while reading it."""

    position: int
    document: Any
    problems: list[dict[str, Any]] = field(default_factory=list)


def row_problem(code: str, message: str) -> dict[str, Any]:
    """A problem of a whole row, in the shape of a response's problems."""
    return {"qid": None, "code": code, "message": message, "field": None}


def rows_from_array(items: Iterable[Any]) -> Iterator[SourceRow]:
    """Rows of a JSON array posted to the API; positions are the array indexes."""
    for index, item in enumerate(items):
        yield SourceRow(index, item)


def read_jsonl(stream: Iterable[str]) -> Iterator[SourceRow]:
    """One response object per line (blank lines are skipped); positions are line numbers."""
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except (ValueError, RecursionError) as exc:
            message = f"This line is not valid JSON: {exc}"[:300]
            yield SourceRow(line_number, None, [row_problem("bad_json", message)])
            continue
        yield SourceRow(line_number, document)


def read_csv(
    stream: TextIO | Iterable[str], content: SurveyContent, warnings: list[str]
) -> Iterator[SourceRow]:
    """The data rows of a response CSV, each with the line it starts on.

    Header rows: one, or the reference product's three (names, labels, ImportIds). Columns the
    survey does not have are ignored and named in `warnings`.
    """
    reader = csv.reader(stream)
    table = ResponseTable(content)
    rows = _csv_records(reader)
    header: list[tuple[int, list[str] | None]] = []
    for record in rows:
        header.append(record)
        if len(header) == 3:
            break
    if not header:
        return
    count = header_row_count([cells for _, cells in header if cells is not None])
    row_reader = table.reader([cells for _, cells in header[:count]])  # type: ignore[misc]
    ignored = row_reader.ignored_columns
    if ignored:
        shown = ", ".join(ignored[:SHOWN_IGNORED_COLUMNS])
        more = (
            f" and {len(ignored) - SHOWN_IGNORED_COLUMNS} more"
            if len(ignored) > SHOWN_IGNORED_COLUMNS
            else ""
        )
        warnings.append(f"Columns this survey does not have were ignored: {shown}{more}.")
    for line, cells in itertools.chain(header[count:], rows):
        if cells is None:
            yield SourceRow(line, None, [row_problem("bad_csv", "This line is not valid CSV.")])
            continue
        if not any(cell.strip() for cell in cells):
            continue
        document, problems = row_reader.read(cells)
        yield SourceRow(line, document, [p.as_dict() for p in problems])


def _csv_records(reader: Any) -> Iterator[tuple[int, list[str] | None]]:
    """(first line, cells) per record; cells is None for a record the csv module refused."""
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield start, None
            start = reader.line_num + 1
            continue
        yield start, cells
        start = reader.line_num + 1
