"""Who a live connection speaks for: what the live layer needs of the participants domain, handed in when the
app is wired (so the live layer imports nothing of it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Participant:
    """Who holds a live-connection token."""

    id: str
    name: str
    color: str
    role: str


#: ``authenticate(session_id, token)``: the participant of the session holding the token, or None.
Authenticate = Callable[[str, str], Awaitable[Participant | None]]

#: ``issued(session_id, token, participant)``: a token the participants domain has just issued and committed, so
#: that its first live connection needs no database round trip.
Issued = Callable[[str, str, Participant], None]
