"""The counts the admin pages show come from indexes (migration 0015) and stay right: responses
(all, finished), workflows and the latest response per survey; the Workflows tab's runs and
failures of the last 24 hours and each workflow's last run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from cxloop.bootstrap import Container
from cxloop.db.models import Response
from cxloop.db.run_models import Run
from cxloop.db.workflow_models import Workflow
from cxloop.services import surveys, users, workflow_builder
from cxloop.services.access import Actor

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _person(container: Container, email: str, *, admin: bool = False) -> Actor:
    return Actor.of(
        users.create_user(container.db, email, "a long enough passphrase", is_admin=admin)
    )


def _workflow(survey_id: str, owner: Actor, n: int) -> dict[str, object]:
    document = {"name": f"W{n}", "event": {"type": "survey_response", "when": ["created"]}}
    return {
        "id": f"WF_count{survey_id[-6:]}{n:05d}",
        "survey_id": survey_id,
        "name": f"W{n}",
        "enabled": True,
        "event_type": "survey_response",
        "document": document,
        "revision": 1,
        "created_by": owner.id,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _response(survey_id: str, n: int, *, finished: bool, at: datetime) -> dict[str, object]:
    return {
        "id": f"R_count{survey_id[-6:]}{n:05d}",
        "survey_id": survey_id,
        "values": {},
        "embedded_data": {},
        "started_at": at,
        "finished": finished,
        "source": "api",
        "language": "en",
        "created_at": at,
        "updated_at": at,
    }


def _run(survey_id: str, workflow_id: str, n: int, status: str, at: datetime) -> dict[str, object]:
    return {
        "id": f"RN_count{n:09d}",
        "survey_id": survey_id,
        "workflow_id": workflow_id,
        "workflow_name": "W",
        "workflow_revision": 1,
        "event_type": "survey_response",
        "event_key": f"response:R_{n}:created",
        "event_data": {},
        "status": status,
        "created_at": at,
    }


def test_survey_counts_are_per_survey_and_only_for_surveys_the_person_sees(
    container: Container,
) -> None:
    owner, stranger = _person(container, "o@example.com"), _person(container, "s@example.com")
    admin = _person(container, "a@example.com", admin=True)
    busy = surveys.create_survey(container.db, owner, "Busy").id
    empty = surveys.create_survey(container.db, owner, "Empty").id
    other = surveys.create_survey(container.db, stranger, "Not shared").id
    latest = NOW - timedelta(minutes=5)
    rows = [
        _response(busy, n, finished=n % 4 != 0, at=NOW - timedelta(hours=n)) for n in range(1, 9)
    ]
    rows.append(_response(busy, 99, finished=False, at=latest))
    rows.append(_response(other, 1, finished=True, at=NOW))
    with container.db.uow() as uow:
        uow.session.execute(insert(Response.__table__), rows)
        uow.session.execute(
            insert(Workflow.__table__), [_workflow(busy, owner, n) for n in range(3)]
        )
        uow.commit()

    stats = surveys.survey_stats(container.db, owner, [busy, empty, other])

    assert set(stats) == {busy, empty}  # the stranger's survey is not counted for the owner
    assert stats[busy] == surveys.SurveyStats(
        responses=9, finished_responses=6, workflows=3, last_response_at=latest
    )
    assert stats[empty] == surveys.SurveyStats()
    assert surveys.survey_stats(container.db, admin, [other])[other].responses == 1
    assert surveys.survey_stats(container.db, owner, []) == {}


def test_workflows_tab_counts_the_last_24_hours_and_shows_each_workflows_last_run(
    container: Container,
) -> None:
    owner = _person(container, "o@example.com")
    survey_id = surveys.create_survey(container.db, owner, "Tab").id
    flows = [_workflow(survey_id, owner, n) for n in range(3)]
    busy, quiet, never = (str(f["id"]) for f in flows)
    runs = [
        _run(survey_id, busy, 1, "succeeded", NOW - timedelta(hours=20)),
        _run(survey_id, busy, 2, "failed", NOW - timedelta(hours=2)),
        _run(survey_id, busy, 3, "paused", NOW - timedelta(hours=1)),
        _run(survey_id, busy, 4, "succeeded", NOW - timedelta(hours=30)),  # outside the window
        _run(survey_id, quiet, 5, "failed", NOW - timedelta(days=3)),
        _run(survey_id, quiet, 6, "succeeded", NOW - timedelta(days=2)),
    ]
    with container.db.uow() as uow:
        uow.session.execute(insert(Workflow.__table__), flows)
        uow.session.execute(insert(Run.__table__), runs)
        uow.commit()

    stats = workflow_builder.run_stats(container.db, owner, survey_id, now=NOW)

    assert never not in stats
    assert (stats[busy].runs_24h, stats[busy].failures_24h) == (3, 1)
    assert (stats[busy].last_status, stats[busy].last_run_at) == (
        "paused",
        NOW - timedelta(hours=1),
    )
    assert (stats[quiet].runs_24h, stats[quiet].failures_24h) == (0, 0)
    assert (stats[quiet].last_status, stats[quiet].last_run_at) == (
        "succeeded",
        NOW - timedelta(days=2),
    )
