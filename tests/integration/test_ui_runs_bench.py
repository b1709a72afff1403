"""`bench/ui_bench.py --smoke`: the UI benchmark runs end to end on tiny data in seconds, prints
its JSON, and measures every page this build serves (the others are reported "missing")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ui_bench_smoke_mode_prints_figures_for_every_page_served() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui_bench.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runs"] == 200 and result["workflows"] == 5
    pages = result["pages"]
    for served in ("/surveys", "/accounts", "/runs", "/runs/{run_id}", "/runs?survey={id}"):
        figures = pages[served]
        assert figures["n"] == 3 and 0 < figures["p50_ms"] <= figures["p95_ms"], figures
    assert set(pages) >= {
        "/surveys/{id}/workflows",
        "/surveys/{id}/workflows/{workflow_id}",
    }  # measured, or "missing" where this build has no such page


def test_the_ui_bench_refuses_nonsense_sizes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui_bench.py"), "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "--runs must be at least 20" in done.stderr
    assert done.stdout == ""


def test_the_builder_bench_smoke_mode_measures_the_whole_form_and_the_task_part() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui_builder_bench.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["changes"]) == {"add_field", "object_changed"}
    for figures in result["changes"].values():
        assert figures["whole"]["n"] == 3 and figures["part"]["n"] == 3
        assert 0 < figures["part"]["bytes"] < figures["whole"]["bytes"], figures
    bad = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui_builder_bench.py"), "--tasks", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr
