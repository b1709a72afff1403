"""Request dependencies: the container, and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cxloop.bootstrap import Container
from cxloop.db.uow import Database
from cxloop.errors import Forbidden, Unauthenticated
from cxloop.services import users
from cxloop.services.access import Actor

SESSION_USER_KEY = "user_id"


def get_container(request: Request) -> Container:
    return request.app.state.container


def get_db(request: Request) -> Database:
    return request.app.state.container.db


def api_actor(request: Request) -> Actor:
    """The user behind an API request: `Authorization: Bearer cxl_...` is required."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated(
            "This endpoint needs an API token: send `Authorization: Bearer <token>` "
            "(create one with `cxloop tokens create --user EMAIL`).",
            code="unauthenticated",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the API token as `Authorization: Bearer <token>`.", code="bad_token"
        )
    user = users.authenticate_token(get_db(request), token.strip())
    return Actor.of(user)


def admin_actor(actor: Annotated[Actor, Depends(api_actor)]) -> Actor:
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


ApiActor = Annotated[Actor, Depends(api_actor)]
AdminActor = Annotated[Actor, Depends(admin_actor)]
Db = Annotated[Database, Depends(get_db)]
AppContainer = Annotated[Container, Depends(get_container)]
