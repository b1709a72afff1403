"""The screenshots of docs/ui.md, taken in one command:

    CXLOOP_TEST_UI_SCREENSHOTS=docs/ui .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/e2e/ui/test_runs_screenshots.py

Skipped unless CXLOOP_TEST_UI_SCREENSHOTS names the folder to write to (a CXLOOP_TEST_ name:
tests/conftest.py clears every other CXLOOP_ variable, so that no setting leaks into tests).
It builds what the guide shows through real flows (an account linked to the emulator, a survey
with two workflows, four runs, two of them failed), then opens each page of the admin's steps,
on a desktop and on a phone, in English. A page this build does not serve (404) is left out and
named in the test's output, so the same command takes every screenshot once all UI areas are
merged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.ui.conftest import UiServer, log_in
from tests.e2e.ui.test_runs import make_runs

pytestmark = pytest.mark.browser

TARGET = os.environ.get("CXLOOP_TEST_UI_SCREENSHOTS", "")


def _shot(page: Any, folder: Path, name: str, viewport: str) -> Path:
    path = folder / f"{name}-{viewport}.png"
    # The visible part on a desktop (small files); the whole page on a phone.
    page.screenshot(path=str(path), full_page=viewport == "phone")
    return path


def _try_click(page: Any, role: str, name: str) -> bool:
    """Click a control if this build has it (the other UI areas' controls, by their names)."""
    control = page.get_by_role(role, name=name, exact=True)
    if control.count() == 0:
        return False
    control.first.click()
    page.wait_for_load_state()
    return True


@pytest.mark.skipif(not TARGET, reason="set CXLOOP_TEST_UI_SCREENSHOTS=docs/ui to take them")
@pytest.mark.parametrize("lang", ["en"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_take_the_screenshots_of_the_ui_guide(
    ui: UiServer, new_page: Any, lang: str, viewport: str
) -> None:
    folder = Path(TARGET)
    folder.mkdir(parents=True, exist_ok=True)
    world = make_runs(ui)
    survey, failed = world["survey_id"], world["failed"][0]
    page = new_page()
    page.goto(ui.url("/login"))
    _shot(page, folder, "01-sign-in", viewport)
    log_in(ui, page, "owner@example.com", lang, goto=False)
    taken, missing = [], []
    steps = [
        ("02-surveys", "/surveys", None),
        ("03-workflows-tab", f"/surveys/{survey}/workflows", None),
        ("04-create-workflow", f"/surveys/{survey}/workflows", ("button", "Create workflow")),
        ("05-workflow-builder", f"/surveys/{survey}/workflows/{world['bad_workflow']}", None),
        ("06-accounts", "/accounts", None),
        ("07-add-account", "/accounts", ("button", "Add account")),
        ("08-runs", "/runs", None),
        ("09-runs-failed", f"/runs?survey={survey}&status=failed", None),
        ("10-run", f"/runs/{failed}", None),
        ("11-retry-confirm", f"/runs/{failed}", ("button", "Retry")),
    ]
    for name, path, click in steps:
        reply = page.goto(ui.url(path))
        if reply is None or reply.status != 200:
            missing.append(f"{name} ({path}: {reply.status if reply else 'no reply'})")
            continue
        if click and not _try_click(page, *click):
            missing.append(f"{name} (no {click[0]} {click[1]!r} on {path})")
            continue
        taken.append(_shot(page, folder, name, viewport).name)
    print(f"screenshots in {folder}: {', '.join(taken)}")
    if missing:
        print("not on this build: " + "; ".join(missing))
    assert "10-run-" + viewport + ".png" in taken
