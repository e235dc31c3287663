"""`codeconnect serve --workers 2`: a scrape of either worker reports both workers' metrics, summed
(prometheus_client's multiprocess mode, in a folder of the run's own that is gone once it exits)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from codeconnect import metrics
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, eventually, require_service
from tests.test_cli import start_serve, stop
from tests.test_metrics import Scrape, moved


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    # The command name is in parentheses and may hold spaces: the parent pid follows the last ")".
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _metrics_folder(serve_pid: int) -> Path:
    """The multiprocess folder ``serve`` handed its workers, read from a worker's environment."""
    for child in _children(serve_pid):
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(metrics.MULTIPROCESS_ENV.encode() + b"="):
                return Path(item.split(b"=", 1)[1].decode())
    raise AssertionError("no worker of serve has PROMETHEUS_MULTIPROC_DIR")


def _per_worker(folder: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """A counter's value in each worker's own file (what the scrape sums)."""
    values = {}
    for file in folder.glob("counter_*.db"):
        pid = file.stem.rsplit("_", 1)[1]
        for family in MultiProcessCollector.merge([str(file)], accumulate=False):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    values[pid] = sample.value
    return values


def _answered(folder: Path, labels: dict[str, str]) -> set[str]:
    """The workers (pids) that have counted at least one request of ``labels``."""
    return {pid for pid, value in _per_worker(folder, "codeconnect_http_requests_total", labels).items() if value}


async def _scrape_fresh(base_url: str) -> Scrape:
    # A connection of its own, so that either worker may be the one that answers.
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    return Scrape(r.text)


@pytest.mark.slow
async def test_two_workers_report_their_metrics_summed(pg_url: str, tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    srv = start_serve(pg_url, tmp_path, "--workers", "2", CODECONNECT_REDIS_URL=REDIS_URL)
    try:
        folder = _metrics_folder(srv.proc.pid)

        def live_workers() -> set[str]:
            # The workers alive now: under load uvicorn's supervisor may replace a worker that missed its health
            # check, and the replaced one's file stays (its counts still belong in the sums).
            return {str(pid) for pid in _children(srv.proc.pid)}

        async def both_started() -> bool:
            return len(live_workers() & {f.stem.rsplit("_", 1)[1] for f in folder.glob("counter_*.db")}) >= 2

        await eventually(both_started, timeout=60)
        before = await _scrape_fresh(srv.base_url)

        healthz = {"method": "GET", "route": "/healthz", "status": "200"}
        # Requests on connections of their own, many at once, until both workers have answered some (which worker
        # accepts a connection is the kernel's choice).
        # On a busy machine one worker can take every connection for a while (the other is not in accept() when
        # they come): a deadline, not a count, says when that is a fault; the count is bounded all the same.
        sent = 0
        deadline = asyncio.get_running_loop().time() + 60
        async with httpx.AsyncClient(
            base_url=srv.base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            while len(_answered(folder, healthz)) < 2:
                assert asyncio.get_running_loop().time() < deadline and sent < 6000, "one worker took every connection"
                answers = await asyncio.gather(*(http.get("/healthz") for _ in range(20)))
                assert {r.status_code for r in answers} == {200}
                sent += 20
            session = await new_session(http, title="Two workers")
            sid = session["id"]
            ada, bob = await join(http, sid, "Ada"), await join(http, sid, "Bob")
        ws = srv.base_url.replace("http://", "ws://")
        a = await YClient(collab_url(ws, sid, ada["token"])).connect()
        b = await YClient(collab_url(ws, sid, bob["token"])).connect()
        a.code += "print('summed')\n"
        await b.wait_for(lambda: "summed" in b.text)

        async def counted_live() -> bool:
            # The live layer's counts reach the files within a second (see metrics.publish_live_counts).
            now = await _scrape_fresh(srv.base_url)
            return (
                moved(before, now, "codeconnect_live_updates_received_total", origin="client") >= 1
                and moved(before, now, "codeconnect_live_updates_relayed_total") >= 1
            )

        await eventually(counted_live, timeout=15)
        # Whichever worker answers, it reports the same sums: asked on new connections until both have answered.
        scraped = {"method": "GET", "route": "/metrics", "status": "200"}
        for attempt in range(200):
            during = await _scrape_fresh(srv.base_url)
            assert moved(before, during, "codeconnect_http_requests_total", **healthz) == sent
            assert moved(before, during, "codeconnect_live_connections") == 2
            assert moved(before, during, "codeconnect_live_updates_received_total", origin="client") == 1
            assert moved(before, during, "codeconnect_live_updates_relayed_total") == 1  # to b, wherever it is
            assert during.value("codeconnect_redis_up") == 1
            answered = _answered(folder, scraped)
            if attempt > 2 and len(answered & live_workers()) >= 2:
                break  # both workers have answered a scrape (a loaded machine may give one many in a row)
        answered = _answered(folder, scraped)
        assert len(answered & live_workers()) >= 2, "one worker answered all"
        # The sum is the workers' own counts added up.
        assert sum(_per_worker(folder, "codeconnect_http_requests_total", healthz).values()) == sent

        await a.close()
        await b.close()

        async def closed() -> bool:
            now = await _scrape_fresh(srv.base_url)
            return moved(before, now, "codeconnect_live_connections") == 0

        await eventually(closed, timeout=15)
        after = await _scrape_fresh(srv.base_url)
        assert moved(before, after, "codeconnect_live_closes_total", code="1000") == 2
        for secret in (sid, ada["token"], bob["token"]):
            assert secret not in after.text
    finally:
        stop(srv, signal.SIGTERM)
    assert srv.proc.returncode is not None
    assert not folder.exists(), "serve left its metrics folder behind"


def test_a_dead_workers_gauges_are_forgotten(tmp_path: Path) -> None:
    # A worker killed with -9 says nothing; the next scrape drops its live gauges, a live worker's stay.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    metrics.forget_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone.pid}.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"]
    )
