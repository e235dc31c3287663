"""Whether a session takes changes: an ended session (the owner's control, see ``controls``) refuses every REST
write with 409 ``session_ended``; reads go on. The live layer refuses its clients' updates by itself."""

from __future__ import annotations

from typing import Protocol

from codeconnect.errors import Conflict


class EndedView(Protocol):
    """What this needs of the live layer (``RoomRegistry``)."""

    async def ended(self, session_id: str) -> bool: ...


def session_ended() -> Conflict:
    return Conflict(
        "The session owner ended this session: it can be read, not changed, until the owner reopens it.",
        code="session_ended",
    )


async def check_open(live: EndedView, session_id: str) -> None:
    """409 ``session_ended`` when the owner ended the session."""
    if await live.ended(session_id):
        raise session_ended()
