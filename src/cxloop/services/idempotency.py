"""Safe retries of `POST /api/v1/surveys/{id}/responses`: an `Idempotency-Key` header and a
client-supplied response id.

A client whose request was interrupted (a timeout, a web process that died) cannot know
whether the response was stored. Retrying with the same key, or the same response `id`, stores
it at most once and answers the retry as the first request was answered (marked as a replay).

How "at most once" holds, even for two requests racing with one key:
- The first request with a key writes the key row (user, survey, key; a unique primary key)
  with the hash of its body and the response id it is about to store, and commits that before
  it stores the response. A second request with the key finds the row.
- The response's id is its primary key: of two requests storing the same id, one insert wins;
  the other finds the stored response and answers with it.
- After the response is stored, the key row keeps the answer itself, so a replay answers
  exactly that (status and body) even if the response was edited since.

A key reused with another body is refused (`idempotency_key_reused`): it names another request.
A refused submission (422) frees its key, since nothing was stored. Keys are kept for
`idempotency_key_ttl_s` (default 24 h) and swept hourly by the scheduler.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.operations_models import IdempotencyKey
from cxloop.db.uow import Database
from cxloop.errors import Conflict, CxloopError, InvalidInput
from cxloop.services.access import Actor, SurveyAccess
from cxloop.services.responses import StoredRow, new_response_id, response_document
from cxloop.services.responses.plan import RESPONSE_ID_PATTERN
from cxloop.services.survey_content import survey_ref

# The header of an answer that repeats an earlier one (the IETF draft's name is not settled;
# this one says what it means).
REPLAY_HEADER = "Idempotent-Replayed"
KEY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft's examples
_RESPONSE_ID = re.compile(RESPONSE_ID_PATTERN)
CREATED = 201


class IdempotencyKeyReused(InvalidInput):
    """The key was used before for a request with another body."""

    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Replay:
    """The answer of an earlier request, to give again."""

    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """A submission to store: the document (with the response id to use) and its key."""

    document: Any
    key: str | None = None
    response_id: str | None = None


def check_key(key: str | None) -> str | None:
    """The Idempotency-Key as given, or a refusal saying what a key may be."""
    if key is None:
        return None
    if not _KEY.match(key):
        raise InvalidInput(
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters "
            "(a UUID is a good choice).",
            code="invalid_idempotency_key",
        )
    return key


def is_retry_safe(document: Any, key: str | None) -> bool:
    """Whether a submission asks for safe retries: a key, or a response id of its own."""
    return key is not None or (isinstance(document, dict) and document.get("id") is not None)


def request_hash(document: Any) -> str:
    """A fingerprint of a request body: the same JSON gives the same hash, whatever the order
    of its keys."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def begin(
    db: Database, actor: Actor, survey_id: str, document: Any, key: str | None, *, ttl_s: int
) -> Replay | Claim:
    """Before storing a submission: the earlier answer to replay, or what to store."""
    response_id = _client_response_id(document)
    if key is None and response_id is None:
        return Claim(document)
    with db.uow() as uow:
        survey_ref(uow.session, survey_id, actor, SurveyAccess.EDIT)  # refuses as the submit would
        now = utcnow()
        if key is not None:
            found = _key_row(uow.session, actor, survey_id, key)
            if found is not None and found.expires_at <= now:
                uow.session.delete(found)
                uow.session.flush()
                found = None
            if found is not None:
                return _replay_or_claim(uow.session, found, document)
        if response_id is not None:
            replay = _stored(uow.session, survey_id, response_id)
            if replay is not None:
                return replay
        if key is None:
            return Claim(document, response_id=response_id)
        chosen = response_id or new_response_id()
        uow.session.add(
            IdempotencyKey(
                user_id=actor.id, survey_id=survey_id, key=key,
                request_hash=request_hash(document), response_id=chosen,
                created_at=now, expires_at=now + timedelta(seconds=ttl_s),
            )
        )  # fmt: skip
        try:
            uow.commit()
        except IntegrityError:
            raced = True  # another request with this key committed first
        else:
            raced = False
    if raced:
        with db.uow() as uow:
            found = _key_row(uow.session, actor, survey_id, key)
            if found is None:  # it was refused and freed meanwhile: this one may go
                return begin(db, actor, survey_id, document, key, ttl_s=ttl_s)
            return _replay_or_claim(uow.session, found, document)
    return Claim(_with_id(document, chosen), key=key, response_id=chosen)


def finish(
    db: Database, actor: Actor, survey_id: str, claim: Claim, response: Response | StoredRow
) -> None:
    """After the response was stored (the `Response`, or its row): keep the answer for
    replays of the key."""
    if claim.key is None:
        return
    with db.uow() as uow:
        found = _key_row(uow.session, actor, survey_id, claim.key)
        if found is not None:
            found.status_code = CREATED
            found.body = response_document(response)
            uow.commit()


def after_failure(
    db: Database, actor: Actor, survey_id: str, claim: Claim, error: Exception
) -> Replay:
    """After storing failed: the stored response when another request stored this very id
    first (a race of retries); otherwise the key is freed and `error` raised again."""
    if claim.response_id is not None and not isinstance(error, CxloopError):
        with db.reader() as uow:
            replay = _stored(uow.session, survey_id, claim.response_id)
        if replay is not None:
            return replay
    if claim.key is not None and isinstance(error, CxloopError):
        # Refused: nothing was stored, so the key may be used again (with a corrected body).
        with db.uow() as uow:
            uow.session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.user_id == actor.id,
                    IdempotencyKey.survey_id == survey_id,
                    IdempotencyKey.key == claim.key,
                    IdempotencyKey.status_code.is_(None),
                )
            )
            uow.commit()
    raise error


def forget_expired(db: Database, now: datetime | None = None) -> int:
    """Delete the keys whose time is up (the scheduler runs this hourly); returns how many."""
    with db.uow() as uow:
        deleted = uow.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow()))
        ).rowcount
        uow.commit()
    return deleted or 0


def _client_response_id(document: Any) -> str | None:
    if not isinstance(document, dict) or document.get("id") is None:
        return None
    response_id = document["id"]
    if not isinstance(response_id, str) or not _RESPONSE_ID.match(response_id):
        raise InvalidInput(
            "id: a ResponseId is R_ followed by 15 letters and digits",
            code="invalid_response",
            details=[
                {
                    "qid": None,
                    "code": "invalid_field",
                    "message": "id: a ResponseId is R_ followed by 15 letters and digits",
                    "field": "id",
                }
            ],
        )
    return response_id


def _with_id(document: Any, response_id: str) -> Any:
    return {**document, "id": response_id} if isinstance(document, dict) else document


def _key_row(session: Any, actor: Actor, survey_id: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == actor.id,
            IdempotencyKey.survey_id == survey_id,
            IdempotencyKey.key == key,
        )
    )


def _replay_or_claim(session: Any, found: IdempotencyKey, document: Any) -> Replay | Claim:
    if found.request_hash != request_hash(document):
        raise IdempotencyKeyReused(
            f"The Idempotency-Key {found.key!r} was used for a request with another body: "
            "a key stands for one request. Send this one with a new key.",
        )
    if found.status_code is not None and found.body is not None:
        return Replay(found.status_code, found.body)
    stored = _stored(session, found.survey_id, found.response_id)
    if stored is not None:
        return stored
    # The first request with this key has not stored its response (yet, or ever: it may have
    # been interrupted). Storing the same response id again is safe: only one insert can win.
    return Claim(
        _with_id(document, found.response_id), key=found.key, response_id=found.response_id
    )


def _stored(session: Any, survey_id: str, response_id: str) -> Replay | None:
    response = session.get(Response, response_id)
    if response is None:
        return None
    if response.survey_id != survey_id:
        raise Conflict(
            f"The response id {response_id!r} belongs to a response of another survey: "
            "choose a new id for this one.",
            code="response_id_taken",
        )
    return Replay(CREATED, response_document(response))
