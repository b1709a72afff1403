"""Reading contacts from CSV and JSON lines: header spellings, embedded data, bad rows by line."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.contacts_import import (
    MAX_LINE_CHARS,
    HeaderProblem,
    ImportRow,
    field_for_header,
    map_header,
    read_csv,
    read_jsonl,
)


def csv_rows(text: str, warnings: list[str] | None = None) -> list[ImportRow]:
    return list(read_csv(io.StringIO(text, newline=""), warnings))


def from_bytes(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("email", "email"),
        ("Email", "email"),
        ("E-mail Address", "email"),
        ("EMAIL_ADDRESS", "email"),
        ("First Name", "first_name"),
        ("FirstName", "first_name"),
        ("first_name", "first_name"),
        ("Last Name", "last_name"),
        ("Surname", "last_name"),
        ("Phone Number", "phone"),
        ("Language", "language"),
        ("ExternalDataReference", "external_ref"),
        ("External Reference", "external_ref"),
        ("external_ref", "external_ref"),
        ("CaseId", None),
        ("", None),
    ],
)
def test_header_spellings_map_to_fields(header: str, field: str | None) -> None:
    assert field_for_header(header) == field


def test_known_columns_fill_fields_and_others_become_embedded_data() -> None:
    warnings: list[str] = []
    rows = csv_rows(
        "\ufeffEmail,First Name,LastName,ExternalDataReference,CaseId,Region\r\n"
        "ann@example.com,Ann,Lee,003A,500X,\r\n"
        '"bob@example.com","Bob ""B""",Stone,,,"North\r\nEast"\r\n',
        warnings,
    )
    assert [r.line for r in rows] == [2, 3]
    assert rows[0].fields == {
        "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "phone": "",
        "language": "", "external_ref": "003A", "embedded_data": {"CaseId": "500X"},
    }  # fmt: skip
    assert rows[1].fields is not None
    assert rows[1].fields["first_name"] == 'Bob "B"'
    assert rows[1].fields["embedded_data"] == {"Region": "North\r\nEast"}
    assert warnings == []


def test_line_numbers_count_multiline_records_and_skip_blank_lines() -> None:
    rows = csv_rows('email,note\n\na@example.com,"one\ntwo"\n\nb@example.com,x\n')
    assert [(r.line, r.fields["email"]) for r in rows if r.fields] == [
        (3, "a@example.com"),
        (6, "b@example.com"),
    ]


def test_row_with_more_cells_than_header_is_refused_with_its_line() -> None:
    rows = csv_rows("email,first_name\na@example.com,Ann,extra\nb@example.com,Bo,\n")
    assert rows[0].fields is None and rows[0].line == 2
    assert rows[0].problems[0]["code"] == "too_many_cells"
    assert rows[1].fields is not None  # a trailing empty cell is harmless


def test_repeated_and_blank_columns_are_ignored_with_warnings() -> None:
    warnings: list[str] = []
    rows = csv_rows("email,Email,,Plan\na@example.com,b@example.com,zzz,gold\n", warnings)
    assert rows[0].fields is not None and rows[0].fields["email"] == "a@example.com"
    assert rows[0].fields["embedded_data"] == {"Plan": "gold"}
    assert any("repeats column 1" in w for w in warnings)
    assert any("without a header" in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("\n\n  \n", "empty"),
        ("first_name,last_name\nAnn,Lee\n", "no_email_column"),
        ("x" * (MAX_LINE_CHARS + 1) + "\n", "line_too_long"),
        (",".join(f"c{i}" for i in range(600)) + "\n", "too_many_columns"),
    ],
)
def test_unusable_header_refuses_the_file(text: str, code: str) -> None:
    with pytest.raises(HeaderProblem) as caught:
        csv_rows(text)
    assert caught.value.code == code and caught.value.message


def test_header_only_file_warns_that_there_are_no_contacts() -> None:
    warnings: list[str] = []
    assert csv_rows("email\n", warnings) == []
    assert warnings == ["The file has a header but no contacts."]


def test_huge_line_is_refused_and_the_next_lines_still_read() -> None:
    text = "email,note\n" + "a@example.com," + "y" * MAX_LINE_CHARS + "\nb@example.com,ok\n"
    rows = csv_rows(text)
    assert [(r.line, r.fields is None) for r in rows] == [(2, True), (3, False)]
    assert rows[0].problems[0]["code"] == "line_too_long"


def test_non_utf8_line_is_refused_and_the_others_read() -> None:
    data = b"email,first_name\na@example.com,Ann\n" + b"b@example.com,M\xfcller\n"
    data += b"c@example.com,Cy\n"
    rows = list(read_csv(from_bytes(data)))
    assert [(r.line, r.fields is not None) for r in rows] == [(2, True), (3, False), (4, True)]
    assert rows[1].problems[0]["code"] == "not_utf8"


def test_non_utf8_header_refuses_the_file() -> None:
    with pytest.raises(HeaderProblem) as caught:
        list(read_csv(from_bytes(b"email,Pr\xe9nom\na@example.com,x\n")))
    assert caught.value.code == "not_utf8"


def test_nul_characters_are_dropped_not_fatal() -> None:
    rows = csv_rows("email,first_name\na@example.com,A\x00nn\n")
    assert rows[0].fields is not None and rows[0].fields["first_name"] == "Ann"


def test_jsonl_rows_with_aliases_embedded_data_and_bad_lines() -> None:
    lines = [
        json.dumps({"Email": "a@example.com", "FirstName": "Ann", "CaseId": "5", "n": 3}),
        "",
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"email": "b@example.com", "embedded_data": {"Plan": "gold", "x": None}}),
        json.dumps({"email": "c@example.com", "first_name": {"nested": 1}}),
        json.dumps({"email": "d@example.com", "Tags": ["a"]}),
        json.dumps({"email": "e@example.com", "phone": 5551234, "embedded_data": "nope"}),
    ]
    rows = list(read_jsonl(line + "\n" for line in lines))
    assert [r.line for r in rows] == [1, 3, 4, 5, 6, 7, 8]
    assert rows[0].fields is not None
    assert rows[0].fields["first_name"] == "Ann"
    assert rows[0].fields["embedded_data"] == {"CaseId": "5", "n": 3}
    assert rows[1].problems[0]["code"] == "bad_json"
    assert rows[2].problems[0]["code"] == "not_an_object"
    assert rows[3].fields is not None and rows[3].fields["embedded_data"] == {"Plan": "gold"}
    assert rows[4].problems[0]["code"] == "bad_value"
    assert rows[5].problems[0]["code"] == "bad_value"
    assert rows[6].problems[0]["code"] == "bad_embedded_data"


def test_jsonl_huge_and_non_utf8_lines_are_refused() -> None:
    data = b'{"email": "a@example.com", "first_name": "M\xfcller"}\n'
    data += b'{"email": "b@example.com", "note": "' + b"z" * MAX_LINE_CHARS + b'"}\n'
    data += b'{"email": "c@example.com"}\n'
    rows = list(read_jsonl(from_bytes(data)))
    assert [r.problems[0]["code"] if r.problems else "ok" for r in rows] == [
        "not_utf8",
        "line_too_long",
        "ok",
    ]


def test_map_header_names_the_columns_it_found_when_email_is_missing() -> None:
    with pytest.raises(HeaderProblem, match="'Name'"):
        map_header(["Name", "Phone"])


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_csv_parsing_never_raises_on_arbitrary_text(text: str) -> None:
    try:
        rows = csv_rows(text)
    except HeaderProblem:
        return
    for row in rows:
        assert row.line >= 1
        assert (row.fields is None) == bool(row.problems)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=30), max_size=6),
    st.text(max_size=200),
)
def test_csv_with_an_email_header_never_raises(columns: list[str], body: str) -> None:
    rows = csv_rows(",".join(["email", *(c.replace(",", "") for c in columns)]) + "\n" + body)
    assert all(row.line >= 2 for row in rows)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_jsonl_parsing_never_raises_on_arbitrary_text(text: str) -> None:
    for row in read_jsonl(io.StringIO(text, newline="")):
        assert row.line >= 1
        assert (row.fields is None) == bool(row.problems)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    list(read_csv(from_bytes(b"email,x\n" + data)))  # a good header: rows never raise
    list(read_jsonl(from_bytes(data)))
