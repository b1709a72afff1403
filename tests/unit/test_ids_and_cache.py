"""The one id generator (uniform, right shape) and the one cache type (bounded, expiring)."""

from __future__ import annotations

import re
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from cxloop.caching import TtlCache
from cxloop.domain.ids import ID_ALPHABET, new_id, new_ids


@given(st.sampled_from(["SV_", "R_", "RN_", "TR_"]), st.integers(min_value=0, max_value=50))
def test_ids_have_the_prefix_and_fifteen_letters_or_digits(prefix: str, count: int) -> None:
    ids = new_ids(prefix, count)
    assert len(ids) == count
    for value in ids:
        assert re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9]{15}", value)


def test_every_character_is_equally_likely() -> None:
    # 62 characters over 620,000 draws: 10,000 expected each; a biased table (bytes 0-7 likelier by
    # 1/4 as in the old response ids) puts the first eight at ~12,500.
    counts = Counter("".join(new_ids("", 41_334))[:620_000])  # 15 characters an id
    assert set(counts) == set(ID_ALPHABET)
    assert max(counts.values()) < 10_600
    assert min(counts.values()) > 9_400


def test_one_id_is_like_many() -> None:
    assert re.fullmatch(r"SV_[A-Za-z0-9]{15}", new_id("SV_"))
    assert len({new_id("R_") for _ in range(1000)}) == 1000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_forgets_an_entry_after_its_time_to_live() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(10, ttl_s=5, clock=clock)
    cache.set("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.1
    assert cache.get("a") is None
    assert "a" not in cache


def test_cache_evicts_the_least_recently_used_past_its_size() -> None:
    cache: TtlCache[str, int] = TtlCache(2)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.set("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert len(cache) == 2


def test_cache_get_or_set_makes_once_and_discard_where_forgets_by_key() -> None:
    cache: TtlCache[tuple[str, int], str] = TtlCache(10)
    made = []
    assert cache.get_or_set(("s", 1), lambda: made.append(1) or "x") == "x"
    assert cache.get_or_set(("s", 1), lambda: made.append(1) or "y") == "x"
    assert made == [1]
    cache.set(("t", 1), "z")
    assert cache.discard_where(lambda key: key[0] == "s") == 1
    assert ("s", 1) not in cache and ("t", 1) in cache


def test_cache_of_no_entries_is_refused() -> None:
    try:
        TtlCache(0)
    except ValueError as error:
        assert "at least one" in str(error)
    else:
        raise AssertionError("a cache of size 0 was accepted")
