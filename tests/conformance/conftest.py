"""Conformance fixtures: the emulator as a real server on loopback (HTTPS for simple-salesforce,
HTTP for the OAuth flow), clients nobody here wrote, and the reference samples of ../shared."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from sfemu.testing import EmulatorServer, run_in_thread
from tests.conftest import reference_sample

API_VERSION = "62.0"


def reference_file(name: str) -> Path:
    """A file of ../shared/reference/salesforce; missing, the test skips saying why (fails under
    CI=true)."""
    return reference_sample("salesforce", name)


@pytest.fixture(scope="session")
def https_emulator() -> Iterator[EmulatorServer]:
    """One emulator over HTTPS (generated CA) for the whole session; tests reset it."""
    with run_in_thread(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def http_emulator() -> Iterator[EmulatorServer]:
    """One emulator over plain HTTP for the whole session; tests reset it."""
    with run_in_thread() as server:
        yield server


@pytest.fixture
def sfemu(https_emulator: EmulatorServer) -> EmulatorServer:
    """The HTTPS emulator, reset to the org file."""
    https_emulator.control.post("/reset", json={}).raise_for_status()
    return https_emulator


@pytest.fixture
def http_sfemu(http_emulator: EmulatorServer) -> EmulatorServer:
    """The HTTP emulator, reset to the org file."""
    http_emulator.control.post("/reset", json={}).raise_for_status()
    return http_emulator


@pytest.fixture
def salesforce(sfemu: EmulatorServer) -> Iterator[Callable[..., Salesforce]]:
    """Make a simple_salesforce.Salesforce for a user, connected over HTTPS with a bearer token
    as after an OAuth flow (instance_url + session_id)."""
    sessions: list[requests.Session] = []

    def connect(username: str = "admin@example.com", version: str = API_VERSION) -> Salesforce:
        token = sfemu.token(username)
        session = requests.Session()
        session.verify = sfemu.ca_file
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
        sessions.append(session)
        return Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=session,
            version=version,
        )

    yield connect
    for session in sessions:
        session.close()


def loads_first_json(text: str, start: str) -> Any:
    """The JSON value that begins at the first occurrence of `start` in a text sample."""
    import json

    index = text.index(start)
    value, _end = json.JSONDecoder().raw_decode(text[index:])
    return value
