"""The emulator's pages in Chromium at a laptop's width (issue 13): the outbound queue fits a
1280 px window however long its URLs, field lists and errors are.

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.e2e.conftest import CHROMIUM_ARGS

from sfemu.testing import EmulatorServer, run_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with run_in_thread() as url:
        yield url


def test_outbound_page_fits_a_1280_px_window(emulator: EmulatorServer, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    long_url = "http://127.0.0.1:9/hooks/salesforce/outbound/" + "x" * 120
    with httpx.Client(base_url=f"{emulator.base_url}/__emulator__") as control:
        control.patch(
            "/outbound/rules/Case_Closed_Survey", json={"active": True, "endpoint_url": long_url}
        ).raise_for_status()
    admin = emulator.client("admin@example.com")
    [case] = admin.get("/services/data/v62.0/query/", params={"q": "SELECT Id FROM Case"}).json()[
        "records"
    ]
    admin.patch(f"/services/data/v62.0/sobjects/Case/{case['Id']}", json={"Status": "Closed"})
    admin.close()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{emulator.base_url}/__emulator__/ui/outbound")
        page.wait_for_selector("text=Case_Closed_Survey")
        # a failed delivery (nothing listens on port 9) leaves a long error in the table
        page.reload()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"the page is {width} px wide"
        assert page.get_by_text(long_url[:40], exact=False).first.is_visible()
        browser.close()
