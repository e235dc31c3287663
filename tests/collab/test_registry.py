"""RoomRegistry without a server: loading once, unloading after the grace, what reaches the store, tokens, controls.

Each test wires a registry as the app does (the update log on a SQLite file copied from a migrated template, the
local cluster), with a stand-in for the participants service's token check and peers driven by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array

from codeconnect.collab import protocol as p
from codeconnect.collab.auth import Participant
from codeconnect.collab.document import initial_update
from codeconnect.collab.records import NewSession
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.store import open_update_log
from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker
from codeconnect.errors import SessionNotFound
from codeconnect.security import hash_secret, new_id
from tests.collab.fakes import HandPeer
from tests.conftest import eventually, migrated_sqlite

ADA = Participant("p-ada", "Ada", "#123456", "editor")


@dataclass
class Wiring:
    """What the app would hand a registry: its settings, its database and the token check."""

    settings: Settings
    tokens: dict[tuple[str, str], Participant] = field(default_factory=dict)
    checks: list[tuple[str, str]] = field(default_factory=list)

    async def authenticate(self, session_id: str, token: str) -> Participant | None:
        self.checks.append((session_id, token))
        return self.tokens.get((session_id, token))

    @asynccontextmanager
    async def open(
        self, runs_allowed: Callable[[str], Awaitable[bool]] | None = None, **overrides: Any
    ) -> AsyncIterator[RoomRegistry]:
        settings = self.settings.model_copy(update=overrides)
        engine = create_engine(settings.database_url)
        maker = create_sessionmaker(engine)
        try:
            async with RoomRegistry(
                maker, settings, log_=open_update_log(maker, settings), authenticate=self.authenticate,
                runs_allowed=runs_allowed,
            ) as registry:  # fmt: skip
                yield registry
        finally:
            await engine.dispose()


@pytest.fixture
async def wiring(tmp_path: Path) -> Wiring:
    url = await migrated_sqlite(tmp_path / "registry.db")
    return Wiring(Settings(database_url=url, room_unload_grace_seconds=0.05, commit_window_ms=5))


@pytest.fixture
async def registry(wiring: Wiring) -> AsyncIterator[RoomRegistry]:
    async with wiring.open() as registry:
        yield registry


async def new_session(registry: RoomRegistry, code: str = "print(1)\n") -> str:
    session_id = new_id()
    await registry.create_session(
        NewSession(
            id=session_id, title="Pairing", language="python", code=code, owner_key_hash=hash_secret(new_id()),
            viewer_id=new_id(), created_at=datetime.now(UTC), first_update=initial_update(code, "python", "Pairing"),
        )  # fmt: skip
    )
    return session_id


async def unloaded(registry: RoomRegistry, session_id: str) -> None:
    async def gone() -> bool:
        return not registry.holds(session_id)

    await eventually(gone, timeout=10)


# --- loading -------------------------------------------------------------------------------------------------------


async def test_a_session_created_here_is_at_hand_without_a_read(registry: RoomRegistry) -> None:
    session_id = await new_session(registry, "x = 1\n")
    assert registry.at_hand(session_id) and registry.holds(session_id)
    room = registry.acquire_now(session_id)
    assert room is not None and room.shared.text() == "x = 1\n"
    assert registry.peek(session_id) is room
    registry.release(room)


async def test_concurrent_acquires_load_the_room_once(wiring: Wiring, monkeypatch: pytest.MonkeyPatch) -> None:
    async with wiring.open() as first:
        session_id = await new_session(first, "shared\n")
    async with wiring.open() as registry:  # another process: nothing kept in memory, the log is read
        assert not registry.at_hand(session_id)
        loads: list[str] = []

        load = registry.log.load

        async def counted(sid: str) -> Any:
            loads.append(sid)
            return await load(sid)

        monkeypatch.setattr(registry.log, "load", counted)
        rooms = await asyncio.gather(*(registry.acquire(session_id) for _ in range(10)))
        assert loads == [session_id]
        assert all(room is rooms[0] for room in rooms) and rooms[0].leases == 10
        assert rooms[0].shared.text() == "shared\n"
        for room in rooms:
            registry.release(room)


async def test_an_unknown_session_does_not_exist_and_a_known_one_does(registry: RoomRegistry) -> None:
    assert not await registry.session_exists(new_id())
    assert await registry.session_exists(await new_session(registry))


# --- what reaches the store ------------------------------------------------------------------------------------------


async def test_an_empty_room_unloads_after_the_grace_and_its_edits_are_stored(
    wiring: Wiring, registry: RoomRegistry
) -> None:
    session_id = await new_session(registry, "")
    room = await registry.acquire(session_id)
    ada = HandPeer(room, ADA.id).join()
    ada.edit("print('kept')\n")
    ada.leave()
    registry.release(room)
    await unloaded(registry, session_id)
    stored = await registry.stored_session(session_id)
    assert stored is not None and stored.code == "print('kept')\n"
    async with wiring.open() as other:  # what another process reads from the log
        again = await other.acquire(session_id)
        assert again.shared.text() == "print('kept')\n"
        other.release(again)


async def test_a_room_taken_again_within_the_grace_is_the_same_room(registry: RoomRegistry) -> None:
    session_id = await new_session(registry)
    room = await registry.acquire(session_id)
    registry.release(room)
    assert room.unload_timer is not None  # unloading is scheduled, not begun
    again = await registry.acquire(session_id)
    assert again is room and room.unload_timer is None
    registry.release(again)


async def test_closing_the_registry_flushes_every_room(wiring: Wiring) -> None:
    async with wiring.open(room_unload_grace_seconds=60.0) as registry:
        sessions = [await new_session(registry, "") for _ in range(3)]
        for n, session_id in enumerate(sessions):
            room = await registry.acquire(session_id)
            HandPeer(room, ADA.id).join().edit(f"room {n}\n")  # still held when the registry closes
    async with wiring.open() as reopened:
        for n, session_id in enumerate(sessions):
            async with reopened.use(session_id) as room:
                assert room.shared.text() == f"room {n}\n"


# --- tokens -----------------------------------------------------------------------------------------------------------


async def test_a_token_is_checked_once_then_known(wiring: Wiring, registry: RoomRegistry) -> None:
    session_id = await new_session(registry)
    wiring.tokens[(session_id, "t-ada")] = ADA
    assert registry.authorized(session_id, "t-ada") is None  # not known without a read yet
    assert await registry.authorize(session_id, "t-ada") == ADA
    assert await registry.authorize(session_id, "t-ada") == ADA
    assert wiring.checks == [(session_id, "t-ada")]
    assert registry.authorized(session_id, "t-ada") == ADA
    other = await new_session(registry)
    assert await registry.authorize(other, "t-ada") is None  # a token of another session
    assert registry.authorized(other, "t-ada") is None


async def test_a_bad_token_and_an_unknown_session_are_told_apart(registry: RoomRegistry) -> None:
    session_id = await new_session(registry)
    assert await registry.authorize(session_id, "nobody's") is None
    assert await registry.authorize(session_id, None) is None
    assert await registry.authorize(session_id, "x" * 10_000) is None  # never hashed or looked up
    with pytest.raises(SessionNotFound):
        await registry.authorize(new_id(), "nobody's")


async def test_a_removed_participant_is_refused_even_while_its_row_is_still_read(
    wiring: Wiring, registry: RoomRegistry
) -> None:
    session_id = await new_session(registry)
    wiring.tokens[(session_id, "t-ada")] = ADA
    room = await registry.acquire(session_id)
    ada = HandPeer(room, ADA.id).join()
    assert await registry.authorize(session_id, "t-ada") == ADA
    registry.remove(session_id, ADA.id, hash_secret("t-ada"))
    assert ada.channel.closed is not None and ada.channel.closed[0] == 4403
    # The token check still finds the row (a read that began before the deletion): removed is removed.
    assert await registry.authorize(session_id, "t-ada") is None
    assert registry.was_removed(ADA.id)
    registry.release(room)


async def test_a_retired_session_leaves_nothing_behind(wiring: Wiring, registry: RoomRegistry) -> None:
    session_id = await new_session(registry)
    wiring.tokens[(session_id, "t-ada")] = ADA
    room = await registry.acquire(session_id)
    ada = HandPeer(room, ADA.id).join()
    assert await registry.authorize(session_id, "t-ada") == ADA
    retired = registry.retire([session_id])
    assert retired == [room] and not registry.holds(session_id)
    assert registry.authorized(session_id, "t-ada") is None
    RoomRegistry.evict(retired, 4404, "session deleted")
    assert ada.channel.closed == (4404, "session deleted")
    ada.edit("after the end\n")  # a late update of the retired room is not stored
    await registry.log.flush()
    stored = await registry.stored_session(session_id)
    assert stored is None or "after the end" not in stored.code


# --- the owner's controls ------------------------------------------------------------------------------------------


async def test_ending_reaches_the_loaded_room_and_a_later_load(wiring: Wiring, registry: RoomRegistry) -> None:
    session_id = await new_session(registry)
    room = await registry.acquire(session_id)
    ada = HandPeer(room, ADA.id).join()
    registry.set_ended(session_id, datetime.now(UTC))
    assert room.ended and await registry.ended(session_id)
    ada.edit("too late\n")  # read-only once ended: refused, not applied
    assert "too late" not in room.shared.text()
    registry.set_ended(session_id, None)
    assert not room.ended
    registry.release(room)


async def test_run_records_written_in_a_loop_are_checked_against_the_policy_one_read_at_a_time(wiring: Wiring) -> None:
    """Where no code may run, the run records a client writes are taken out again. A client writing them in a loop
    gets one policy read at a time for its session, not one per update."""
    reads: list[str] = []
    answer = asyncio.Event()

    async def runs_allowed(session_id: str) -> bool:
        reads.append(session_id)
        await answer.wait()
        return False

    async with wiring.open(runs_allowed=runs_allowed) as registry:
        session_id = await new_session(registry)
        room = await registry.acquire(session_id)
        ada = HandPeer(room, ADA.id).join()
        runs = ada.doc.get("runs", type=Array)

        def write_run(n: int) -> None:
            before = ada.doc.get_state()
            runs.append({"id": f"run-{n}", "stdout": "forged\n"})
            room.receive(ada.peer, p.sync_update(ada.doc.get_update(before)))

        for n in range(50):
            write_run(n)
        await asyncio.sleep(0)  # the check's task starts
        assert reads == [session_id] and len(room.shared.runs) == 50
        answer.set()

        async def all_taken_out() -> bool:
            return len(room.shared.runs) == 0

        await eventually(all_taken_out)
        assert reads == [session_id]
        write_run(50)  # after the check: a check of its own

        async def read_again() -> bool:
            return len(reads) == 2 and len(room.shared.runs) == 0

        await eventually(read_again)
        registry.release(room)
