"""`/docs` in Chromium with every other host unreachable: the operations are listed (issue 13).

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from tests.e2e.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/docs", "/api/v1/surveys/{survey_id}/open"),
        ("/redoc", "/api/v1/surveys/{survey_id}/open"),
    ],
)
def test_api_docs_work_offline(
    base_url: str, chromium_path: str, path: str, operation: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ours = urlsplit(base_url).netloc
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.route("**/*", only_this_server)
        page.goto(f"{base_url}{path}")
        # ReDoc lays out the whole API before it shows anything: seconds on a busy machine
        expect(page.get_by_text(operation).first).to_be_attached(timeout=60_000)
        if path == "/docs":
            expect(page.locator(".opblock").first).to_be_visible(timeout=60_000)
            assert page.locator(".opblock").count() > 20
        page.wait_for_load_state("networkidle")  # late requests (a logo, a font) count too
        browser.close()
    assert elsewhere == []
