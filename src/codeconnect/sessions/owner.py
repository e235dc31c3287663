"""The session owner's credential: the owner key made with the session, sent in the ``X-Owner-Key`` header (never
in a URL, where logs and browser history would keep it). Every owner-only route (settings, invites, controls,
deletion) takes it the same way; this module imports nothing of the domains, so every one of them can use it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from codeconnect.errors import Forbidden, Unauthorized
from codeconnect.models import SessionRow
from codeconnect.security import secret_matches

OwnerKey = Annotated[
    str | None, Header(alias="X-Owner-Key", description="The session's owner key, from its creation.")
]


def check_owner(row: SessionRow, owner_key: str | None) -> None:
    """401 ``owner_key_required`` without a key, 403 ``owner_key_invalid`` with one that is not this session's."""
    if not owner_key:
        raise Unauthorized(
            "This needs the session's owner key in the X-Owner-Key header.", code="owner_key_required"
        )
    if not secret_matches(owner_key, row.owner_key_hash):
        raise Forbidden("The owner key does not match this session.", code="owner_key_invalid")
