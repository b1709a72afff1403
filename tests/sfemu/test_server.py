"""Running the emulator: a real server in a thread (HTTP and HTTPS), python -m sfemu and
cxloop emulator serve as subprocesses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sfemu.cli import main
from sfemu.testing import run_in_thread

from .conftest import PROJECT_ROOT


def test_run_in_thread_returns_a_working_base_url() -> None:
    with run_in_thread() as sf:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", sf)
        assert httpx.get(f"{sf}/services/data/").status_code == 200
        info = sf.info()
        assert info["base_url"] == sf
        with sf.client("integration@example.com") as api:
            assert api.get("/services/data/v62.0/limits").status_code == 200
        assert sf.emulator.org("acme") is not None


def test_tls_server_with_a_generated_ca() -> None:
    with run_in_thread(tls=True) as sf:
        assert sf.startswith("https://127.0.0.1:")
        assert sf.ca_file and Path(sf.ca_file).exists()
        response = httpx.get(f"{sf}/services/data/", verify=sf.verify)
        assert response.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{sf}/services/data/", verify=True)  # not trusted without the CA
        ca_dir = Path(sf.ca_file).parent
    assert not ca_dir.exists()  # certificates go to a temp dir that is removed


def wait_for_line(
    process: subprocess.Popen[str], pattern: str, timeout: float = 20.0
) -> tuple[str, str]:
    """The first group of the first output line matching pattern, and the output so far."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if line:
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match.group(1), "".join(seen)
        elif process.poll() is not None:
            break
    raise AssertionError("did not see " + pattern + " in:\n" + "".join(seen))


@pytest.mark.parametrize(
    "command",
    [
        [
            sys.executable,
            "-m",
            "sfemu",
            "serve",
            "--port",
            "0",
            "--auto-login",
            "admin@example.com",
        ],
        [
            sys.executable,
            "-c",
            "from cxloop.cli.main import app; app()",
            "emulator",
            "serve",
            "--port",
            "0",
            "--auto-login",
            "admin@example.com",
        ],
    ],
    ids=["python -m sfemu", "cxloop emulator serve"],
)
def test_standalone_server_prints_essentials_and_serves(command: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base, printed = wait_for_line(process, r"(http://127\.0\.0\.1:\d+)")
        info = None
        deadline = time.monotonic() + 15
        while info is None and time.monotonic() < deadline:
            try:
                info = httpx.get(f"{base}/__emulator__/info", timeout=1).json()
            except httpx.HTTPError:
                time.sleep(0.1)
        assert info is not None, "the server did not answer"
        assert info["auto_login"] == "admin@example.com"
        assert httpx.get(f"{base}/services/data/").status_code == 200
    finally:
        process.terminate()
        # Read through the text wrapper: communicate() would skip what it has buffered.
        printed += process.stdout.read() if process.stdout else ""
        process.wait(timeout=10)
    assert process.returncode in (0, -15)
    for essential in (
        "00D5g00000SfEmUEAV",
        "00D5g00000SfEmSEAV",
        "integration@example.com",
        info["connected_apps"][0]["client_id"],
        info["connected_apps"][0]["client_secret"],
        "http://127.0.0.1:8000/oauth/salesforce/callback",
    ):
        assert essential in printed, essential


def test_standalone_server_refuses_a_bad_org_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "org.yaml"
    broken.write_text("orgs: []\n", encoding="utf-8")
    assert main(["serve", "--port", "0", "--org", str(broken)]) == 2
    assert "define at least one org" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--auto-login", "ghost@example.com"]) == 2
    assert "no user 'ghost@example.com'" in capsys.readouterr().err
