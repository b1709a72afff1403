"""Response events: what runs when a response is created or updated, inside its transaction.

Creating, updating or importing a response calls `on_response_event` before the commit, with
the session the response was written in. Hooks (the workflow matcher) register here; whatever
they add to the session commits with the response, and an exception in a hook rolls the
response back too, so a response is never stored without its consequences.

An import writes responses in batches of hundreds per transaction and calls
`on_response_events` once per batch. A hook registered with a `for_many` variant gets the whole
batch in one call (one query for the survey's workflows instead of one per response); any other
hook is called once per response, as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from cxloop.db.models import Response
    from cxloop.db.uow import UnitOfWork

ResponseEvent = Literal["created", "updated"]
ResponseHook = Callable[[Session, "Response", ResponseEvent, "UnitOfWork"], None]
ResponsesHook = Callable[[Session, Sequence["Response"], ResponseEvent, "UnitOfWork"], None]

# (session, survey ids, source) -> whether new responses from that source could matter
InterestCheck = Callable[[Session, Sequence[str], str], bool]

_hooks: list[ResponseHook] = []
_for_many: dict[ResponseHook, ResponsesHook] = {}
_interest: dict[ResponseHook, InterestCheck] = {}


def register_hook(
    hook: ResponseHook,
    *,
    for_many: ResponsesHook | None = None,
    interested: InterestCheck | None = None,
) -> Callable[[], None]:
    """Call `hook(session, response, event, uow)` on every response event; returns an undo.

    `for_many(session, responses, event, uow)`, when given, is called instead for a batch of
    responses written together; it must do what calling `hook` for each would do.
    `interested(session, survey_ids, source)`, when given, says cheaply whether the hook could
    do anything for new responses of those surveys from that source (an import asks once per
    batch, and skips building response objects nobody wants).
    """
    _hooks.append(hook)
    if for_many is not None:
        _for_many[hook] = for_many
    if interested is not None:
        _interest[hook] = interested

    def unregister() -> None:
        if hook in _hooks:
            _hooks.remove(hook)
        if hook not in _hooks:
            _for_many.pop(hook, None)
            _interest.pop(hook, None)

    return unregister


def registered_hooks() -> tuple[ResponseHook, ...]:
    """The registered hooks, in the order they run."""
    return tuple(_hooks)


def any_hook_interested(session: Session, survey_ids: Sequence[str], source: str) -> bool:
    """Whether a hook could do anything for new responses of these surveys from `source`
    (a hook registered without an interest check always could)."""
    for hook in tuple(_hooks):
        interested = _interest.get(hook)
        if interested is None or interested(session, survey_ids, source):
            return True
    return False


def on_response_event(
    session: Session, response: Response, event: ResponseEvent, uow: UnitOfWork
) -> None:
    """Run every registered hook for this event, in registration order, before the commit.

    `uow.after_commit(...)` is where a hook puts what must only happen once the response is
    stored (sending ids to the queue).
    """
    for hook in tuple(_hooks):
        hook(session, response, event, uow)


def on_response_events(
    session: Session, responses: Sequence[Response], event: ResponseEvent, uow: UnitOfWork
) -> None:
    """The same event for many responses of one transaction (an import batch)."""
    if not responses:
        return
    for hook in tuple(_hooks):
        many = _for_many.get(hook)
        if many is not None:
            many(session, responses, event, uow)
        else:
            for response in responses:
                hook(session, response, event, uow)
