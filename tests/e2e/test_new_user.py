"""A new user follows the README and the docs, outside the demo, in a browser.

Only what the docs show: `CXLOOP_DATA_DIR` for a fresh data directory, `cxloop serve` on a port
other than 8000 (no CXLOOP_BASE_URL: it follows the server), `cxloop emulator serve`, the user
and token commands of the README, the command the emulator printed to link a connection (its
one-time link opened in Chromium: cxloop's login, then the emulator's login page and consent),
a survey imported and opened, a workflow applied with a misspelled field and a field the user
may not write (two warnings, each with its fix), fixed, responses submitted, and the records
found in the emulator.

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import CHROMIUM_ARGS
from tests.e2e.test_processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "new_user"
CXLOOP = str(Path(sys.executable).with_name("cxloop"))  # `.venv/bin/cxloop`, as the README says
EMAIL, PASSWORD = "you@example.com", "a long enough passphrase"


class Desk:
    """A terminal in a fresh working directory, with a clean environment: no CXLOOP_* variable
    but the data directory (docs: README, Configuration)."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "work"
        self.cwd.mkdir()
        self.logs = tmp_path
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CXLOOP_")}
        self.env = clean | {"CXLOOP_DATA_DIR": str(tmp_path / "cxloop-data")}
        self.procs: list[subprocess.Popen] = []

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CXLOOP, *args], cwd=self.cwd, env=self.env, input=stdin, text=True,
            capture_output=True, timeout=120,
        )  # fmt: skip
        return done

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = self.logs / f"{name}.log"
        proc = subprocess.Popen(
            [CXLOOP, *args], cwd=self.cwd, env=self.env, stdout=log.open("w"),
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = Desk(tmp_path)
    yield made
    made.stop()


def wait_for(log: Path, proc: subprocess.Popen, pattern: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while not re.search(pattern, text := log.read_text(), re.M):
        assert proc.poll() is None, text
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    return text


def ready(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> bool:
    """Whether the server answers `url` with 200 before the deadline (it prints its base URL
    before uvicorn listens)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def test_a_new_user_links_the_emulator_and_closes_the_loop_as_the_docs_say(
    desk: Desk, chromium_path: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # 1. The server on another port than 8000, and the emulator (docs/emulator.md).
    port = free_port()
    assert port != 8000
    server, server_log = desk.start("serve", "serve", "--port", str(port))
    emulator, emulator_log = desk.start("emulator", "emulator", "serve", "--port", "0")
    base = f"http://127.0.0.1:{port}"
    banner = wait_for(emulator_log, emulator, r"^  log in to acme as ")
    wait_for(server_log, server, r"base URL")
    assert ready(f"{base}/readyz", server), server_log.read_text()

    # What the emulator printed: the command to link its org, and whom to log in as.
    command = re.search(r"^  (cxloop connections add acme --type emulator .*)$", banner, re.M)
    assert command, banner
    login = re.search(r"^  log in to acme as (\S+), password (\S+) \(cxloop Integration\)$",
                      banner, re.M)  # fmt: skip
    assert login, banner
    emulator_url = re.search(r"--login-url (\S+)$", command.group(1)).group(1)

    # 2. The README: a user (an admin) and an API token.
    created = desk.run("users", "create", EMAIL, "--admin", "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    issued = desk.run("tokens", "create", "--user", EMAIL)
    assert issued.returncode == 0, issued.stderr
    token = re.search(r"cxl_\S+", issued.stdout).group(0)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    # 3. Link with the printed command; its one-time link in the browser.
    args = command.group(1).split()[1:]
    linking = subprocess.Popen(
        [CXLOOP, *args], cwd=desk.cwd, env=desk.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    desk.procs.append(linking)
    shown: list[str] = []
    while not shown or not shown[-1].startswith(f"{base}/oauth/salesforce/start/"):
        line = linking.stdout.readline()
        assert line, "".join(shown)
        shown.append(line.strip())
    link = shown[-1]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.goto(link)  # not signed in yet: cxloop's login page first
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{emulator_url}/**")  # the emulator's login page
            page.fill("#username", login.group(1))
            page.fill("#password", login.group(2))
            page.click("#Login")
            page.click("#oaapprove")  # Allow
            expect(page.get_by_role("heading", name="Salesforce is connected")).to_be_visible()
        finally:
            browser.close()
    rest, _ = linking.communicate(timeout=30)
    assert linking.returncode == 0, "\n".join(shown) + rest
    assert "Connected acme: integration@example.com" in rest

    # 4. A survey, imported and opened (docs/surveys.md).
    imported = desk.run("surveys", "import", str(FIXTURES / "survey.yaml"))
    assert imported.returncode == 0, imported.stderr
    survey_id = re.search(r"SV_[A-Za-z0-9]+", imported.stdout).group(0)
    opened = desk.run("surveys", "open", survey_id)
    assert opened.returncode == 0, opened.stderr
    assert api.get(f"/api/v1/surveys/{survey_id}").json()["status"] == "active"

    # 5. A workflow with a misspelled field and a field the user may not write: saved, with
    # two warnings, each with its fix (docs/workflows.md, "Checks on save").
    first = desk.run("workflows", "apply", survey_id, str(FIXTURES / "workflow-first-try.yaml"))
    assert first.returncode == 0, first.stderr
    warnings = re.findall(r"^warning: (.*)\n\s+fix: (.*)$", first.stderr, re.M)
    assert len(warnings) == 2, first.stderr
    (misspelled, misspelled_fix), (read_only, read_only_fix) = sorted(
        warnings, key=lambda w: "Priority" in w[0]
    )
    assert "Coment__c" in misspelled and "Comment__c" in misspelled_fix, warnings
    assert "Priority" in read_only and "org file" in read_only_fix, warnings

    # ... fixed: no warning.
    fixed = desk.run("workflows", "apply", survey_id, str(FIXTURES / "workflow.yaml"))
    assert fixed.returncode == 0 and "warning" not in fixed.stderr, fixed.stderr

    # 6. Responses, and the records in the emulator.
    control = httpx.Client(base_url=f"{emulator_url}/__emulator__", timeout=10)
    cases = control.get("/records", params={"org": "acme", "sobject": "Case"}).json()["records"]
    case_id = next(c["Id"] for c in cases if c["Subject"] == "Printer on fire")
    comments = ["The printer is still smoking.", "Fixed fast, thanks."]
    response_ids = []
    for score, comment in zip((3, 9), comments, strict=True):
        sent = api.post(
            f"/api/v1/surveys/{survey_id}/responses",
            json={"values": {"QID1": score, "QID2": comment}, "embedded_data": {"CaseId": case_id}},
        )
        assert sent.status_code == 201, sent.text
        response_ids.append(sent.json()["id"])

    deadline = time.monotonic() + 60
    while True:
        records = control.get(
            "/records", params={"org": "acme", "sobject": "Survey_Response__c"}
        ).json()["records"]
        found = {r["Response_ID__c"]: r for r in records if r["Response_ID__c"] in response_ids}
        if len(found) == 2:
            break
        assert time.monotonic() < deadline, (records, desk.run("runs", "list").stdout)
        time.sleep(0.5)
    assert [found[r]["Comment__c"] for r in response_ids] == comments
    assert {found[r]["NPS_Score__c"] for r in response_ids} == {3, 9}
    assert all(found[r]["Case__c"] == case_id for r in response_ids)
    deadline = time.monotonic() + 30  # both updated the Case: one of them was last
    while (case := control.get(f"/records/acme/{case_id}").json())["Description"] not in comments:
        assert time.monotonic() < deadline, case
        time.sleep(0.5)
