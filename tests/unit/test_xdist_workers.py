"""The suite runs on pytest-xdist workers (Makefile): each worker must get a PostgreSQL database
and a Redis db of its own, or two workers empty each other's tables and queues mid-test."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import WorkerResources, made_by_a_live_run, worker_resources_for

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/7"
CHECKOUT = Path("/work/suite-speed")


def resources(
    worker: str, checkout: Path = CHECKOUT, redis: str = REDIS, run: str = "0123abcd"
) -> WorkerResources:
    return worker_resources_for(
        worker, checkout=checkout, postgres_url=POSTGRES, redis_url=redis, run=run
    )


def test_each_worker_has_its_own_database_and_the_next_redis_db() -> None:
    gw0, gw1, gw2 = resources("gw0"), resources("gw1"), resources("gw2")
    assert [r.redis_url for r in (gw0, gw1, gw2)] == [
        "redis://127.0.0.1:6379/7",
        "redis://127.0.0.1:6379/8",
        "redis://127.0.0.1:6379/9",
    ]
    names = {r.postgres_database for r in (gw0, gw1, gw2)}
    assert len(names) == 3
    assert all(name.startswith(("test_gw0_", "test_gw1_", "test_gw2_")) for name in names)


def test_a_run_without_xdist_takes_the_base_redis_db_and_a_database_no_worker_uses() -> None:
    alone = resources("")
    assert alone.worker == "main"
    assert alone.redis_url == REDIS
    assert alone.postgres_database.startswith("test_main_suite_speed_")
    assert alone.postgres_database != resources("gw0").postgres_database


def test_two_checkouts_running_at_once_never_share_a_database() -> None:
    here = resources("gw0", Path("/work/suite-speed"))
    there = resources("gw0", Path("/home/someone/suite-speed"))
    assert here.postgres_database != there.postgres_database
    assert not there.postgres_database.startswith(here.postgres_prefix)


def test_a_new_run_has_a_new_database_and_finds_the_old_ones_of_its_worker_by_prefix() -> None:
    # a process a killed run left behind must not write into the next run's database; the next
    # run drops the databases starting with its prefix (not another worker's, nor a run's
    # without xdist)
    old, new = resources("gw1", run="11111111"), resources("gw1", run="22222222")
    assert old.postgres_database != new.postgres_database
    assert old.postgres_database.startswith(new.postgres_prefix)
    for other in (resources("gw0"), resources("gw11"), resources("")):
        assert not other.postgres_database.startswith(new.postgres_prefix)


@pytest.mark.parametrize("redis", ["redis://127.0.0.1:6379", "redis://:pw@redis.internal:6380/"])
def test_a_redis_url_without_a_db_starts_at_db_0(redis: str) -> None:
    assert resources("gw1", redis=redis).redis_url.endswith("/1")


def test_a_long_checkout_name_still_makes_a_postgresql_identifier() -> None:
    name = resources("gw11", Path("/srv/" + "A very long checkout-name " * 5)).postgres_database
    assert len(name) <= 63
    assert name.replace("_", "").isalnum() and name == name.lower()


def test_a_database_is_stale_only_when_the_run_that_made_it_is_gone() -> None:
    """A second pytest in the same checkout finds the first's databases by the same prefix: it
    drops them only when the process that made them (their comment) no longer runs here."""
    here = socket.gethostname()
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid runs nothing now
    assert made_by_a_live_run(f"cxloop-test pid={os.getpid()} host={here}")
    assert not made_by_a_live_run(f"cxloop-test pid={ended.pid} host={here}")
    assert not made_by_a_live_run(f"cxloop-test pid={os.getpid()} host=another-machine")
    assert not made_by_a_live_run(None)  # an older run's: made before databases had comments
