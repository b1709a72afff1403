"""`cxloop surveys transfer | transfers | accept-transfer | decline-transfer | cancel-transfer`
and `grants | grant-connection | revoke-connection`."""

from __future__ import annotations

import json
from pathlib import Path

from cxloop.bootstrap import Container
from cxloop.services import survey_content, surveys
from cxloop.services.access import Actor
from tests.integration.cli_helpers import cxloop, flat
from tests.integration.survey_helpers import quick_person
from tests.integration.test_workflows_api import CONTENT, add_connection, salesforce_workflow


def test_transfer_offer_accept_and_grants_from_the_command_line(
    cli_env: Path, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    bob = quick_person(container, "bob@example.com")
    add_connection(container, bob, "Bob's org")
    as_alice = Actor(alice.id, alice.email, False)
    survey = surveys.create_survey(container.db, as_alice, "NPS")
    survey_content.put_content(container.db, as_alice, survey.id, CONTENT)

    offered = cxloop("surveys", "transfer", survey.id, bob.email, "--user", alice.email)
    assert offered.exit_code == 0, offered.output
    transfer_id = offered.output.split("(", 1)[1].split(")", 1)[0]
    assert transfer_id.startswith("TR_") and "when they accept" in flat(offered.output)
    listed = cxloop("surveys", "transfers", "--user", bob.email)
    assert listed.exit_code == 0 and transfer_id in listed.output
    mine = cxloop("surveys", "accept-transfer", transfer_id, "--user", alice.email)
    assert mine.exit_code == 1 and "only they can accept" in flat(mine.output)
    accepted = cxloop(
        "surveys", "accept-transfer", transfer_id, "--keep-previous-owner", "--user", bob.email
    )
    assert accepted.exit_code == 0, accepted.output
    assert "previous owner stays on as editor" in flat(accepted.output)
    twice = cxloop("surveys", "decline-transfer", transfer_id, "--user", bob.email)
    assert twice.exit_code == 1 and "accepted already" in flat(twice.output)

    # the previous owner, now an editor, may pick bob's connection only once he allows it
    workflow = cli_env / "workflow.json"
    workflow.write_text(json.dumps(salesforce_workflow("Bob's org")))
    refused = cxloop("workflows", "apply", survey.id, str(workflow), "--user", alice.email)
    assert refused.exit_code != 0 and "has not been allowed" in flat(refused.output)
    by_editor = cxloop("surveys", "grant-connection", survey.id, "Bob's org", "--user", alice.email)
    assert by_editor.exit_code == 1 and "Only the owner" in flat(by_editor.output)
    granted = cxloop("surveys", "grant-connection", survey.id, "Bob's org", "--user", bob.email)
    assert granted.exit_code == 0, granted.output
    grants = cxloop("surveys", "grants", survey.id, "--user", alice.email)
    assert "Bob's org" in grants.output
    applied = cxloop("workflows", "apply", survey.id, str(workflow), "--user", alice.email)
    assert applied.exit_code == 0, applied.output
    revoked = cxloop("surveys", "revoke-connection", survey.id, "Bob's org", "--user", bob.email)
    assert revoked.exit_code == 0, revoked.output
    gone = cxloop("surveys", "revoke-connection", survey.id, "Bob's org", "--user", bob.email)
    assert gone.exit_code == 1 and "nothing to revoke" in flat(gone.output)


def test_bad_transfer_commands_exit_non_zero_with_one_line(
    cli_env: Path, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    bob = quick_person(container, "bob@example.com")
    survey = surveys.create_survey(container.db, Actor(alice.id, alice.email, False), "NPS")
    for args, reason in [
        (("transfer", survey.id, alice.email), "owns this survey already"),
        (("transfer", survey.id, "nobody@example.com"), "No user with email"),
        (("transfer", "SV_nope", bob.email), "No survey"),
        (("accept-transfer", "TR_nope"), "No transfer offer"),
        (("transfers", "--direction", "sideways"), "Unknown direction"),
    ]:
        result = cxloop("surveys", *args, "--user", alice.email)
        assert result.exit_code == 1, result.output
        assert reason in flat(result.output)
    offered = cxloop("surveys", "transfer", survey.id, bob.email, "--user", alice.email)
    transfer_id = offered.output.split("(", 1)[1].split(")", 1)[0]
    cancelled = cxloop("surveys", "cancel-transfer", transfer_id, "--user", alice.email)
    assert cancelled.exit_code == 0 and "Cancelled" in cancelled.output
