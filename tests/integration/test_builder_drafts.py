"""services/builder_drafts.py on both databases: a draft opens only for its user, web session
and survey, until it expires; a form too large is refused; one browser keeps at most ten;
discarding someone else's draft does nothing; ending the session ends its drafts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.workflow_models import BuilderDraft
from cxloop.errors import Expired, Forbidden, NotFound, TooLarge
from cxloop.services import builder_drafts, surveys, web_sessions
from cxloop.services.access import Actor
from tests.conftest import Person


def _actor(container: Container, person: Person) -> Actor:
    from cxloop.db.models import User

    with container.db.reader() as uow:
        return Actor.of(uow.session.get(User, person.id))


PAIRS = [("name", "Half built"), ("tasks[0].type", "salesforce"), ("csrf", "x"), ("op", "y")]


def _count(container: Container) -> int:
    with container.db.reader() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(BuilderDraft)) or 0)


def test_a_draft_opens_for_its_user_session_and_survey_only(
    container: Container, alice: Person, bob: Person
) -> None:
    owner = _actor(container, alice)
    survey = surveys.create_survey(container.db, owner, "Drafts")
    session = web_sessions.start(container.db, container.settings, alice.id)
    other_session = web_sessions.start(container.db, container.settings, alice.id)
    kept = builder_drafts.keep_draft(container.db, owner, session, survey.id, None, PAIRS, "3")
    assert kept.id.startswith("BD_") and kept.revision == "3"
    opened = builder_drafts.open_draft(container.db, owner, session, survey.id, kept.id)
    assert opened.pairs == [("name", "Half built"), ("tasks[0].type", "salesforce")]  # no csrf
    assert builder_drafts.open_draft(container.db, owner, session, survey.id, kept.id) == opened

    elsewhere = surveys.create_survey(container.db, owner, "Elsewhere")
    for session_id, survey_id, draft_id in (
        (other_session, survey.id, kept.id),  # the same user in another browser
        (session, elsewhere.id, kept.id),  # another survey's address
        (session, survey.id, "BD_madeupmadeupmad"),  # a made-up id
        (session, survey.id, "x" * 500),  # nonsense
    ):
        with pytest.raises(NotFound):
            builder_drafts.open_draft(container.db, owner, session_id, survey_id, draft_id)
    # Another user, even with the session id: the survey is not theirs, and then not the draft.
    stranger = _actor(container, bob)
    with pytest.raises(NotFound):
        builder_drafts.open_draft(container.db, stranger, session, survey.id, kept.id)


def test_an_editor_cannot_open_the_owners_draft_and_a_viewer_cannot_keep_one(
    container: Container, alice: Person, bob: Person, carol: Person
) -> None:
    owner = _actor(container, alice)
    survey = surveys.create_survey(container.db, owner, "Shared")
    surveys.add_collaborator(container.db, owner, survey.id, bob.email, "editor")
    surveys.add_collaborator(container.db, owner, survey.id, carol.email, "viewer")
    session = web_sessions.start(container.db, container.settings, alice.id)
    kept = builder_drafts.keep_draft(container.db, owner, session, survey.id, None, PAIRS, "")
    editor = _actor(container, bob)
    editor_session = web_sessions.start(container.db, container.settings, bob.id)
    with pytest.raises(NotFound):
        builder_drafts.open_draft(container.db, editor, editor_session, survey.id, kept.id)
    viewer = _actor(container, carol)
    viewer_session = web_sessions.start(container.db, container.settings, carol.id)
    with pytest.raises(Forbidden):
        builder_drafts.keep_draft(container.db, viewer, viewer_session, survey.id, None, PAIRS, "")
    builder_drafts.discard_draft(container.db, editor, editor_session, kept.id)  # not theirs
    assert builder_drafts.open_draft(container.db, owner, session, survey.id, kept.id)


def test_an_expired_draft_says_so_once_and_is_gone(container: Container, alice: Person) -> None:
    owner = _actor(container, alice)
    survey = surveys.create_survey(container.db, owner, "Expiring")
    session = web_sessions.start(container.db, container.settings, alice.id)
    kept = builder_drafts.keep_draft(container.db, owner, session, survey.id, None, PAIRS, "")
    assert kept.expires_at - utcnow() <= builder_drafts.DRAFT_LIFETIME
    with container.db.uow() as uow:
        uow.session.execute(update(BuilderDraft).values(expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    with pytest.raises(Expired):
        builder_drafts.open_draft(container.db, owner, session, survey.id, kept.id)
    with pytest.raises(NotFound):
        builder_drafts.open_draft(container.db, owner, session, survey.id, kept.id)
    assert _count(container) == 0


def test_a_browser_keeps_ten_drafts_at_most_and_a_huge_form_is_refused(
    container: Container, alice: Person
) -> None:
    owner = _actor(container, alice)
    survey = surveys.create_survey(container.db, owner, "Many")
    session = web_sessions.start(container.db, container.settings, alice.id)
    kept = [
        builder_drafts.keep_draft(container.db, owner, session, survey.id, None, PAIRS, "")
        for _ in range(builder_drafts.MAX_DRAFTS_PER_SESSION + 3)
    ]
    assert _count(container) == builder_drafts.MAX_DRAFTS_PER_SESSION
    assert builder_drafts.open_draft(container.db, owner, session, survey.id, kept[-1].id)
    with pytest.raises(TooLarge):
        builder_drafts.keep_draft(
            container.db, owner, session, survey.id, None,
            [("description", "x" * builder_drafts.MAX_DRAFT_BYTES)], "",
        )  # fmt: skip


def test_ending_the_session_ends_its_drafts(container: Container, alice: Person) -> None:
    owner = _actor(container, alice)
    survey = surveys.create_survey(container.db, owner, "Logout")
    session = web_sessions.start(container.db, container.settings, alice.id)
    builder_drafts.keep_draft(container.db, owner, session, survey.id, None, PAIRS, "")
    assert _count(container) == 1
    web_sessions.end(container.db, session)
    assert _count(container) == 0
