"""Request dependencies: the container, and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cxloop.bootstrap import Container
from cxloop.db.uow import Database
from cxloop.errors import Forbidden, Unauthenticated
from cxloop.services import users
from cxloop.services.access import Actor
from cxloop.services.response_intake import ResponseIntake

SESSION_USER_KEY = "user_id"


def get_container(request: Request) -> Container:
    return request.app.state.container


def get_db(request: Request) -> Database:
    return request.app.state.container.db


async def api_actor(request: Request) -> Actor:
    """The user behind an API request: `Authorization: Bearer cxl_...` is required.

    Async, so that a token seen moments ago costs no trip to a worker thread; only a token
    not in memory is looked up in the database, in a thread.
    """
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
    user = users.recently_authenticated(token)
    if user is None:
        user = await run_in_threadpool(users.authenticate_token, get_db(request), token)
    return Actor.of(user)


async def admin_actor(actor: Annotated[Actor, Depends(api_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("Only an admin can do this.")
    return actor


def session_actor(request: Request) -> Actor | None:
    """The user logged in to the web pages, if any."""
    user_id = request.session.get(SESSION_USER_KEY)
    if not user_id:
        return None
    user = users.get_user(get_db(request), user_id)
    if user is None or not user.is_active:
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
