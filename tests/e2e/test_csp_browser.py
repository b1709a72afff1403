"""Every kind of page works in Chromium under the Content-Security-Policy: no violation is
reported, and the forms still post (login, a survey's pages, the opt-out button)."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import CHROMIUM_ARGS
from tests.integration.survey_helpers import all_types

from cxloop.bootstrap import Container
from cxloop.services import directory, personal_links, survey_content, surveys
from cxloop.services.access import Actor
from cxloop.services.users import create_user

pytestmark = pytest.mark.browser
PASSWORD = "a long enough passphrase"
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_type_loads_and_posts_without_a_csp_violation(
    container: Container, base_url: str, chromium_path: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    owner = create_user(container.db, "owner@example.com", PASSWORD)
    actor = Actor.of(owner)
    survey = surveys.create_survey(container.db, actor, "Every question type")
    survey_content.put_content(container.db, actor, survey.id, all_types())
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    people = directory.create_directory(container.db, actor, "People")
    contact = directory.create_contact(
        container.db, actor, people.id, directory.ContactFields(email="jo@example.com")
    )
    secret = container.settings.secret_key.get_secret_value()
    opt_out = directory.opt_out_url(base_url, secret, contact.id)
    _token, personal = personal_links.create_personal_link(
        container.db, survey.id, {}, base_url=base_url
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.add_init_script(WATCH_CSP)
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        seen: list[str] = []

        def check(what: str) -> None:
            violations = page.evaluate("window.__violations")
            blocked = [m for m in console if "Content Security Policy" in m]
            assert not violations and not blocked, (what, violations, blocked)
            seen.append(what)

        page.goto(f"{base_url}/login")
        check("login form")
        page.get_by_label("Email").fill("owner@example.com")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_be_visible()
        check("login refused")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base_url}/")
        check("home")

        page.goto(f"{base_url}/s/{survey.id}")
        expect(page.get_by_text("Page 1 of")).to_be_visible()
        check("survey page")
        page.locator("button[value=next]").click()
        expect(page.get_by_role("alert").first).to_be_visible()
        check("survey page with problems")
        page.goto(personal)
        check("personal link")
        page.goto(f"{base_url}/s/SV_nothing000000000")
        check("survey not found")

        page.goto(opt_out)
        check("opt-out page")
        page.get_by_role("button").first.click()
        expect(page.get_by_text("You will not receive further survey invitations")).to_be_visible()
        check("opted out")

        page.goto(f"{base_url}/oauth/salesforce/callback?error=access_denied&state=x")
        check("OAuth result")
        browser.close()
    assert len(seen) == 10
