"""The contact frequency rule: at most N invitations per contact per D days.

Pure: the caller gives the rule, the clock and the times of the contact's earlier invitations;
this says whether one more is allowed and, if not, why in words and from when it would be.
An invitation counts while it is less than D days old: one sent at `t` stops counting at
`t + D days`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FrequencyDecision:
    """Whether another invitation may go now; when not, the reason and when it may."""

    allowed: bool
    recent: int  # invitations within the window
    reason: str = ""
    next_allowed_at: datetime | None = None


def check_frequency(
    max_invitations: int,
    days: int,
    now: datetime,
    earlier: Iterable[datetime],
    *,
    who: str = "The contact",
) -> FrequencyDecision:
    """Whether one more invitation keeps within `max_invitations` per `days` days.

    `earlier` are the times of the contact's earlier invitations (any order; older ones are
    ignored). `who` names the contact in the reason.
    """
    if max_invitations < 1 or days < 1:
        raise ValueError("a frequency rule needs at least 1 invitation and 1 day")
    window = timedelta(days=days)
    recent = sorted(t for t in earlier if t > now - window)
    if len(recent) < max_invitations:
        return FrequencyDecision(allowed=True, recent=len(recent))
    # The window must lose enough of its invitations to hold max - 1 of them.
    next_allowed_at = recent[len(recent) - max_invitations] + window
    reason = (
        f"{who} was invited {_count(len(recent), 'time')} in the last {_count(days, 'day')}; "
        f"the rule allows {max_invitations}. The next invitation may go from "
        f"{next_allowed_at.strftime('%Y-%m-%d %H:%M %Z').strip()}."
    )
    return FrequencyDecision(
        allowed=False, recent=len(recent), reason=reason, next_allowed_at=next_allowed_at
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
