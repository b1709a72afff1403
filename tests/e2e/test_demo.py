"""`cxloop demo` as a newcomer runs it: the closed loop end to end, across real sockets.

Salesforce (the emulator) → outbound message → cxloop's listener → directory task → mail in the
catcher → the personal link → answers posted through the survey page → the Case updated and a
Survey_Response__c created in Salesforce.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from cxloop.cli.main import app as cli

DEMO = [sys.executable, "-m", "cxloop", "demo"]
FREE_PORTS = ["--port", "0", "--emulator-port", "0", "--smtp-port", "0", "--mail-port", "0"]
STEPS = [
    "Start the emulator, the mail catcher and cxloop",
    "Seed the admin, survey, connection, workflows and outbound rule",
    "Close the Case 'Printer on fire' in the emulator",
    "Salesforce delivers the outbound message; cxloop acknowledges it",
    "The invitation arrives in the mail catcher",
    "The personal link opens the survey",
    "The answers are posted through the survey page",
    "The Case is updated with the score and comment",
    "A Survey_Response__c is linked to the Case",
]


def test_headless_demo_closes_the_loop(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    done = subprocess.run(
        [*DEMO, "--headless", "--json", *FREE_PORTS, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ | {"CXLOOP_LOG_JSON": "true"},
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON object; logs go to stderr
    failed = [s for s in result["steps"] if not s["ok"]]
    assert result["ok"] and not failed, json.dumps(failed, indent=2) + done.stderr[-3000:]
    assert [s["name"] for s in result["steps"]] == STEPS
    assert all(set(s) == {"name", "ok", "detail", "seconds"} for s in result["steps"])
    assert done.returncode == 0
    details = {s["name"]: s["detail"] for s in result["steps"]}
    assert "jeraldine.black@example.com" in details["The invitation arrives in the mail catcher"]
    assert "Survey_NPS_Score__c = 9" in details["The Case is updated with the score and comment"]
    assert (data_dir / "cxloop.db").exists()  # a --data-dir is the caller's: kept


def test_demo_runs_until_interrupted_then_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*DEMO, *FREE_PORTS], stdout=out, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while "Ctrl-C stops everything" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    shown = log.read_text()
    for what in ("API docs", "survey link", "mail catcher", "records", "outbound endpoint"):
        assert what in shown
    assert "/hooks/salesforce/outbound/" in shown and "/__emulator__/ui" in shown
    assert "Stopping" in shown


def test_demo_refuses_json_without_headless_and_a_used_data_dir(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", "--json"]).exit_code == 2
    (tmp_path / "cxloop.db").write_bytes(b"")
    refused = runner.invoke(cli, ["demo", "--headless", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 2
    assert "already holds a cxloop database" in refused.output
