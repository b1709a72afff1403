"""Request dependencies: the container, and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cxloop.bootstrap import Container
from cxloop.db.models import User
from cxloop.db.uow import Database
from cxloop.errors import Forbidden, Unauthenticated
from cxloop.services import throttle, users, web_sessions
from cxloop.services.access import Actor
from cxloop.services.response_intake import ResponseIntake

# The page session cookie holds only this: the random id of a server-side session.
SESSION_ID_KEY = "sid"


def get_container(request: Request) -> Container:
    return request.app.state.container


def get_db(request: Request) -> Database:
    return request.app.state.container.db


async def api_actor(request: Request) -> Actor:
    """The user behind an API request: `Authorization: Bearer cxl_...` is required.

    Async, so that a token accepted moments ago costs no trip to a worker thread of its own
    (only a read of the revocation generation, by primary key, shared with the requests
    around it); a token not in memory is looked up in the database, in a thread.
    """
    token = _bearer_token(request)
    container = get_container(request)
    try:
        user = await users.recently_authenticated(container.token_memory, token)
    except Unauthenticated:
        user = None  # not even shaped like a token: counted as a failure below
    if user is None:
        user = await _checked_in_full(request, token)
    return Actor.of(user)


async def remembered_api_actor(request: Request) -> tuple[Actor, int | None]:
    """`api_actor` without the read of the revocation generation, for a caller that compares
    it in its own transaction (the intake: `Submission.token_generation`): the user of a token
    accepted moments ago and the generation it was accepted under; for any other token,
    `api_actor`'s full check, and None."""
    token = _bearer_token(request)
    container = get_container(request)
    try:
        remembered = users.remembered_token(container.token_memory, token)
    except Unauthenticated:
        remembered = None  # not even shaped like a token: counted as a failure below
    if remembered is not None:
        return Actor.of(remembered.user), remembered.generation
    return Actor.of(await _checked_in_full(request, token)), None


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated(
            "This endpoint needs an API token: send `Authorization: Bearer <token>` "
            "(create one with `cxloop tokens create --user EMAIL`).",
            code="unauthenticated",
        )
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "Send the API token as `Authorization: Bearer <token>`.", code="bad_token"
        )
    return token


async def _checked_in_full(request: Request, token: str) -> User:
    """The token's user, looked up in the database (in a thread), with the failures counted
    against the client's address."""
    container = get_container(request)
    return await run_in_threadpool(
        users.check_token,
        container.db,
        throttle.Throttle(container.db, container.settings),
        token,
        throttle.client_address(request.client),
        container.token_memory,
    )


async def admin_actor(actor: Annotated[Actor, Depends(api_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("Only an admin can do this.")
    return actor


def session_actor(request: Request) -> Actor | None:
    """The user signed in to the web pages in this browser, if any (a live server-side
    session of an active user); a dead session is forgotten from the cookie."""
    session_id = request.session.get(SESSION_ID_KEY)
    if not session_id:
        return None
    container = get_container(request)
    user = web_sessions.resolve(container.db, container.settings, str(session_id))
    if user is None:
        request.session.clear()
        return None
    return Actor.of(user)


# Dependencies are async: FastAPI runs a plain `def` dependency in a worker thread, a trip
# that costs more than these lookups.
async def _container(request: Request) -> Container:
    return get_container(request)


async def _db(request: Request) -> Database:
    return get_db(request)


async def _response_intake(request: Request) -> ResponseIntake:
    return get_container(request).response_intake


ApiActor = Annotated[Actor, Depends(api_actor)]
AdminActor = Annotated[Actor, Depends(admin_actor)]
Db = Annotated[Database, Depends(_db)]
Intake = Annotated[ResponseIntake, Depends(_response_intake)]
AppContainer = Annotated[Container, Depends(_container)]
