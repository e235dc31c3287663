"""Workspaces, their policies and API keys: stored, found and checked. No HTTP here.

An API key is ``ccl_`` and 256 random bits; only its SHA-256 is stored. A key is looked up by that hash in the
database on every use, never cached: revoking it in one process stops it in every process at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.records import DEFAULT_WORKSPACE
from codeconnect.config import Settings
from codeconnect.errors import Conflict, Forbidden, NotFound, Unauthorized
from codeconnect.models import ApiKeyRow, SessionRow, WorkspaceRow, utcnow
from codeconnect.security import hash_secret, new_id, new_secret, secret_matches
from codeconnect.workspaces.schemas import (
    EXECUTION_ORDER,
    EffectivePolicy,
    Execution,
    Policy,
    SessionPolicy,
    SessionPolicyView,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "ccl_"
# A key's last use is written at most this often: a busy integration would otherwise add a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"

    def __init__(self) -> None:
        super().__init__("No workspace has this id or name.")


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"

    def __init__(self) -> None:
        super().__init__("No API key has this id.")


def bearer_challenge(detail: str, code: str) -> Unauthorized:
    return Unauthorized(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class WorkspaceView:
    row: WorkspaceRow
    policy: Policy
    active_keys: int


def read_policy(stored: str | None) -> Policy:
    return _read(Policy, stored)


def read_session_policy(stored: str | None) -> SessionPolicy:
    return _read(SessionPolicy, stored)


_P = TypeVar("_P", Policy, SessionPolicy)


def _read(model: type[_P], stored: str | None) -> _P:
    """A stored policy. What no longer validates (edited by hand, written by another version) must not break every
    request of its sessions: each field is read alone, and one that fails is logged and read as its strictest value
    (execution `none`) or, where nothing is stricter without breaking the sessions, as not set."""
    if not stored:
        return model()
    try:
        return model.model_validate_json(stored)
    except ValidationError:
        pass
    try:
        raw = json.loads(stored)
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        log.error("a stored policy is not a JSON object; running code is off for its sessions")
        return model(execution="none")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            fields.update(model.model_validate({name: value}).model_dump(exclude_none=True))
        except ValidationError:
            log.error("a stored policy's %r does not validate; %s", name[:40], _STRICTEST.get(name, "ignored"))
            if name == "execution":
                fields["execution"] = "none"
    return model.model_validate(fields)


_STRICTEST = {"execution": "read as none"}


def write_policy(policy: Policy) -> str:
    return policy.model_dump_json(exclude_none=True, by_alias=True)


# --- workspaces ------------------------------------------------------------------------------------------------


async def find_workspace(db: AsyncSession, ref: str) -> WorkspaceRow:
    """The workspace whose id or name is ``ref``."""
    row = (
        await db.execute(select(WorkspaceRow).where(or_(WorkspaceRow.id == ref, WorkspaceRow.name == ref)))
    ).scalars().first()
    if row is None:
        raise WorkspaceNotFound()
    return row


async def _active_keys(db: AsyncSession, workspace_ids: list[str]) -> dict[str, int]:
    rows = await db.execute(
        select(ApiKeyRow.workspace_id, func.count())
        .where(ApiKeyRow.workspace_id.in_(workspace_ids), ApiKeyRow.revoked_at.is_(None))
        .group_by(ApiKeyRow.workspace_id)
    )
    return {wid: int(n) for wid, n in rows}


async def view(db: AsyncSession, row: WorkspaceRow) -> WorkspaceView:
    counts = await _active_keys(db, [row.id])
    return WorkspaceView(row, read_policy(row.policy), counts.get(row.id, 0))


async def list_workspaces(db: AsyncSession) -> list[WorkspaceView]:
    rows = list((await db.execute(select(WorkspaceRow).order_by(WorkspaceRow.created_at, WorkspaceRow.name))).scalars())
    counts = await _active_keys(db, [r.id for r in rows])
    return [WorkspaceView(r, read_policy(r.policy), counts.get(r.id, 0)) for r in rows]


async def create_workspace(db: AsyncSession, name: str, policy: Policy) -> WorkspaceView:
    taken = await db.scalar(select(WorkspaceRow.id).where(or_(WorkspaceRow.name == name, WorkspaceRow.id == name)))
    if taken is not None:
        raise Conflict(f"A workspace named {name!r} already exists.", code="workspace_exists")
    row = WorkspaceRow(id=new_id(), name=name, policy=write_policy(policy), created_at=utcnow())
    db.add(row)
    try:
        await db.flush()
    except IntegrityError:  # the same name made at the same moment elsewhere
        raise Conflict(f"A workspace named {name!r} already exists.", code="workspace_exists") from None
    return WorkspaceView(row, policy, 0)


async def set_policy(db: AsyncSession, ref: str, policy: Policy) -> WorkspaceView:
    row = await find_workspace(db, ref)
    row.policy = write_policy(policy)
    await db.flush()
    return await view(db, row)


async def session_policy(db: AsyncSession, session_id: str) -> Policy | None:
    """The policy that applies to the session (its workspace's, narrowed by its owner); None when there is no such
    session."""
    found = (
        await db.execute(
            select(WorkspaceRow.policy, SessionRow.policy.label("narrowed"))
            .join(SessionRow, SessionRow.workspace_id == WorkspaceRow.id)
            .where(SessionRow.id == session_id)
        )
    ).first()
    return None if found is None else narrow(read_policy(found.policy), read_session_policy(found.narrowed))


async def workspace_policy(db: AsyncSession, workspace_id: str) -> Policy:
    return read_policy(await db.scalar(select(WorkspaceRow.policy).where(WorkspaceRow.id == workspace_id)))


async def policy_of(db: AsyncSession, row: SessionRow) -> Policy:
    """The policy that applies to the session of ``row``: its workspace's, narrowed by its owner."""
    return narrow(await workspace_policy(db, row.workspace_id), read_session_policy(row.policy))


class Policies:
    """Workspace policies as session creation reads them: kept for ``seconds``, forgotten at once where they
    change (here, and on the other processes through ``share``), so a burst of creations reads each policy once.
    A change made from the command line, which reaches no process, applies within ``seconds``."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        seconds: float,
        share: Callable[[bytes], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maker = maker
        self.seconds = seconds
        self.share = share
        self.clock = clock
        self._kept: dict[str, tuple[Policy, float]] = {}

    async def get(self, workspace_id: str) -> Policy:
        kept = self._kept.get(workspace_id)
        now = self.clock()
        if kept is not None and now - kept[1] < self.seconds:
            return kept[0]
        async with self.maker() as db:
            policy = await workspace_policy(db, workspace_id)
            await db.rollback()
        if len(self._kept) >= 10_000:  # workspaces are few; a bound all the same
            self._kept.clear()
        self._kept[workspace_id] = (policy, now)
        return policy

    def changed(self, workspace_id: str) -> None:
        self._kept.pop(workspace_id, None)
        if self.share is not None:
            self.share(workspace_id.encode())

    def apply_shared(self, event: bytes) -> None:
        self._kept.pop(event.decode(errors="replace"), None)

    def clear(self) -> None:
        """Forget every policy (news of changes may have been lost)."""
        self._kept.clear()


# --- what a policy allows --------------------------------------------------------------------------------------


def operator_execution(settings: Settings) -> Execution:
    """The most the operator allows: browsers always run code; the server only with its sandbox on."""
    return "sandbox" if settings.execution == "sandbox" else "browser"


def effective_execution(settings: Settings, policy: Policy) -> Execution:
    allowed = operator_execution(settings)
    if policy.execution is None:
        return allowed
    return min(policy.execution, allowed, key=EXECUTION_ORDER.index)


def effective_max_participants(settings: Settings, policy: Policy) -> int:
    if policy.max_participants is None:
        return settings.max_participants
    return min(policy.max_participants, settings.max_participants)


def narrow(policy: Policy, by: SessionPolicy) -> Policy:
    """``policy`` narrowed by a session owner's choices: the lesser of each, never more than ``policy``."""
    changes: dict[str, Any] = {}
    if by.execution is not None:
        changes["execution"] = (
            by.execution if policy.execution is None else min(policy.execution, by.execution, key=EXECUTION_ORDER.index)
        )
    if by.languages is not None:
        # May end up empty (the workspace dropped every language the owner kept): then none is allowed.
        changes["languages"] = [lang for lang in by.languages if policy.languages is None or lang in policy.languages]
    if by.max_participants is not None:
        most = policy.max_participants
        changes["max_participants"] = by.max_participants if most is None else min(most, by.max_participants)
    return policy.model_copy(update=changes) if changes else policy


def effective(settings: Settings, policy: Policy) -> EffectivePolicy:
    return EffectivePolicy(
        execution=effective_execution(settings, policy),
        languages=policy.languages,
        max_participants=effective_max_participants(settings, policy),
    )


def check_narrowing(settings: Settings, workspace: Policy, wanted: SessionPolicy) -> None:
    """403 ``forbidden_by_policy`` if ``wanted`` allows anything the workspace (within the server) does not."""
    allowed = effective(settings, workspace)
    wider: list[str] = []
    if wanted.execution is not None and EXECUTION_ORDER.index(wanted.execution) > EXECUTION_ORDER.index(
        allowed.execution
    ):
        wider.append(f"execution {wanted.execution!r} (the workspace allows {allowed.execution!r})")
    if wanted.languages is not None and allowed.languages is not None:
        extra = [lang for lang in wanted.languages if lang not in allowed.languages]
        if extra:
            wider.append(f"languages {', '.join(extra)} (the workspace allows {', '.join(allowed.languages)})")
    if wanted.max_participants is not None and wanted.max_participants > allowed.max_participants:
        wider.append(f"{wanted.max_participants} participants (the workspace allows {allowed.max_participants})")
    if wider:
        raise Forbidden(
            "A session's owner can narrow its workspace's policy, not widen it: " + "; ".join(wider) + ".",
            code="forbidden_by_policy",
        )


async def session_policy_view(db: AsyncSession, settings: Settings, row: SessionRow) -> SessionPolicyView:
    workspace = await workspace_policy(db, row.workspace_id)
    mine = read_session_policy(row.policy)
    return SessionPolicyView(
        session=mine, workspace=effective(settings, workspace), effective=effective(settings, narrow(workspace, mine))
    )


async def set_session_policy(
    db: AsyncSession, settings: Settings, row: SessionRow, wanted: SessionPolicy
) -> SessionPolicyView:
    """Replace the owner's narrowing of the session's policy (the caller checked the owner key)."""
    check_narrowing(settings, await workspace_policy(db, row.workspace_id), wanted)
    stored = wanted.model_dump_json(exclude_none=True, by_alias=True)
    row.policy = None if stored == "{}" else stored
    await db.flush()
    return await session_policy_view(db, settings, row)


def check_language(policy: Policy, language: str) -> None:
    if policy.languages is not None and language not in policy.languages:
        allowed = ", ".join(policy.languages) or "no language"
        raise Forbidden(
            f"This session's policy does not allow {language}; it allows {allowed}.", code="language_not_allowed"
        )


# --- API keys --------------------------------------------------------------------------------------------------


async def create_key(db: AsyncSession, ref: str, label: str) -> tuple[ApiKeyRow, str]:
    workspace = await find_workspace(db, ref)
    key = KEY_PREFIX + new_secret()
    row = ApiKeyRow(id=new_id(), workspace_id=workspace.id, label=label, key_hash=hash_secret(key), created_at=utcnow())
    db.add(row)
    await db.flush()
    return row, key


async def list_keys(db: AsyncSession, ref: str | None = None) -> list[ApiKeyRow]:
    stmt = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if ref is not None:
        stmt = stmt.where(ApiKeyRow.workspace_id == (await find_workspace(db, ref)).id)
    return list((await db.execute(stmt)).scalars())


async def revoke_key(db: AsyncSession, key_id: str) -> ApiKeyRow:
    row = await db.get(ApiKeyRow, key_id)
    if row is None:
        raise ApiKeyNotFound()
    if row.revoked_at is None:  # revoking twice keeps the first time
        row.revoked_at = utcnow()
        await db.flush()
    return row


async def workspace_of_key(db: AsyncSession, key: str) -> str:
    """The workspace of a live (not revoked) API key, noting its use; 401 for anything else."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise bearer_challenge("This API key is not valid.", "invalid_api_key")
    row = (await db.execute(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_secret(key)))).scalar_one_or_none()
    # The lookup is by hash; the constant-time check guards the comparison that decides access.
    if row is None or not secret_matches(key, row.key_hash):
        raise bearer_challenge("This API key is not valid.", "invalid_api_key")
    if row.revoked_at is not None:
        raise bearer_challenge("This API key was revoked.", "api_key_revoked")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await db.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == row.id)
            .where(or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < now - LAST_USED_RESOLUTION))
            .values(last_used_at=now)
        )
    return row.workspace_id


def bearer_token(headers: Any) -> str | None:
    """The credentials of an `Authorization: Bearer` header (a key, sent or not where none is needed)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


async def creating_workspace(
    maker: async_sessionmaker[AsyncSession], settings: Settings, key: str | None
) -> str:
    """The workspace a new session goes to: the key's, or the default one where ``open`` mode lets a caller
    without a key create sessions (with no database round trip: creating is the busiest write there is)."""
    if key is not None:
        async with maker() as db, db.begin():
            return await workspace_of_key(db, key)
    if settings.auth == "api-key":
        raise bearer_challenge(
            "This needs a workspace's API key: send `Authorization: Bearer <key>`.", "api_key_required"
        )
    return DEFAULT_WORKSPACE
