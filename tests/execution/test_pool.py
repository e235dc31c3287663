"""Admission control without a sandbox: the bounded pool and the per-client window."""

from __future__ import annotations

import asyncio

import pytest

from codeconnect.execution.pool import ClientRate, PoolBusy, RateExceeded, RunnerPool


async def test_pool_bounds_running_and_waiting() -> None:
    pool = RunnerPool(concurrency=2, queue_size=1)
    release = asyncio.Event()
    peak = 0

    async def job() -> None:
        nonlocal peak
        async with pool.slot():
            peak = max(peak, pool.running)
            await release.wait()

    tasks = [asyncio.create_task(job()) for _ in range(3)]
    await asyncio.sleep(0)
    assert (pool.running, pool.waiting) == (2, 1)
    with pytest.raises(PoolBusy):
        async with pool.slot():
            pass
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2
    assert (pool.running, pool.waiting) == (0, 0)
    async with pool.slot():  # free again
        assert pool.running == 1


async def test_cancelled_waiter_frees_its_place() -> None:
    pool = RunnerPool(concurrency=1, queue_size=1)
    release = asyncio.Event()

    async def job() -> None:
        async with pool.slot():
            await release.wait()

    running = asyncio.create_task(job())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(job())
    await asyncio.sleep(0)
    assert pool.waiting == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert pool.waiting == 0
    release.set()
    await running
    assert pool.running == 0


def test_client_rate_window() -> None:
    rate = ClientRate(per_minute=2, max_clients=2)
    rate.check("a", now=0.0)
    rate.check("a", now=10.0)
    with pytest.raises(RateExceeded) as exc:
        rate.check("a", now=20.0)
    assert exc.value.retry_after == 40
    rate.check("b", now=20.0)  # other clients are not affected
    rate.check("a", now=60.0)  # the first start left the window
    rate.check("c", now=61.0)
    rate.check("d", now=61.0)
    assert rate.clients == 2  # keys are bounded: the least recently seen ones are forgotten
