"""No process-global state: two containers in one process never share caches, keys or a queue.

Every `cxloop` module is imported first, so that whatever a module would set up at import time
is there; then two containers (each with its own database, keys and queue) take a response
through a workflow each, and each keeps to its own. A static check beside it
(tests/unit/test_module_state.py) finds module-level mutable containers in the source.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select, text

import cxloop
from cxloop.bootstrap import Container, build_container
from cxloop.db.models import Connection
from cxloop.db.run_models import Run, TaskRun
from cxloop.db.workflow_models import Workflow
from cxloop.services import responses, survey_content, surveys, users
from cxloop.services.access import Actor
from tests.conftest import make_settings
from tests.integration.conftest import CONTENT
from tests.integration.test_engine import add_workflow

EMAIL_WORKFLOW = {
    "name": "Tell the account manager",
    "event": {"type": "survey_response", "when": ["created"]},
    "tasks": [
        {"id": "alert", "type": "email", "to": "am@example.com", "subject": "Hi", "body": "x"}
    ],
}


def import_every_module() -> list[str]:
    """Import every module of the cxloop package (the CLI, the web app, migrations aside)."""
    names = []
    for module in pkgutil.walk_packages(cxloop.__path__, "cxloop."):
        if ".migrations" in module.name or module.name == "cxloop.__main__":
            continue  # Alembic's scripts run inside Alembic only; __main__ runs the CLI
        importlib.import_module(module.name)
        names.append(module.name)
    return names


def a_container(tmp_path: Path, name: str, key: str) -> Container:
    folder = tmp_path / name
    folder.mkdir()
    settings = make_settings(
        folder,
        f"sqlite:///{folder / 'cxloop.db'}",
        f"sqlite:///{folder / 'queue.db'}",
        encryption_keys=key,
    )
    return build_container(settings, upgrade_sqlite=True)


def survey_with_workflow(container: Container) -> dict[str, Any]:
    user = users.create_user(container.db, "owner@example.com", None)
    actor = Actor(id=user.id, email=user.email, is_admin=False)
    survey = surveys.create_survey(container.db, actor, "Support NPS")
    survey_content.put_content(container.db, actor, survey.id, CONTENT)
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    setup = {"actor": actor, "survey_id": survey.id}
    setup["workflow_id"] = add_workflow(container, setup, EMAIL_WORKFLOW)
    return setup


def test_two_containers_in_one_process_keep_their_own_caches_keys_and_queue(
    tmp_path: Path,
) -> None:
    assert len(import_every_module()) > 100
    keys = {name: Fernet.generate_key().decode() for name in ("first", "second")}
    first = a_container(tmp_path, "first", keys["first"])
    second = a_container(tmp_path, "second", keys["second"])  # built last: must not take over
    try:
        assert first.ledger is not second.ledger
        assert first.engine_state is not second.engine_state
        setups = {}
        for container in (first, second):
            setups[id(container)] = setup = survey_with_workflow(container)
            document = {"values": {"QID1": 3}, "embedded_data": {"CaseId": "1"}}
            responses.submit_response(container.db, setup["actor"], setup["survey_id"], document)
        for container, other in ((first, second), (second, first)):
            setup = setups[id(container)]
            with container.db.reader() as uow:
                (run,) = uow.session.scalars(select(Run))
                (task_run,) = uow.session.scalars(select(TaskRun))
            assert run.workflow_id == setup["workflow_id"] and task_run.status == "pending"
            # Each ledger parsed its own workflow and survey content, and only its own.
            assert container.ledger.documents.parsed(setup["workflow_id"], 1) is not None
            assert other.ledger.documents.parsed(setup["workflow_id"], 1) is None
            assert container.ledger.contents.get(setup["survey_id"], 1) is not None
            assert other.ledger.contents.get(setup["survey_id"], 1) is None
            # Ready batch keys went to this container's queue, not the other's.
            assert len(container.huey) == 1
    finally:
        first.close()
        second.close()


def test_each_container_encrypts_with_its_own_keys_whichever_was_built_last(
    tmp_path: Path,
) -> None:
    # Bug: the keys of EncryptedText columns were a module global that each container set,
    # so the first container wrote (and read) its secrets with the last container's keys.
    keys = {name: Fernet.generate_key().decode() for name in ("first", "second")}
    first = a_container(tmp_path, "first", keys["first"])
    second = a_container(tmp_path, "second", keys["second"])
    try:
        for name, container in (("first", first), ("second", second)):
            setup = survey_with_workflow(container)
            with container.db.uow() as uow:
                workflow = uow.session.get(Workflow, setup["workflow_id"])
                workflow.outbound_token = f"token of the {name}"
                uow.commit()
            with container.db.reader() as uow:
                stored = uow.session.scalar(text("SELECT outbound_token FROM workflows"))
                assert uow.session.get(Workflow, setup["workflow_id"]).outbound_token == (
                    f"token of the {name}"
                )
            assert Fernet(keys[name].encode()).decrypt(stored.encode()).decode() == (
                f"token of the {name}"
            )
        with first.db.reader() as uow:  # the first still reads its own after the second wrote
            assert uow.session.scalars(select(Connection)).all() == []
            assert uow.session.scalar(select(Workflow.outbound_token)) == "token of the first"
    finally:
        first.close()
        second.close()
