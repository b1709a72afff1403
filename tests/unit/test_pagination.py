from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.errors import InvalidInput
from cxloop.services.pagination import decode_cursor, encode_cursor


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.one_of(st.text(max_size=30), st.integers(min_value=0)),
)
def test_cursor_round_trips(created_at: datetime, row_id: str | int) -> None:
    assert decode_cursor(encode_cursor(created_at, row_id)) == (created_at, row_id)


@pytest.mark.parametrize("cursor", ["", "%%%", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwgMV0"])
def test_garbage_cursor_is_a_clear_error(cursor: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_cursor(cursor)
    assert info.value.code == "bad_cursor"
