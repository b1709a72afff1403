"""The SQLite writers' lock: exclusive across processes, re-entrant in a thread, never waiting
on a lock of the same file held in the same process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text

from cxloop.db.engine import create_database_engine
from cxloop.db.uow import Database
from cxloop.db.write_lock import sqlite_write_lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cxloop.db.write_lock import sqlite_write_lock

    database, marker = sys.argv[1], Path(sys.argv[2])
    with sqlite_write_lock(database):
        print("held", flush=True)
        time.sleep(0.5)  # long enough for the parent to be waiting
        marker.write_text("written by the holder")
    """
)


def test_a_writer_waits_for_the_writer_of_another_process(tmp_path: Path) -> None:
    database, marker = tmp_path / "cxloop.db", tmp_path / "marker"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), str(marker)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with sqlite_write_lock(str(database)):
            # we got the lock, so the holder has let go of it, after writing its marker
            assert marker.read_text() == "written by the holder"
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0


def test_a_nested_writer_on_a_second_database_of_the_file_passes(tmp_path: Path) -> None:
    # Two Databases of one file in one process (two containers, as in tests) each have their
    # own lock; the record lock belongs to the process, so the inner one does not wait on the
    # outer (an flock would: it belongs to the open file).
    url = f"sqlite:///{tmp_path / 'cxloop.db'}"
    first, second = Database(create_database_engine(url)), Database(create_database_engine(url))
    try:
        with first.uow() as outer:
            outer.session.execute(text("CREATE TABLE t (x INTEGER)"))
            outer.commit()
            with second.reader() as inner:  # readers never take the lock
                inner.session.execute(text("SELECT 1"))
        with first.uow(), second.uow() as inner:  # a nested writer: no wait on ourselves
            inner.session.execute(text("INSERT INTO t VALUES (1)"))
            inner.commit()
        with first.reader() as uow:
            assert uow.session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        first.dispose()
        second.dispose()


def test_in_memory_databases_each_have_their_own_lock() -> None:
    assert sqlite_write_lock(":memory:") is not sqlite_write_lock(":memory:")
    with sqlite_write_lock(None), sqlite_write_lock(None):
        pass
