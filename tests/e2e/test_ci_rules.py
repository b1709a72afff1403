"""The CI rule for the reference samples of ../shared: a CI run without them cannot pass.

Outside CI a test that needs a sample skips saying why; under CI=true it fails, as a missing
PostgreSQL does, and `.ci/run` stops before starting anything, with a one-line reason. CI runs
the suite on pytest-xdist workers (Makefile), so the CI=true run here does too: the rule must
hold in every worker, each of which fails its own tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# One test of each place that loads a sample, and one that only used to (a fault template).
NEEDS_A_SAMPLE = [
    "tests/conformance/test_reference_samples.py::test_versions_list_shape_and_labels",
    "tests/sfemu/test_ids.py::test_checksum_matches_every_reference_vector",
    "tests/unit/test_outbound_message.py::test_the_ack_is_the_reference_answer",
    "tests/unit/test_qsf_import.py::test_real_export_sample_survey",
    "tests/integration/test_outbound_listener.py::"
    "test_the_reference_sample_is_acknowledged_once_and_a_replay_changes_nothing[sqlite]",
    "tests/integration/test_survey_content_api.py::"
    "test_qsf_files_of_several_shapes_import_with_a_report[sqlite]",
]
BUILDS_ITS_OWN_FAULT = (
    "tests/sfemu/test_outbound.py::test_failed_deliveries_are_retried_until_acknowledged"
)


def run_without_samples(
    tmp_path: Path, *, ci: bool, xdist: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest on the tests that need a sample, with ../shared elsewhere; `xdist` are the
    pytest-xdist options (None: one process, as a developer runs a file)."""
    # not CI, nor this worker's xdist identity (the inner run is a test session of its own)
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_XDIST")}
    env["CXLOOP_TEST_SHARED_DIR"] = str(tmp_path / "no-shared-here")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rfs", "-p", "no:cacheprovider",
         *(xdist or ["-q"]), *NEEDS_A_SAMPLE, BUILDS_ITS_OWN_FAULT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip


def outcome(output: str) -> dict[str, int]:
    """`1 failed, 2 passed ...` of pytest's last line, as {"failed": 1, "passed": 2}."""
    last = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


@pytest.mark.slow
def test_under_ci_a_missing_reference_sample_fails_the_test_in_every_xdist_worker(
    tmp_path: Path,
) -> None:
    # -v: each result line names its worker ("[gw1] [ 42%] FAILED tests/...")
    done = run_without_samples(tmp_path, ci=True, xdist=["-n", "2", "--dist", "load", "-v"])
    assert done.returncode == 1, done.stdout[-3000:]
    assert outcome(done.stdout) == {"failed": len(NEEDS_A_SAMPLE), "passed": 1}, done.stdout
    failed_in = set(re.findall(r"^\[(gw\d+)\] .*FAILED", done.stdout, re.M))
    assert failed_in == {"gw0", "gw1"}, done.stdout
    reasons = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert len(reasons) == len(NEEDS_A_SAMPLE)
    assert all("CI=true and the reference sample" in line for line in reasons), reasons
    assert all("no-shared-here" in line for line in reasons), reasons


@pytest.mark.slow
def test_outside_ci_a_missing_reference_sample_skips_saying_why(tmp_path: Path) -> None:
    done = run_without_samples(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert outcome(done.stdout) == {"passed": 1, "skipped": len(NEEDS_A_SAMPLE)}, done.stdout
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons and all("is missing: check out the shared directory" in r for r in reasons)


def test_ci_run_stops_first_with_one_line_when_the_samples_are_missing(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", project / ".ci" / "run")
    env = {k: v for k, v in os.environ.items() if k != "CXLOOP_TEST_SHARED_DIR"}
    done = subprocess.run(
        ["bash", str(project / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == ""  # nothing was started
    assert done.stderr.strip().splitlines() == [
        "ci: ../shared/reference is missing: check out the shared directory beside the project"
    ]
