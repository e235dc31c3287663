"""Admission control without a sandbox: the bounded pool and the per-client window."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from codeconnect.execution.pool import PoolBusy, RunnerPool, SlotAbandoned
from codeconnect.rates import ClientRate, RateExceeded


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


async def test_queue_and_active_runs_are_gauged() -> None:
    def gauges() -> tuple[float | None, float | None]:
        return (
            REGISTRY.get_sample_value("codeconnect_sandbox_runs_active"),
            REGISTRY.get_sample_value("codeconnect_sandbox_queue_length"),
        )

    active, queued = gauges()
    assert active is not None and queued is not None
    pool = RunnerPool(concurrency=1, queue_size=2)
    release = asyncio.Event()

    async def job() -> None:
        async with pool.slot():
            await release.wait()

    tasks = [asyncio.create_task(job()) for _ in range(3)]
    await asyncio.sleep(0)
    assert gauges() == (active + 1, queued + 2)
    release.set()
    await asyncio.gather(*tasks)
    assert gauges() == (active, queued)


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


async def test_a_run_stopped_in_the_queue_leaves_it_at_once() -> None:
    pool = RunnerPool(concurrency=1, queue_size=2)
    release = asyncio.Event()
    order: list[str] = []

    async def job(name: str, stop: asyncio.Event | None = None) -> str:
        try:
            async with pool.slot(stop):
                order.append(name)
                await release.wait()
        except SlotAbandoned:
            return f"{name} abandoned"
        return f"{name} ran"

    first = asyncio.create_task(job("first"))
    await asyncio.sleep(0)
    stop = asyncio.Event()
    stopped = asyncio.create_task(job("stopped", stop))
    after = asyncio.create_task(job("after", asyncio.Event()))
    await asyncio.sleep(0.01)
    assert (pool.running, pool.waiting) == (1, 2)
    stop.set()
    assert await asyncio.wait_for(stopped, 1) == "stopped abandoned"  # without waiting for the slot
    assert pool.waiting == 1
    release.set()
    assert await asyncio.gather(first, after) == ["first ran", "after ran"]
    assert order == ["first", "after"]
    assert (pool.running, pool.waiting) == (0, 0)
    already = asyncio.Event()
    already.set()
    with pytest.raises(SlotAbandoned):
        async with pool.slot(already):
            pass
    async with pool.slot(asyncio.Event()):  # every slot was given back
        assert pool.running == 1


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
