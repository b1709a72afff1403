"""Processes a new user starts before linking: the server's base URL follows its port, and the
emulator's banner, piped to a file, keeps every id and URL whole (issue 13, items 1 and 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.test_processes import free_port

CXLOOP = [sys.executable, "-m", "cxloop"]


def clean_env(data_dir: Path) -> dict[str, str]:
    """No CXLOOP_* setting but the data directory, and a wide terminal that is not one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLOOP_")}
    return env | {"CXLOOP_DATA_DIR": str(data_dir)}


def started(args: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not re.search(ready, log.read_text(), re.M):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(log.read_text())
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_on_another_port_is_the_base_url_of_its_links_and_of_the_commands_beside_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = clean_env(tmp_path / "data")
    server = started([*CXLOOP, "serve", "--port", str(port)], env, tmp_path / "serve.log",
                     r"base URL")  # fmt: skip
    try:
        shown = (tmp_path / "serve.log").read_text()
        base = f"http://127.0.0.1:{port}"
        assert f"base URL {base} (from --host and --port" in shown, shown
        assert f"{base}/oauth/salesforce/callback" in shown, shown
        # A command run beside it (same data directory, no CXLOOP_BASE_URL) uses it too.
        config = subprocess.run([*CXLOOP, "config", "show", "--json"], env=env,
                                capture_output=True, text=True, check=True)  # fmt: skip
        assert json.loads(config.stdout)["base_url"] == base
        # A base URL that is set wins, and is not overwritten.
        given = subprocess.run(
            [*CXLOOP, "config", "show", "--json"], env=env | {"CXLOOP_BASE_URL": "https://cx.example"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(given.stdout)["base_url"] == "https://cx.example"
    finally:
        stop(server)


def test_the_derived_base_url_is_one_a_browser_can_open() -> None:
    from cxloop.cli.serve import derived_base_url  # new in issue 13

    assert derived_base_url("127.0.0.1", 8100) == "http://127.0.0.1:8100"
    assert derived_base_url("0.0.0.0", 8100) == "http://127.0.0.1:8100"
    assert derived_base_url("::", 8100) == "http://127.0.0.1:8100"
    assert derived_base_url("::1", 8100) == "http://[::1]:8100"
    assert derived_base_url("cx.internal", 80) == "http://cx.internal:80"


def test_the_emulator_banner_piped_to_a_file_keeps_ids_and_urls_whole(tmp_path: Path) -> None:
    public = "http://a-long-host-name-for-the-local-salesforce-emulator.localhost:8701"
    log = tmp_path / "emulator.log"
    env = clean_env(tmp_path / "data") | {"COLUMNS": "80"}
    emulator = started(
        [*CXLOOP, "emulator", "serve", "--port", "0", "--public-url", public], env, log,
        r"^  log in to acme-sandbox as integration",
    )  # fmt: skip
    try:
        lines = log.read_text().splitlines()
    finally:
        stop(emulator)
    client_id = "3MVG9sfemu.CXLOOP.LocalEmulator.ConsumerKey." + "0" * 40
    assert f"  client id      {client_id}" in lines, lines
    assert f"  login URL     {public}/sandbox" in lines, lines
    assert f"  cxloop connections add acme --type emulator --login-url {public}" in lines, lines
    assert (
        f"  cxloop connections add acme-sandbox --type emulator --login-url {public}/sandbox"
        in lines
    ), lines
    assert "  log in to acme as integration@example.com, password sfemu-integration " \
        "(cxloop Integration)" in lines, lines  # fmt: skip
    assert not any("…" in line for line in lines), lines
