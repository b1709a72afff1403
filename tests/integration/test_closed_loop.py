"""The closed loop in this process, through the demo's own servers: what `cxloop demo --headless`
does, plus what a subprocess cannot easily show (a redelivered message, a step that times out)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxloop.demo import Demo, Step
from cxloop.demo.seed import ORG


def start_demo(tmp_path: Path, step_timeout_s: float = 30.0) -> Demo:
    demo = Demo(
        port=0,
        emulator_port=0,
        smtp_port=0,
        mail_port=0,
        data_dir=tmp_path / "data",
        step_timeout_s=step_timeout_s,
        configure_logs=False,
    )
    demo.start()
    try:
        demo.seed()
    except BaseException:
        demo.stop()
        raise
    return demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = start_demo(tmp_path)
    yield running
    running.stop()


def test_the_loop_closes_and_a_redelivered_message_sends_no_second_invitation(
    demo: Demo,
) -> None:
    steps: list[Step] = []
    demo.run_loop(steps.append)
    assert all(s.ok for s in steps), [s for s in steps if not s.ok]
    assert demo.catcher is not None
    [invitation] = demo.catcher.mailbox.messages()
    assert invitation.envelope_to == ["jeraldine.black@example.com"]
    # greeted by first name, not the Case's full SuppliedName (issue 13)
    assert invitation.text.startswith("Hello Jeraldine,\n"), invitation.text[:80]
    assert invitation.to == "Jeraldine Black <jeraldine.black@example.com>"
    assert any("/optout/" in link for link in invitation.links)

    # Salesforce delivers at least once: the same notification again changes nothing.
    with demo.emulator() as control:
        [notification] = control.get("/outbound", params={"org": ORG}).json()["notifications"]
        control.post(f"/outbound/{notification['id']}/redeliver").raise_for_status()
        deadline = time.monotonic() + 15
        while True:
            [again] = control.get("/outbound", params={"org": ORG}).json()["notifications"]
            if again["status"] == "delivered" and again["deliveries"] >= 2:
                break
            assert time.monotonic() < deadline, again
            time.sleep(0.05)
    time.sleep(0.5)  # what a second run would have needed to send a mail
    assert len(demo.catcher.mailbox) == 1
    with demo.api() as api:
        runs = api.get("/api/v1/runs", params={"workflow_id": demo.seeded.outbound_workflow_id})
    assert len(runs.json()["items"]) == 1


def test_a_step_that_cannot_finish_fails_with_its_reason_and_the_rest_do_not_run(
    tmp_path: Path,
) -> None:
    demo = start_demo(tmp_path, step_timeout_s=2)
    try:
        assert demo.container is not None
        demo.container.settings.smtp_port = 9  # nothing listens: the invitation cannot go out
        steps: list[Step] = []
        started = time.monotonic()
        demo.run_loop(steps.append)
        assert time.monotonic() - started < 15
    finally:
        demo.stop()
    assert [s.ok for s in steps] == [True, True, False, False, False, False, False]
    failed = steps[2]
    assert failed.name == "The invitation arrives in the mail catcher"
    assert failed.detail.startswith("no invitation mail arrived within 2 s")
    assert "could not be reached" in failed.detail  # from cxloop's run history
    assert steps[3].detail == f"not run: {failed.name!r} failed"
