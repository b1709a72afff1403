"""/api/v1/users and /api/v1/tokens: who you are, users (admin), your API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import Field

from cxloop.db.models import ApiToken, User
from cxloop.errors import NotFound
from cxloop.services import users
from cxloop.web.api.schemas import MAX_ROW_ID, Reply, RequestBody
from cxloop.web.deps import AdminActor, ApiActor, Db

router = APIRouter(prefix="/api/v1", tags=["users"])


class UserOut(Reply):
    id: str
    email: str
    name: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(RequestBody):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(default="", max_length=200)
    is_admin: bool = False


class UserChange(RequestBody):
    password: str | None = Field(default=None, max_length=1024)
    is_active: bool | None = None


class TokenOut(Reply):
    id: int
    name: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(RequestBody):
    name: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenIssued(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")


@router.get("/users/me", response_model=UserOut)
def me(actor: ApiActor, db: Db) -> User | None:
    return users.get_user(db, actor.id)


@router.get("/users", response_model=list[UserOut])
def list_users(_admin: AdminActor, db: Db) -> list[User]:
    return users.list_users(db)


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserCreate, admin: AdminActor, db: Db) -> User:
    return users.create_user(
        db, body.email, body.password, is_admin=body.is_admin, name=body.name, actor=admin
    )


@router.patch("/users/{user_id}", response_model=UserOut)
def change_user(user_id: str, body: UserChange, admin: AdminActor, db: Db) -> User:
    """Set a user's password or deactivate (reactivate) them; either ends all their web
    sessions (a deactivated user's API tokens stop working too)."""
    user = users.get_user(db, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.", code="user_not_found")
    if body.password is not None:
        user = users.set_password(db, user.email, body.password, actor=admin)
    if body.is_active is not None:
        user = users.set_active(db, user.email, body.is_active, actor=admin)
    return user


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(actor: ApiActor, db: Db) -> list[ApiToken]:
    return users.list_tokens(db, actor.email)


@router.post("/tokens", status_code=201, response_model=TokenIssued)
def create_token(body: TokenCreate, actor: ApiActor, db: Db) -> TokenIssued:
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    issued = users.create_token(db, actor.email, body.name, expires_in=expires, actor=actor)
    return TokenIssued(**TokenOut.model_validate(issued.record).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[int, Path(le=MAX_ROW_ID)], actor: ApiActor, db: Db
) -> Response:
    users.revoke_token(db, token_id, actor=actor)
    return Response(status_code=204)
