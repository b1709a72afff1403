"""Bulk API 2.0's CSV as cxloop writes and reads it, sf__Error parsed, results matched by row."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.engine.salesforce_bulk import correlate
from cxloop.salesforce.bulk import (
    BulkResult,
    CsvValueError,
    csv_row,
    csv_value,
    iter_csv,
    parse_error,
    write_csv,
)
from cxloop.salesforce.errors import PermanentError, SalesforceUnreachable, TransientError


def test_values_follow_salesforces_csv_rules() -> None:
    assert csv_value(None) == "#N/A"  # null, as a Collections call's null
    assert csv_value("") == "#N/A"
    assert csv_value(True) == "true" and csv_value(False) == "false"
    assert csv_value(7) == "7"
    assert csv_value(0.1) == "0.1"
    assert csv_value(1e20) == "100000000000000000000"  # never in exponent form
    assert csv_value(date(2026, 12, 5)) == "2026-12-05"
    moment = datetime(2026, 12, 5, 20, 1, 2, 345000, tzinfo=UTC)
    assert csv_value(moment) == "2026-12-05T20:01:02.345Z"
    assert csv_value("a\r\nb\rc") == "a\nb\nc"  # one line ending in the whole file


@pytest.mark.parametrize("bad", [["a"], {"a": 1}, float("nan"), "nul\x00here", object()])
def test_values_a_csv_cannot_hold_are_refused(bad: object) -> None:
    with pytest.raises(CsvValueError):
        csv_value(bad)


def test_a_relationship_by_external_id_becomes_a_dotted_column() -> None:
    assert csv_row({"attributes": {"type": "Case"}, "Account": {"Ext__c": "A1"}, "X": 1}) == {
        "Account.Ext__c": "A1",
        "X": "1",
    }
    with pytest.raises(CsvValueError):
        csv_row({"Account": {"Ext__c": "A1", "Other__c": "B"}})


def test_the_csv_quotes_what_needs_it_and_leaves_missing_cells_empty() -> None:
    data = write_csv(
        ["Id", "Comment__c", "Score__c"],
        [{"Id": "a05000000000001AAA", "Comment__c": 'He said "hi", then\nleft'}, {"Id": "x"}],
    )
    assert data == (
        b'Id,Comment__c,Score__c\na05000000000001AAA,"He said ""hi"", then\nleft",\nx,,\n'
    )
    assert write_csv(["A"], [{"A": "1"}], line_ending="CRLF") == b"A\r\n1\r\n"


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["A", "B", "C"]),
            # Lone surrogates never reach a job: no stored answer can hold one (refused at intake).
            st.text(
                alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00\r")
            ),
            min_size=1,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_what_is_written_reads_back_the_same(rows: list[dict[str, str]]) -> None:
    columns = ["A", "B", "C"]
    back = list(iter_csv(write_csv(columns, rows)))
    assert back == [{c: row.get(c, "") for c in columns} for row in rows]
    # The reader Salesforce's own samples need (RFC 4180) reads it too.
    parsed = list(csv.reader(io.StringIO(write_csv(columns, rows).decode(), newline="")))
    assert parsed[0] == columns and len(parsed) == len(rows) + 1


def test_a_result_csv_cxloop_cannot_read_is_a_clear_error() -> None:
    with pytest.raises(SalesforceUnreachable, match="not UTF-8"):
        iter_csv(b"\xff\xfe")  # refused before any row is read
    with pytest.raises(SalesforceUnreachable, match="cannot read"):
        list(iter_csv(b'"sf__Id","sf__Error"\n"a"b,"c"\n'))
    assert list(iter_csv(b"")) == []
    assert list(iter_csv(b'\xef\xbb\xbf"sf__Id","X"\n"001","y"\n')) == [{"sf__Id": "001", "X": "y"}]


def test_sf_error_is_parsed_into_code_message_and_fields() -> None:
    error = parse_error(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Sentiment: bad value for restricted picklist "
        "field: Ecstatic:Sentiment__c --"
    )
    assert isinstance(error, PermanentError)
    assert error.error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error.message == "Sentiment: bad value for restricted picklist field: Ecstatic"
    assert error.fields == ["Sentiment__c"]
    locked = parse_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--")
    assert isinstance(locked, TransientError) and locked.fields == []
    two = parse_error("REQUIRED_FIELD_MISSING:Required fields are missing: [A, B]:A,B --")
    assert two.fields == ["A", "B"] and two.message == "Required fields are missing: [A, B]"
    garbled = parse_error("something went wrong")
    assert garbled.error_code == "UNKNOWN_EXCEPTION" and garbled.message == "something went wrong"


def test_results_are_matched_to_task_runs_whatever_their_order() -> None:
    columns = ["Name", "Score__c"]
    sent = [(f"TR_{n}", {"Name": f"n{n % 50}", "Score__c": str(n)}) for n in range(500)]
    sent.append(("TR_twin_a", {"Name": "same", "Score__c": "1"}))
    sent.append(("TR_twin_b", {"Name": "same", "Score__c": "1"}))
    sent.append(("TR_not_uploaded", None))
    results = [
        BulkResult(values=dict(row), success=True, id=f"a05{n:015d}", created=True)
        for n, (_, row) in enumerate(sent)
        if row is not None
    ]
    results.append(BulkResult(values={"Name": "stranger", "Score__c": "9"}, success=True, id="x"))
    expected = {
        task_run_id: result
        for (task_run_id, _), result in zip(sent[:-1], results[:-1], strict=True)
    }
    shuffled = results[:]
    random.Random(7).shuffle(shuffled)
    matched, unmatched = correlate(columns, sent, shuffled)
    assert unmatched == 1  # the stranger's row matches no task run
    assert "TR_not_uploaded" not in matched
    for task_run_id in expected:
        if task_run_id.startswith("TR_twin"):
            continue
        assert matched[task_run_id] is expected[task_run_id]
    # Identical rows ask for the same write: each gets one of the two results, never both.
    twins = {matched["TR_twin_a"].id, matched["TR_twin_b"].id}
    assert twins == {expected["TR_twin_a"].id, expected["TR_twin_b"].id}


def test_job_info_reads_salesforces_own_samples() -> None:
    import json
    import re

    from cxloop.salesforce.bulk import BulkJobInfo
    from tests.conftest import reference_sample

    text = reference_sample("salesforce", "bulk2_ingest_samples.txt").read_text()
    samples = [json.loads(block) for block in re.findall(r"^\{\n.*?^\}", text, re.S | re.M)]
    assert len(samples) == 2  # Get Job Info (insert) and Create Job (upsert)
    info, created = (BulkJobInfo.from_reply(s) for s in samples)
    assert (info.id, info.state, info.operation, info.sobject) == (
        "7506g00000DhRA2AAN",
        "Open",
        "insert",
        "Account",
    )
    assert not info.is_finished and info.records_processed == 0
    assert (created.state, created.operation, created.sobject) == (
        "Open",
        "upsert",
        "LObjectScore__c",
    )
    with pytest.raises(SalesforceUnreachable):
        BulkJobInfo.from_reply([{"errorCode": "NOT_FOUND", "message": "gone"}])
