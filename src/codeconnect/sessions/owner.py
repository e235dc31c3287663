"""The owner's key: what owner-only actions check (settings, invites, controls). Imports nothing of the domains,
so every one of them can use it."""

from __future__ import annotations

from codeconnect.errors import Forbidden, Unauthorized
from codeconnect.models import SessionRow
from codeconnect.security import secret_matches


def check_owner(row: SessionRow, owner_key: str | None) -> None:
    if not owner_key:
        raise Unauthorized(
            "This needs the session's owner key in the X-Owner-Key header.", code="owner_key_required"
        )
    if not secret_matches(owner_key, row.owner_key_hash):
        raise Forbidden("The owner key does not match this session.", code="owner_key_invalid")
