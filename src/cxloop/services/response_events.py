"""Response events: what runs when a response is created or updated, inside its transaction.

Creating, updating or importing a response calls `on_response_event` before the commit, with
the session the response was written in. Hooks (the workflow matcher, once the engine is there)
register here; whatever they add to the session commits with the response, and an exception in a
hook rolls the response back too, so a response is never stored without its consequences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from cxloop.db.models import Response
    from cxloop.db.uow import UnitOfWork

ResponseEvent = Literal["created", "updated"]
ResponseHook = Callable[[Session, "Response", ResponseEvent, "UnitOfWork"], None]

_hooks: list[ResponseHook] = []


def register_hook(hook: ResponseHook) -> Callable[[], None]:
    """Call `hook(session, response, event, uow)` on every response event; returns an undo."""
    _hooks.append(hook)

    def unregister() -> None:
        if hook in _hooks:
            _hooks.remove(hook)

    return unregister


def has_hooks() -> bool:
    """Whether any hook is registered (bulk imports skip building per-row events without)."""
    return bool(_hooks)


def on_response_event(
    session: Session, response: Response, event: ResponseEvent, uow: UnitOfWork
) -> None:
    """Run every registered hook for this event, in registration order, before the commit.

    `uow.after_commit(...)` is where a hook puts what must only happen once the response is
    stored (sending ids to the queue).
    """
    for hook in tuple(_hooks):
        hook(session, response, event, uow)


def registered_hooks() -> tuple[ResponseHook, ...]:
    return tuple(_hooks)
