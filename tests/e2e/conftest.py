"""What the browser tests share: Debian's Chromium, launched as this machine allows, and the
app of the test's container served on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxloop.bootstrap import Container
from cxloop.web.app import create_app
from cxloop.web.background import BackgroundServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Chromium's path; a missing browser skips the test (fails it under CI=true)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture
def base_url(container: Container) -> Iterator[str]:
    """The app of `container`, served by uvicorn in a thread on a free port: its URL."""
    server = BackgroundServer(port=0, name="cxloop-browser-test")
    server.start(create_app(container))
    yield server.url
    server.stop()
