"""Exact reads of sessions nobody has open, kept in memory: alone, with a fake reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from codeconnect.collab.kept import KeptSessions, kept_size
from codeconnect.collab.records import ParticipantCardRecord, SessionCardRecord, StoredSession

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stored(code: str = "print(1)\n", *, exact: bool = True, people: int = 1) -> StoredSession:
    participants = [ParticipantCardRecord(f"p{i}", f"P{i}", "#000000", "editor", T0) for i in range(people)]
    return StoredSession(SessionCardRecord(T0, T0, "viewer", participants), code, "python", "t", exact)


class Rows:
    """The database: what each session's row holds now; counts reads; can hold them until released."""

    def __init__(self, **rows: StoredSession) -> None:
        self.rows = dict(rows)
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, session_id: str) -> StoredSession | None:
        self.reads += 1
        found = self.rows.get(session_id)  # read when the statement runs...
        await self.gate.wait()  # ...and answered later
        return found


async def test_an_exact_row_is_read_once_until_the_session_changes() -> None:
    kept = KeptSessions(1 << 20)
    rows = Rows(s=stored("one\n"))
    for _ in range(3):
        assert (await kept.read("s", rows)).code == "one\n"  # type: ignore[union-attr]
    assert rows.reads == 1 and "s" in kept
    rows.rows["s"] = stored("two\n")
    kept.changed("s")
    assert (await kept.read("s", rows)).code == "two\n"  # type: ignore[union-attr]
    assert rows.reads == 2


async def test_inexact_rows_unknown_sessions_and_a_size_of_zero_keep_nothing() -> None:
    rows = Rows(inexact=stored(exact=False), s=stored())
    kept = KeptSessions(1 << 20)
    assert (await kept.read("inexact", rows)) is not None and await kept.read("missing", rows) is None
    assert len(kept) == 0
    off = KeptSessions(0)
    await off.read("s", rows)
    await off.read("s", rows)
    assert len(off) == 0 and rows.reads == 4


async def test_a_read_that_overlapped_a_change_of_its_session_is_not_kept() -> None:
    kept = KeptSessions(1 << 20)
    rows = Rows(s=stored("old\n"), other=stored())
    rows.gate.clear()
    first = asyncio.ensure_future(kept.read("s", rows))
    second = asyncio.ensure_future(kept.read("s", rows))
    while rows.reads < 2:
        await asyncio.sleep(0)
    kept.changed("other")  # another session's change spoils nothing
    kept.changed("s")  # the row is rewritten after both reads read it
    rows.rows["s"] = stored("new\n")
    rows.gate.set()
    assert (await first).code == (await second).code == "old\n"  # type: ignore[union-attr]
    assert "s" not in kept
    assert (await kept.read("s", rows)).code == "new\n"  # type: ignore[union-attr]
    assert "s" in kept
    # A read that begins after a change is kept: only what was in flight is spoiled.
    rows.gate.clear()
    kept.changed("s")
    later = asyncio.ensure_future(kept.read("s", rows))
    while rows.reads < 4:
        await asyncio.sleep(0)
    rows.gate.set()
    await later
    assert "s" in kept


async def test_kept_reads_are_bounded_in_bytes_least_recently_read_first_out() -> None:
    one = kept_size(stored("x" * 1000))
    kept = KeptSessions(3 * one)
    rows = Rows(**{sid: stored("x" * 1000) for sid in "abcd"}, big=stored("x" * 4 * one))
    for sid in "abc":
        await kept.read(sid, rows)
    await kept.read("a", rows)  # read again: the most recent now
    await kept.read("d", rows)
    assert "b" not in kept and all(sid in kept for sid in "acd")
    await kept.read("big", rows)  # larger than the whole budget: never kept, and drops nothing
    assert "big" not in kept and len(kept) == 3 and kept.bytes == 3 * one


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["read", "change", "write"]), st.sampled_from("abc")), max_size=40))
def test_what_is_read_is_never_older_than_the_last_change(steps: list[tuple[str, str]]) -> None:
    """Against a model: after any sequence of reads, row writes (each announced by ``changed``) and changes, a read
    answers the row as it is now, and the bytes stay within the bound."""

    async def run() -> None:
        rows = Rows(**{sid: stored(f"{sid}0\n") for sid in "abc"})
        kept = KeptSessions(2 * kept_size(stored("a0\n")))
        versions = dict.fromkeys("abc", 0)
        for op, sid in steps:
            if op == "read":
                got = await kept.read(sid, rows)
                assert got is not None and got.code == f"{sid}{versions[sid]}\n"
            elif op == "write":
                versions[sid] += 1
                rows.rows[sid] = stored(f"{sid}{versions[sid]}\n")
                kept.changed(sid)
            else:
                kept.changed(sid)
            assert 0 <= kept.bytes <= kept.max_bytes

    asyncio.run(run())
