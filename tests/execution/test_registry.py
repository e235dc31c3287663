"""The registry Stop goes through: runs in progress by (session, run id), and stops that overtook their run."""

from __future__ import annotations

import asyncio

import pytest

from codeconnect.execution.registry import RunIdInUse, RunRegistry


async def test_stop_reaches_the_running_run_only() -> None:
    runs = RunRegistry()
    with runs.track("s1", "run-a") as stop:
        assert not stop.is_set()
        assert runs.stop("s2", "run-a") is False  # same run id, other session: not this run
        assert not stop.is_set()
        assert runs.stop("s1", "run-a") is True
        assert stop.is_set()
        with pytest.raises(RunIdInUse), runs.track("s1", "run-a"):
            pass
    assert runs.running == 0


async def test_a_stop_that_comes_first_is_kept_for_a_while() -> None:
    runs = RunRegistry(remember_seconds=0.05, max_remembered=2)
    assert runs.stop("s", "early") is False
    with runs.track("s", "early") as stop:
        assert stop.is_set()
    with runs.track("s", "early") as stop:  # used once
        assert not stop.is_set()
    for name in ("a", "b", "c"):  # bounded: the oldest is forgotten
        runs.stop("s", name)
    with runs.track("s", "a") as stop:
        assert not stop.is_set()
    with runs.track("s", "c") as stop:
        assert stop.is_set()
    runs.stop("s", "late")
    await asyncio.sleep(0.06)
    with runs.track("s", "late") as stop:  # expired
        assert not stop.is_set()
