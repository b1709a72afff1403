"""The `cxloop` command starts without what only some commands need.

Every process a user or an operator starts (`cxloop worker`, `cxloop scheduler`, `cxloop users
list`, ...) imports the command line first. The web app (FastAPI, uvicorn, Starlette), the
demo's mail catcher (aiosmtpd) and the emulator's server are imported by the commands that run
them (`serve`, `demo`, `emulator serve`): that took about a third off the start of every other
command (1.7-1.9 s of CPU against 2.4-2.8 s, on a loaded 2-core machine)."""

from __future__ import annotations

import json
import subprocess
import sys

ONLY_FOR_SOME_COMMANDS = ("fastapi", "uvicorn", "starlette", "aiosmtpd", "sfemu.server")

PROBE = """
import json, sys
import cxloop.cli.main
print(json.dumps(sorted(m for m in {names} if m in sys.modules)))
"""


def test_the_command_line_imports_no_web_server_until_a_command_serves() -> None:
    # A fresh interpreter: this test process has imported everything already.
    probe = PROBE.format(names=repr(ONLY_FOR_SOME_COMMANDS))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
