"""bench/pg_backend_cpu.py: runs the command, passes its exit status on, prints the figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "bench" / "pg_backend_cpu.py"


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60
    )


def test_it_runs_the_command_and_prints_the_backends_cpu() -> None:
    done = run_tool("--database", "no_such_database_here", "--", sys.executable, "-c", "exit(3)")
    assert done.returncode == 3  # the command's own status
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {
        "pg_backend_cpu_s": 0,
        "backends": 0,
    }


def test_without_a_command_it_says_what_is_missing() -> None:
    done = run_tool("--database", "bench_workflow")
    assert done.returncode == 2
    assert "give the command to run after --" in done.stderr
