"""Record Ids: the 15 -> 18 checksum (Salesforce's own vectors), case recovery, generation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfemu import ids

from .conftest import reference_file

ID15 = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=15,
    max_size=15,
)


def checksum_vectors() -> list[tuple[str, str]]:
    text = reference_file("misc_rest_samples.txt").read_text(encoding="utf-8")
    return re.findall(r"^([0-9A-Za-z]{15}) -> ([0-9A-Za-z]{18})$", text, re.MULTILINE)


def test_checksum_matches_every_reference_vector() -> None:
    vectors = checksum_vectors()
    assert len(vectors) >= 8
    for id15, id18 in vectors:
        assert ids.to18(id15) == id18


def test_an_18_character_id_in_the_wrong_case_is_restored() -> None:
    for id15, id18 in checksum_vectors():
        assert ids.normalize(id18.lower()) == id18
        assert ids.normalize(id18.upper()) == id18
        assert ids.normalize(id15) == id18


@pytest.mark.parametrize(
    "bad", ["", "abc", "001", "001!00000000000", "0015g00000ABCDEFGHIJ", "0015g00000ABCDE99Z"]
)
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(ids.MalformedId):
        ids.normalize(bad)
    assert ids.try_normalize(bad) is None


def test_a_suffix_claiming_a_digit_is_upper_case_is_malformed() -> None:
    # "B" says position 0 of the first chunk is upper case, but it is the digit 0.
    assert ids.try_normalize("001000000000000BAA") is None


@settings(max_examples=50)
@given(ID15)
def test_normalize_round_trips_any_15_character_id(id15: str) -> None:
    id18 = ids.to18(id15)
    assert ids.normalize(id18) == id18
    assert ids.normalize(id18.swapcase()) == id18
    assert ids.normalize(id18)[:15] == id15


@given(st.integers(min_value=0, max_value=62**9 - 1))
def test_minted_ids_carry_prefix_and_counter(counter: int) -> None:
    made = ids.make_id("a05", "Xy", counter)
    assert len(made) == 18 and made.startswith("a05Xy0")
    assert ids.counter_of(made) == counter
    assert ids.normalize(made) == made


def test_derived_ids_are_the_same_in_every_process_and_release() -> None:
    # Fixed expected values: an Id that depended on the process (Python's salted hash(), say)
    # or changed between releases would orphan every reference a connected app has stored.
    assert ids.derived_id("00D", "org", "acme") == "00D9E0ZXSK12t24U4A"
    assert ids.derived_id("00D", "org", "other") == "00Df10ZNyJB36eHEWR"
    assert ids.derived_id("005", "user", "admin@example.com") == "005q102UEQbsqYMA2Y"
    for made in ("00D9E0ZXSK12t24U4A", "00Df10ZNyJB36eHEWR", "005q102UEQbsqYMA2Y"):
        assert ids.normalize(made) == made  # a well-formed 18-character Id
