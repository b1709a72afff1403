"""What the admin UI's browser tests share.

A real cxloop app served by uvicorn on a free port (fresh SQLite database, SQLite queue, the
embedded worker off), the Salesforce emulator as a real server (its login page shown, no
auto-login), and Playwright driving Debian's Chromium. Tests drive pages by role and name:

    def test_something(ui, signed_in):
        page = signed_in("owner")                  # a Playwright page, signed in as the owner
        page.goto(ui.url("/surveys"))
        page.get_by_role("button", name="Create survey").click()
        axe_check(page)                            # no serious or critical violations
        shoot(page, "surveys-created")             # test-results/ui/<name>-<lang>-<viewport>.png

Every test runs in English and German (`lang`) unless it asks for one; `viewport` is "desktop"
unless the test is parametrised with `@pytest.mark.parametrize("viewport", ["phone"])`
(390x844) or both. `ui.text(lang, en, de)` picks the right words for an assertion.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from tests.conftest import make_settings
from tests.e2e.conftest import CHROMIUM_ARGS

from cxloop.bootstrap import Container, build_container
from cxloop.services import users
from cxloop.services.access import Actor
from cxloop.web.app import create_app
from sfemu.testing import EmulatorServer, run_in_thread

PASSWORD = "a long enough passphrase"
ROLES = ("owner", "editor", "viewer", "stranger", "admin")
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
AXE = Path(__file__).parent / "vendor" / "axe-core-4.11.0" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[3] / "test-results" / "ui"

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/ui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class UiServer:
    """The running app: its base URL, container and people (one per role)."""

    base_url: str
    container: Container
    emulator: EmulatorServer
    people: dict[str, Actor] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def actor(self, role: str) -> Actor:
        return self.people[role]

    def emulator_login(self, username: str = "admin@example.com") -> tuple[str, str]:
        """A Salesforce user of the emulator's org and its password, for its login page."""
        for org in self.emulator.info()["orgs"]:
            for user in org.get("users", []):
                if user["username"] == username:
                    return user["username"], user["password"]
        raise AssertionError(f"the emulator has no user {username}")


# The policy the pages must work under (the app sets its own headers elsewhere; this makes the
# browser refuse inline scripts, inline styles and eval in these tests in any case).
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'"


class CspHeader:
    """ASGI wrapper: every HTML page of the app under test is served with CSP."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_csp(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_csp if scope["type"] == "http" else send)


@pytest.fixture(scope="session")
def ui_emulator() -> Iterator[EmulatorServer]:
    """The emulator for the UI tests: a person logs in on its login page (no auto-login)."""
    with run_in_thread() as server:
        yield server


@pytest.fixture
def ui(tmp_path: Path, sqlite_template: Path, ui_emulator: EmulatorServer) -> Iterator[UiServer]:
    """cxloop on a free port with a fresh SQLite database, trusting the emulator; people for
    every role (owner, editor, viewer, stranger, admin), all with the password PASSWORD."""
    ui_emulator.control.post("/reset").raise_for_status()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    app_info = ui_emulator.info()["connected_apps"][0]
    ui_emulator.control.patch(
        f"/apps/{app_info['name']}",
        json={"add_callback_urls": [f"{base_url}/oauth/salesforce/callback"]},
    ).raise_for_status()
    database = tmp_path / "cxloop.db"
    shutil.copyfile(sqlite_template, database)
    settings = make_settings(
        tmp_path,
        f"sqlite:///{database}",
        f"sqlite:///{tmp_path / 'queue.db'}",
        base_url=base_url,
        salesforce_client_id=app_info["client_id"],
        salesforce_client_secret=app_info["client_secret"],
        salesforce_extra_hosts=[urlsplit(ui_emulator.base_url).netloc],
    )
    container = build_container(settings)
    app = CspHeader(create_app(container))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "cxloop did not start"
    running = UiServer(base_url, container, ui_emulator)
    for role in ROLES:
        user = users.create_user(
            container.db, f"{role}@example.com", PASSWORD, is_admin=role == "admin"
        )
        running.people[role] = Actor.of(user)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        container.close()


@pytest.fixture(params=["en", "de"])
def lang(request: pytest.FixtureRequest) -> str:
    """The UI language of the test's browser (its Accept-Language)."""
    return str(request.param)


@pytest.fixture
def viewport() -> str:
    """desktop, unless the test is parametrised over "phone"."""
    return "desktop"


@pytest.fixture(scope="session", autouse=True)
def patient_assertions() -> None:
    """`expect` waits as long as the pages' actions do: on a machine busy with the rest of the
    suite, a page that calls the emulator (the doctor, a describe) takes more than the default
    5 s, and a failure then says "not found" about a page that was still loading."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One Chromium for the tests of a module that a worker runs one after another: starting
    Playwright's driver and Chromium costs ~2 s of CPU a time (several seconds of the clock on
    a busy machine), and each test still gets browser contexts of its own (`new_page`: own
    cookies and storage), which is what keeps tests apart. Not session-wide: between calls
    Playwright's sync API marks its event loop as running in this thread, so a test of another
    module that calls asyncio.run (tests/sfemu/test_bad_input.py) would fail; pytest closes a
    module's fixtures before the worker's next test of another module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any, lang: str, viewport: str) -> Iterator[Callable[[], Any]]:
    """Open a fresh browser context (its own cookies) in the test's language and viewport."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(
            viewport=VIEWPORTS[viewport],
            locale="de-DE" if lang == "de" else "en-GB",
            extra_http_headers={"Accept-Language": "de-DE,de;q=0.9" if lang == "de" else "en"},
            has_touch=viewport == "phone",
        )
        context.set_default_timeout(20_000)
        # axe-core is injected the way DevTools does it (not an inline script, which the
        # pages' Content-Security-Policy refuses); `axe_check` runs it.
        context.add_init_script(path=str(AXE))
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: _note_csp_violation(message, problems))
        return page

    problems: list[str] = []
    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "the browser refused content under the CSP:\n" + "\n".join(problems)


def _note_csp_violation(message: Any, problems: list[str]) -> None:
    if message.type == "error" and "Content Security Policy" in message.text:
        problems.append(message.text)


def log_in(
    ui: UiServer, page: Any, email: str, lang: str, password: str = PASSWORD, *, goto: bool = True
) -> None:
    """Sign in through the login page, by its labels, in `lang` (`goto=False`: the page is on
    the login page already, e.g. sent there on the way to another page)."""
    if goto:
        page.goto(ui.url("/login"))
    page.get_by_role("textbox", name=text(lang, "Email", "E-Mail")).fill(email)
    page.get_by_label(text(lang, "Password", "Passwort"), exact=True).fill(password)
    page.get_by_role("button", name=text(lang, "Log in", "Anmelden"), exact=True).click()
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def signed_in(ui: UiServer, new_page: Callable[[], Any], lang: str) -> Callable[[str], Any]:
    """`signed_in(role)`: a page of a new browser signed in as that role's person."""

    def sign_in(role: str) -> Any:
        page = new_page()
        log_in(ui, page, f"{role}@example.com", lang)
        return page

    return sign_in


def text(lang: str, en: str, de: str) -> str:
    """The words a test expects, in the page's language."""
    return de if lang == "de" else en


def axe_check(page: Any) -> None:
    """Run axe-core on the page: no serious or critical violations (WCAG 2.x A and AA)."""
    # A click that navigates may leave the old document going away: check the loaded one.
    page.wait_for_load_state()
    result = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                             'best-practice']},
            resultTypes: ['violations']})"""
    )
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in bad
    )


def shoot(page: Any, name: str, lang: str, viewport: str) -> Path:
    """A full-page screenshot to test-results/ui/<name>-<lang>-<viewport>.png (not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{lang}-{viewport}.png"
    # Two tests may take the same view (accounts-empty) at once on two xdist workers: each
    # writes its own file and renames it over the shot, so the shot is always a whole picture.
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    # A long page's full shot waited past the 20 s default once, under a full suite's load.
    partial.write_bytes(page.screenshot(full_page=True, timeout=60_000))
    partial.replace(path)
    return path


def no_horizontal_scroll(page: Any) -> None:
    """The page fits its viewport's width (nothing scrolls sideways on a phone)."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
