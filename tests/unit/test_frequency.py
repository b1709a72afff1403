"""The contact frequency rule: counts only the window, says why and from when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.domain.frequency import check_frequency

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

offsets = st.lists(st.integers(min_value=0, max_value=60 * 24 * 90), max_size=30)  # minutes ago
rules = st.tuples(st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=60))


def times(minutes_ago: list[int]) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes_ago]


def test_one_invitation_in_the_window_refuses_a_second_with_reason() -> None:
    decision = check_frequency(1, 30, NOW, [NOW - timedelta(days=3)], who="jeraldine@example.com")
    assert not decision.allowed
    assert decision.reason.startswith(
        "jeraldine@example.com was invited 1 time in the last 30 days; the rule allows 1."
    )
    assert decision.next_allowed_at == NOW + timedelta(days=27)
    assert "2026-12-25 12:00 UTC" in decision.reason


def test_invitations_older_than_the_window_do_not_count() -> None:
    decision = check_frequency(1, 30, NOW, [NOW - timedelta(days=30), NOW - timedelta(days=45)])
    assert decision.allowed and decision.recent == 0 and decision.reason == ""


def test_a_rule_without_room_is_refused() -> None:
    with pytest.raises(ValueError):
        check_frequency(0, 30, NOW, [])


@given(rules, offsets)
def test_allowed_exactly_when_fewer_than_the_limit_fall_in_the_window(
    rule: tuple[int, int], minutes_ago: list[int]
) -> None:
    limit, days = rule
    decision = check_frequency(limit, days, NOW, times(minutes_ago))
    in_window = sum(1 for m in minutes_ago if m < days * 24 * 60)
    assert decision.recent == in_window
    assert decision.allowed == (in_window < limit)
    assert (decision.reason == "") == decision.allowed


@given(rules, offsets)
def test_the_next_allowed_time_is_the_first_moment_the_rule_allows(
    rule: tuple[int, int], minutes_ago: list[int]
) -> None:
    limit, days = rule
    earlier = times(minutes_ago)
    decision = check_frequency(limit, days, NOW, earlier)
    if decision.allowed:
        assert decision.next_allowed_at is None
        return
    at = decision.next_allowed_at
    assert at is not None and at > NOW
    assert check_frequency(limit, days, at, earlier).allowed
    assert not check_frequency(limit, days, at - timedelta(microseconds=1), earlier).allowed
    assert f"the rule allows {limit}" in decision.reason
