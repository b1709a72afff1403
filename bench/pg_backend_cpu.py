"""Run a command and print the CPU time PostgreSQL's backends of one database spent meanwhile.

A bench's own figures count the CPU of cxloop's processes; the database server's share is
in its backends. This samples `/proc` five times a second for the processes whose title names
the database (`postgres: user <database> host(port) ...`, so PostgreSQL on this machine) and
keeps each backend's latest CPU time, so a backend that exits before the command ends still
counts. Printed to stderr as JSON after the command's own output:

    python3 bench/pg_backend_cpu.py --database bench_workflow -- \\
        .venv/bin/python bench/workflow_bench.py --world realistic \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_workflow

Linux only. A backend that was already running counts whole (its CPU before the command too):
the benches make a fresh database for each run, so theirs start with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

from _support import stat_cpu


def backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU seconds (user + system) of each live PostgreSQL backend of `database`."""
    marker = f" {database} ".encode()
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended while it was read
            continue
        if not title.startswith(b"postgres: ") or marker not in title:
            continue
        cpu = stat_cpu(entry / "stat")
        if cpu is not None:  # None: it ended meanwhile, and keeps what was seen of it last
            found[int(entry.name)] = cpu[0]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="the database the backends serve")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the command to run after --")
    seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(backend_cpu_seconds(options.database))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = subprocess.call(command)
    done.set()
    sampler.join()
    seen.update(backend_cpu_seconds(options.database))
    figures = {"pg_backend_cpu_s": round(sum(seen.values()), 2), "backends": len(seen)}
    print(json.dumps(figures), file=sys.stderr)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
