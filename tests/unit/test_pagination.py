from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cxloop.db.base import UTCDateTime
from cxloop.errors import InvalidInput
from cxloop.services.pagination import decode_cursor, encode_cursor, paginate


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.one_of(st.text(max_size=30), st.integers(min_value=0)),
)
def test_cursor_round_trips(created_at: datetime, row_id: str | int) -> None:
    assert decode_cursor(encode_cursor(created_at, row_id)) == (created_at, row_id)


NAIVE = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIlJfeCJd"  # ["2026-01-01T00:00:00", "R_x"]: no zone


@pytest.mark.parametrize("cursor", ["", "%%%", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwgMV0", NAIVE])
def test_garbage_cursor_is_a_clear_error(cursor: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_cursor(cursor)
    assert info.value.code == "bad_cursor"


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@pytest.mark.parametrize("oldest_first", [False, True])
def test_paginate_walks_every_row_once_in_order_even_with_equal_times(oldest_first: bool) -> None:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    moments = [datetime(2026, 1, 1, 12, minute, tzinfo=UTC) for minute in (0, 0, 1, 1, 1, 2, 3)]
    with Session(engine) as session:
        session.add_all(_Row(id=f"R{i}", created_at=m) for i, m in enumerate(moments))
        session.commit()
        seen, cursor = [], None
        while True:
            page = paginate(
                session, select(_Row), _Row.created_at, _Row.id,
                limit=2, cursor=cursor, oldest_first=oldest_first,
            )  # fmt: skip
            seen += [(row.created_at, row.id) for row in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == sorted(seen, reverse=not oldest_first)
    assert len(seen) == len(set(seen)) == len(moments)


def test_every_list_refuses_a_cursor_of_another_kind_before_reading() -> None:
    """An integer id where the list's ids are text (or the reverse): the cursor is another
    list's, said as such, whichever list it is (one keyset for all)."""
    from cxloop.services.pagination import after_cursor

    int_cursor = encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), 7)
    with pytest.raises(InvalidInput) as info:
        after_cursor(_Row.created_at, _Row.id, int_cursor, oldest_first=True)
    assert info.value.code == "bad_cursor" and "another list" in info.value.message
