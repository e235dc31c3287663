"""Owner links: the owner hands the session's owner key to another browser, once. No HTTP here.

Who needs it: in `api-key` mode an integration (an interview platform's backend) creates the session with its API
key and gets the owner key; no browser has it, so nobody can open the session's page as its owner. The same holds
for an owner moving to another device. The integration (or the owner's page) makes a link with the owner key in
its ``X-Owner-Key`` header, and gives ``/s/{sessionId}#owner=<code>`` to the person who should be the owner there:
their page claims the code (in a request body, never in a URL) and gets the owner key back.

The owner key itself is stored only as its SHA-256 (``owner_key_hash``), so the server cannot hand out the key it
was given at creation, and issuing a new key would log out the integration that holds the first. What the link's
request carries is the key itself: the server keeps it for the link's lifetime, **sealed with the link's code**,
so that the holder of the code, and nobody else, can recover it:

- the code is ``own_`` and 256 random bits, shown once; the row keeps its SHA-256 (``owner_link_hash``), which is
  what a claim is compared with (in constant time);
- ``owner_link_sealed`` is the owner key's bytes XORed with a keystream made from the code by HMAC-SHA256 (key:
  the code; message: a label of this use and a block counter). Without the code the keystream is unknown, so the
  database alone (a backup, a replica, a read-only leak) does not reveal the owner key, and its hash of the code
  does not help: HMAC under the code and SHA-256 of the code are unrelated values. A keystream is used once: each
  link has a fresh code, and it is cleared when claimed or replaced. Nothing new to depend on: ``hmac``/``hashlib``;
- the key opened by a claim is checked against ``owner_key_hash`` before it is returned, so a sealed value that
  was tampered with yields a refusal, never a wrong key;
- one link per session: a new one replaces the previous (its code stops working); a claim clears it under the
  session row's lock, so two claims of one code at once give one success; it stops working after
  ``CODECONNECT_OWNER_LINK_SECONDS``.

Whoever claims the code is the owner from then on, like whoever holds the owner key: the link is a credential, and
its page takes it out of the address bar at once. A wrong, expired, used or replaced code is one refusal, 403
``owner_link_invalid``, which says nothing about which it was. Claims are counted in the joins rate.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.config import Settings
from codeconnect.errors import Forbidden
from codeconnect.models import SessionRow, utcnow
from codeconnect.security import hash_secret, new_secret, secret_matches
from codeconnect.sessions.owner import check_owner
from codeconnect.sessions.service import get_session

CODE_PREFIX = "own_"
_LABEL = b"codeconnect owner link seal v1"
#: The longest owner key a link seals (owner keys are 43 characters: 256 random bits, URL-safe).
MAX_SEALED_BYTES = 128


@dataclass(frozen=True, slots=True)
class OwnerLink:
    code: str
    expires_at: datetime


class OwnerLinkInvalid(Forbidden):
    code = "owner_link_invalid"

    def __init__(self) -> None:
        super().__init__(
            "This owner link does not work: it was used, replaced or has expired, or it is not this session's. "
            "Ask the session's owner for a new one."
        )


def _keystream(code: str, length: int) -> bytes:
    stream = b""
    block = 0
    while len(stream) < length:
        stream += hmac.new(code.encode(), _LABEL + block.to_bytes(4, "big"), hashlib.sha256).digest()
        block += 1
    return stream[:length]


def seal(owner_key: str, code: str) -> str:
    """``owner_key`` XOR a keystream of ``code``, in hex: only the holder of ``code`` can open it."""
    data = owner_key.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(code, len(data)), strict=True)).hex()


def unseal(sealed: str, code: str) -> str | None:
    """The owner key sealed with ``code`` (None if what comes out is not text)."""
    data = bytes.fromhex(sealed)
    try:
        return bytes(a ^ b for a, b in zip(data, _keystream(code, len(data)), strict=True)).decode()
    except UnicodeDecodeError:
        return None


async def make_link(
    db: AsyncSession, settings: Settings, session_id: str, owner_key: str | None
) -> OwnerLink:
    """A new owner link in place of the session's previous one (the owner only: 401/403 as every owner route)."""
    row = await get_session(db, session_id, for_update=True)
    check_owner(row, owner_key)
    assert owner_key is not None  # check_owner refuses a missing key
    if len(owner_key.encode()) > MAX_SEALED_BYTES:  # pragma: no cover - it matched a 43-character key's hash
        raise Forbidden("The owner key does not match this session.", code="owner_key_invalid")
    code = CODE_PREFIX + new_secret()
    expires_at = utcnow() + timedelta(seconds=settings.owner_link_seconds)
    row.owner_link_hash = hash_secret(code)
    row.owner_link_expires_at = expires_at
    row.owner_link_sealed = seal(owner_key, code)
    await db.flush()
    return OwnerLink(code, expires_at)


def _clear(row: SessionRow) -> None:
    row.owner_link_hash = None
    row.owner_link_expires_at = None
    row.owner_link_sealed = None


async def claim(db: AsyncSession, session_id: str, code: str) -> str:
    """The owner key, for the code of the session's outstanding owner link, which is used up (403
    ``owner_link_invalid`` otherwise, whatever the reason)."""
    # Locked: of two claims at once, the second reads the row after the first cleared it.
    row = await get_session(db, session_id, for_update=True)
    stored, expires_at, sealed = row.owner_link_hash, row.owner_link_expires_at, row.owner_link_sealed
    # The hash comparison first, in constant time, whatever else is missing: the time taken tells nothing.
    matches = secret_matches(code, stored or "")
    if not matches or stored is None or sealed is None or expires_at is None or expires_at <= utcnow():
        raise OwnerLinkInvalid()
    owner_key = unseal(sealed, code)
    if owner_key is None or not secret_matches(owner_key, row.owner_key_hash):
        raise OwnerLinkInvalid()  # the sealed value was changed: never a wrong key
    _clear(row)
    await db.flush()
    return owner_key
