"""The workflow builder's unsaved form, kept on the server while its user is on an account's
page (Add account, which goes through Salesforce's login; Rename, Refresh, Remove).

A draft belongs to one user *and* one signed-in browser (its web session: logging out ends
it), to one survey (and the workflow it edits, if saved), and expires after
`DRAFT_LIFETIME`, longer than a Salesforce login may take (`oauth_attempt_ttl_s`, 15 minutes
by default) but not long enough to be mistaken for a saved workflow. A draft id from anywhere
else (another user, another browser, another survey, a made-up id) is "not found", whoever
asks: the id alone opens nothing. Opening a draft does not use it up (a reload shows it
again); saving the workflow discards it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from cxloop.db.base import utcnow
from cxloop.db.uow import Database
from cxloop.db.workflow_models import BuilderDraft
from cxloop.errors import Expired, NotFound, TooLarge
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.web_sessions import session_hash

DRAFT_LIFETIME = timedelta(hours=1)
# A builder form is a few KB; a workflow document may be at most 1 MB as YAML.
MAX_DRAFT_BYTES = 1_000_000
# Drafts one browser keeps at a time (each trip to an account's page makes one).
MAX_DRAFTS_PER_SESSION = 10
# Form fields that belong to one request, not to the workflow.
_NOT_KEPT = frozenset({"csrf", "op", "revision", "draft"})


@dataclass(frozen=True)
class Draft:
    """A kept builder form: its survey, the workflow it edits (None: a new one), the revision
    the form was opened at, and the form's (name, value) pairs."""

    id: str
    survey_id: str
    workflow_id: str | None
    revision: str
    pairs: list[tuple[str, str]]
    expires_at: datetime


def keep_draft(
    db: Database,
    actor: Actor,
    session_id: str,
    survey_id: str,
    workflow_id: str | None,
    pairs: Sequence[tuple[str, str]],
    revision: str,
) -> Draft:
    """Keep the builder's form of `survey_id` (editors and up) for this browser's session;
    returns the draft, whose id the way back carries. Too large a form is refused (TooLarge)."""
    kept = [[str(k), str(v)] for k, v in pairs if k not in _NOT_KEPT]
    if len(json.dumps(kept, separators=(",", ":"))) > MAX_DRAFT_BYTES:
        raise TooLarge(
            "The workflow's form is too large to keep; save it first.", code="draft_too_large"
        )
    now = utcnow()
    owner_session = session_hash(session_id)
    with db.uow() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        uow.session.execute(delete(BuilderDraft).where(BuilderDraft.expires_at <= now))
        older = uow.session.scalars(
            select(BuilderDraft.id)
            .where(BuilderDraft.session_hash == owner_session)
            .order_by(BuilderDraft.created_at.desc(), BuilderDraft.id.desc())
            .offset(MAX_DRAFTS_PER_SESSION - 1)
        ).all()
        if older:
            uow.session.execute(delete(BuilderDraft).where(BuilderDraft.id.in_(older)))
        draft = BuilderDraft(
            user_id=actor.id,
            session_hash=owner_session,
            survey_id=survey_id,
            workflow_id=workflow_id,
            revision=revision[:12] if revision.isdecimal() else "",
            form=kept,
            created_at=now,
            expires_at=now + DRAFT_LIFETIME,
        )
        uow.session.add(draft)
        uow.commit()
        return _draft_of(draft)


def open_draft(db: Database, actor: Actor, session_id: str, survey_id: str, draft_id: str) -> Draft:
    """This browser's draft `draft_id` of `survey_id`, while the actor may still edit the
    survey. NotFound for any draft not this session's (or none); Expired once its time is
    over (it is deleted then)."""
    with db.uow() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        draft = uow.session.get(BuilderDraft, draft_id) if len(draft_id) <= 20 else None
        if (
            draft is None
            or draft.user_id != actor.id
            or draft.session_hash != session_hash(session_id)
            or draft.survey_id != survey_id
        ):
            raise NotFound(f"No draft {draft_id!r} in this browser.", subject="draft")
        if draft.expires_at <= utcnow():
            uow.session.delete(draft)
            uow.commit()
            raise Expired(
                "The unsaved workflow kept while you were away has expired.",
                code="draft_expired",
            )
        return _draft_of(draft)


def discard_draft(db: Database, actor: Actor, session_id: str, draft_id: str) -> None:
    """Forget this browser's draft (once its workflow is saved); any other id is ignored."""
    with db.uow() as uow:
        uow.session.execute(
            delete(BuilderDraft).where(
                BuilderDraft.id == draft_id,
                BuilderDraft.user_id == actor.id,
                BuilderDraft.session_hash == session_hash(session_id),
            )
        )
        uow.commit()


def _draft_of(row: BuilderDraft) -> Draft:
    pairs = [
        (item[0], item[1])
        for item in row.form
        if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
    ]
    return Draft(row.id, row.survey_id, row.workflow_id, row.revision, pairs, row.expires_at)
