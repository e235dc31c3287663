"""Reads that arrive together share a statement: alone, with a fake reader."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from codeconnect.collab.batched import BatchedReads


class Reader:
    """Answers keys that are strings of digits with their value; records each call; can be held or made to fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, keys: Sequence[str]) -> Mapping[str, int]:
        self.calls.append(list(keys))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: int(k) for k in keys if k.isdigit()}


async def test_a_lone_read_goes_at_once_and_reads_meanwhile_share_the_next_statement() -> None:
    reader = Reader()
    reads = BatchedReads(reader, limit=3)
    assert await reads.get("1") == 1 and reader.calls == [["1"]]
    reader.gate.clear()
    first = asyncio.ensure_future(reads.get("2"))
    while not reader.calls[1:]:
        await asyncio.sleep(0)  # the statement for "2" is under way
    later = [asyncio.ensure_future(reads.get(k)) for k in ("3", "4", "x", "3", "5", "6")]
    reader.gate.set()
    assert await first == 2
    assert await asyncio.gather(*later) == [3, 4, None, 3, 5, 6]
    # One key asked twice is read once; at most `limit` keys a statement.
    assert reader.calls[1:] == [["2"], ["3", "4", "x"], ["5", "6"]]


async def test_a_failed_statement_fails_its_reads_only() -> None:
    reader = Reader()
    reads = BatchedReads(reader, limit=10, error=lambda exc: LookupError(str(exc)))
    reader.fail = OSError("down")
    results = await asyncio.gather(reads.get("1"), reads.get("2"), return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    reader.fail = None
    assert await reads.get("7") == 7


async def test_a_reader_that_goes_away_leaves_the_others_their_answer() -> None:
    reader = Reader()
    reads = BatchedReads(reader, limit=10)
    reader.gate.clear()
    gone = asyncio.ensure_future(reads.get("1"))
    stays = asyncio.ensure_future(reads.get("1"))
    while not reader.calls:
        await asyncio.sleep(0)
    gone.cancel()
    reader.gate.set()
    assert await stays == 1
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_stopping_the_statement_cancels_every_waiting_read() -> None:
    reader = Reader()
    reads = BatchedReads(reader, limit=10, name="stopping")
    reader.gate.clear()
    waiting = [asyncio.ensure_future(reads.get(k)) for k in ("1", "2")]
    while not reader.calls:
        await asyncio.sleep(0)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "stopping"]
    task.cancel()
    for read in waiting:
        with pytest.raises(asyncio.CancelledError):
            await read
    reader.gate.set()
    assert await reads.get("3") == 3  # a new statement starts for the next read
