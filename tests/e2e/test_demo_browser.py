"""After `make run` (`cxloop demo`), a newcomer follows the printed steps in Chromium.

The demo runs as a subprocess on free ports; the test reads the URLs it prints, then only uses
the real pages: the emulator's Case page (Status → Closed, Save), the mail catcher (the
invitation, its survey link), the survey (NPS, CSAT, comment, Submit), and the Case page again,
reloaded until the score and comment are there.

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails). A screenshot of each page goes to tests-artifacts/ (ignored by git).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests-artifacts"
DEMO = [sys.executable, "-m", "cxloop", "demo"]
FREE_PORTS = ["--port", "0", "--emulator-port", "0", "--smtp-port", "0", "--mail-port", "0"]
READY = "Ctrl-C stops everything"
# What a person answers; the same as the demo's own headless run (cxloop.demo.seed.ANSWERS).
NPS, CSAT, COMMENT = "9", "5", "Quick and friendly. Thank you!"

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`cxloop demo` running on free ports; the URLs it printed, by what they are."""
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*DEMO, *FREE_PORTS, "--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"COLUMNS": "200"},  # one URL a line, never wrapped
        )
        try:
            deadline = time.monotonic() + 60
            while READY not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield printed_urls(log.read_text())
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def printed_urls(shown: str) -> dict[str, str]:
    def url(label: str) -> str:
        found = re.search(rf"^\s*{label}\s+(http://\S+)", shown, re.M)
        assert found, f"the demo printed no {label!r} URL:\n{shown}"
        return found.group(1)

    urls = {
        "cxloop": url("cxloop"),
        "mail": url("Mail catcher"),
        "case": url("the Case"),
    }
    assert re.search(r"/__emulator__/ui/acme/Case/\w+$", urls["case"]), urls["case"]
    return urls


def test_a_newcomer_closes_the_loop_in_the_browser(
    demo_urls: dict[str, str], chromium_path: str
) -> None:
    from playwright.sync_api import Error, Locator, Page, expect, sync_playwright

    def reload_until(page: Page, locator: Locator, timeout_s: float = 20.0) -> None:
        """Reload `page` (as a person presses F5) until `locator` is visible."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                expect(locator).to_be_visible(timeout=300)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            with contextlib.suppress(Error):  # the mail catcher's own refresh came first: fine
                page.reload()

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            page = context.new_page()

            # 1. The Case: Status → Closed, Save
            page.goto(demo_urls["case"])
            expect(page.get_by_label("Subject")).to_have_value("Printer on fire")
            expect(page.get_by_label("Survey NPS Score")).to_have_value("")
            page.get_by_label("Status").select_option("Closed")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_role("status")).to_have_text("Saved.")
            expect(page.get_by_label("Status")).to_have_value("Closed")
            case_number = page.locator("tr", has_text="Case Number").locator("td")
            number = case_number.inner_text().strip()
            assert re.fullmatch(r"\d+", number), number

            # 2. The mail catcher: the invitation, and the survey link in its text part
            mail = context.new_page()
            mail.goto(demo_urls["mail"])
            expect(mail.get_by_role("heading", name="Mail catcher")).to_be_visible()
            invitation = mail.get_by_role("link", name=f"How did we do on case {number}?")
            reload_until(mail, invitation)
            invitation.click()
            expect(
                mail.get_by_role("heading", name=f"How did we do on case {number}?")
            ).to_be_visible()
            expect(mail.get_by_text("jeraldine.black@example.com").first).to_be_visible()
            mail.screenshot(path=str(ARTIFACTS / "demo-mail.png"), full_page=True)
            survey_link = mail.locator(f"pre a[href^='{demo_urls['cxloop']}/s/']")
            expect(survey_link).to_have_count(1)
            with context.expect_page() as opened:
                survey_link.click()  # the text part's links open in a new tab
            survey = opened.value

            # 3. The survey: NPS, CSAT, comment, Submit
            survey.wait_for_load_state()
            nps = survey.get_by_role("group", name=re.compile("recommend Acme"))
            nps.get_by_role("radio", name=NPS, exact=True).check()
            csat = survey.get_by_role("group", name=re.compile("How satisfied"))
            csat.get_by_role("radio", name=CSAT, exact=True).check()
            survey.get_by_role("textbox", name=re.compile("main reason")).fill(COMMENT)
            survey.screenshot(path=str(ARTIFACTS / "demo-survey.png"), full_page=True)
            survey.get_by_role("button", name="Submit").click()
            expect(survey.get_by_role("heading", name="Thank you!")).to_be_visible()

            # 4. The Case again, reloaded until the answers are on it
            page.bring_to_front()
            reload_until(page, page.locator("#f-Survey_NPS_Score__c:not([value=''])"))
            expect(page.get_by_label("Survey NPS Score")).to_have_value(NPS)
            expect(page.get_by_label("Survey Comment")).to_have_value(COMMENT)
            expect(page.get_by_label("Survey Responded")).to_be_checked()
            page.screenshot(path=str(ARTIFACTS / "demo-case.png"), full_page=True)
        finally:
            browser.close()
