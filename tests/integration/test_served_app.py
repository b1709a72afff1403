"""The server processes of `cxloop serve --processes N` are started by uvicorn with
multiprocessing's spawn: fresh interpreters that inherit nothing of the supervising process."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from cxloop.process import GC_THRESHOLDS


def _thresholds_after_served_app(data_dir: str, out: multiprocessing.Queue) -> None:
    """What uvicorn's spawned server process does first: build the app (`served_app`)."""
    os.environ["CXLOOP_DATA_DIR"] = data_dir
    os.environ["CXLOOP_LOG_LEVEL"] = "WARNING"
    import gc

    from cxloop.web.app import served_app

    app = served_app()
    out.put(gc.get_threshold())
    app.state.container.close()


def test_a_spawned_server_process_tunes_its_garbage_collector_as_serve_does(
    tmp_path: Path,
) -> None:
    spawn = multiprocessing.get_context("spawn")  # as uvicorn starts its server processes
    results: multiprocessing.Queue = spawn.Queue()
    child = spawn.Process(
        target=_thresholds_after_served_app, args=(str(tmp_path / "data"), results)
    )
    child.start()
    try:
        thresholds = results.get(timeout=120)
    finally:
        child.join(60)
    assert child.exitcode == 0
    assert thresholds == GC_THRESHOLDS
