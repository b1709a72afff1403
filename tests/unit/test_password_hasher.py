"""The password hasher production uses, apart from the cheap one the rest of the suite uses.

tests/conftest.py swaps `security._hasher` for a cheap argon2 for the whole session (hundreds of
users are made); these tests look at the real one: its exact parameters, and a hash made by the
module as a fresh process imports it, verified with them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import argon2
import pytest
from argon2 import Type

from cxloop import security

PRODUCTION = {
    "type": Type.ID,
    "version": 19,
    "time_cost": 3,
    "memory_cost": 65536,  # KiB: 64 MiB
    "parallelism": 4,
    "hash_len": 32,
    "salt_len": 16,
}

# A fresh interpreter: the module's own hasher, not the suite's replacement.
HASH_IN_A_FRESH_PROCESS = """
import json, sys
from cxloop import security
print(json.dumps({"hash": security.hash_password(sys.argv[1])}))
"""


def test_the_production_hasher_has_the_documented_argon2id_parameters() -> None:
    hasher = security.production_password_hasher()
    assert {
        "type": hasher.type,
        "time_cost": hasher.time_cost,
        "memory_cost": hasher.memory_cost,
        "parallelism": hasher.parallelism,
        "hash_len": hasher.hash_len,
        "salt_len": hasher.salt_len,
    } == {k: v for k, v in PRODUCTION.items() if k != "version"}


@pytest.fixture(scope="module")
def production_hash() -> str:
    """A hash of "correct horse battery" made by `security.hash_password` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", HASH_IN_A_FRESH_PROCESS, "correct horse battery"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)["hash"]


def test_hash_password_outside_the_suite_uses_the_production_parameters(
    production_hash: str,
) -> None:
    parameters = argon2.extract_parameters(production_hash)
    assert {name: getattr(parameters, name) for name in PRODUCTION} == PRODUCTION
    assert production_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_production_hash_verifies_only_the_right_password(
    production_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "_hasher", security.production_password_hasher())
    assert security.verify_password(production_hash, "correct horse battery")
    assert not security.verify_password(production_hash, "correct horse batterY")
    assert not security.verify_password(production_hash, "")
    # The parameters are read back from a stored hash: one made with the suite's cheap
    # parameters is told apart from a production one.
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
    assert security.production_password_hasher().check_needs_rehash(cheap)
    assert not security.production_password_hasher().check_needs_rehash(production_hash)
