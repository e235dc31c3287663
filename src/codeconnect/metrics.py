"""Every metric the server exports on ``GET /metrics`` (Prometheus text format), defined in this one place.

Names start with ``codeconnect_``; counters end in ``_total``, durations are in seconds. Labels hold only
bounded values: route templates (``/v1/sessions/{sessionId}``, never a path: session ids are invitations),
status and close codes, languages, outcomes. Nothing here connects or reads a secret.

With several worker processes (``codeconnect serve --workers N``), ``serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start (:func:`shared_by_workers`): each worker
then writes its values to memory-mapped files there, and a scrape of any worker sums them all
(prometheus_client's multiprocess mode). Gauges say how to combine the workers (``multiprocess_mode``); the
``live*`` modes leave out workers that have exited. A gauge computed at scrape time could only see the worker
that answers, so gauges here are kept up to date as their quantity changes (a room loaded, a connection seated:
never per message).

The live core counts its per-message events in plain integers (``collab/tally.py``);
:func:`publish_live_counts` moves their growth into the counters, before each scrape and, with several workers,
every second in each (the scrape reads the other workers' files, not their memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.tally import TALLY

#: The environment variable that turns prometheus_client's multiprocess mode on (read when it is imported).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PUBLISH_SECONDS = 1.0  # with several workers: how stale the live counters may be in a scrape of another worker
UNMATCHED = "unmatched"  # the route label of requests no route took (404s, refused hosts)

# --- HTTP (the live WebSocket endpoint is counted by the collab layer, below) --------------------------------

HTTP_REQUESTS = Counter(
    "codeconnect_http_requests", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)  # fmt: skip
HTTP_DURATION = Histogram(
    "codeconnect_http_request_duration_seconds",
    "Time from a request's arrival at the app to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REST_RATE_LIMITED = Counter(
    "codeconnect_rest_rate_limited",
    "REST requests refused with 429, by route template and the limit that refused them (its error code).",
    ["route", "limit"],
)

# --- live co-editing -------------------------------------------------------------------------------------------

LIVE_CONNECTIONS = Gauge(
    "codeconnect_live_connections", "Live connections seated in a room.", multiprocess_mode="livesum"
)
ROOMS_LOADED = Gauge(
    "codeconnect_rooms_loaded", "Session documents loaded in memory (rooms).", multiprocess_mode="livesum"
)
LIVE_UPDATES_RECEIVED = Counter(
    "codeconnect_live_updates_received",
    "Document updates applied to live rooms, by origin: client (a live connection), server (REST writes, run "
    "results), cluster (another process, through Redis or the update log).",
    ["origin"],
)
LIVE_UPDATES_RELAYED = Counter(
    "codeconnect_live_updates_relayed", "Document update messages sent to live connections (one per receiver)."
)
LIVE_CLOSES = Counter(
    "codeconnect_live_closes",
    "Live connections ended, by WebSocket close code (refusals included: 4401, 4404, 4429...); codes the server "
    "does not know are counted as `other`.",
    ["code"],
)
SLOW_READERS_DROPPED = Counter(
    "codeconnect_live_slow_readers_dropped",
    "Live connections cut because they did not read what was sent to them (send budget or stall).",
)
CLIENT_RUNS_DROPPED = Counter(
    "codeconnect_live_client_runs_dropped",
    "Run records clients wrote into a session whose policy lets no code run, taken out again by the server.",
)

# --- the update log ------------------------------------------------------------------------------------------------

COMMIT_BATCH = Histogram(
    "codeconnect_update_log_commit_batch_updates",
    "Document updates stored by one group commit of the update log.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
COMMIT_DURATION = Histogram(
    "codeconnect_update_log_commit_duration_seconds",
    "Time one group commit of the update log took (after the commit window), when it succeeded.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
COMPACTIONS = Counter(
    "codeconnect_update_log_compactions",
    "Compactions of a session's update log into a snapshot, by outcome: compacted, skipped (nothing to merge, "
    "or another process compacting it), failed.",
    ["outcome"],
)

# --- the sandbox -----------------------------------------------------------------------------------------------

SANDBOX_RUNS = Counter(
    "codeconnect_sandbox_runs", "Server-side runs finished, by language and outcome.", ["language", "outcome"]
)
SANDBOX_DURATION = Histogram(
    "codeconnect_sandbox_run_duration_seconds",
    "Wall time of a server-side run in its sandbox (compile and run), by language.",
    ["language"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0),
)
SANDBOX_QUEUE = Gauge(
    "codeconnect_sandbox_queue_length", "Server-side runs waiting for a free slot.", multiprocess_mode="livesum"
)
SANDBOX_ACTIVE = Gauge(
    "codeconnect_sandbox_runs_active", "Server-side runs holding a slot.", multiprocess_mode="livesum"
)
SANDBOX_REFUSED = Counter(
    "codeconnect_sandbox_refused",
    "Server-side runs refused with 429, by reason: rate_limited (the client's runs per minute), execution_busy "
    "(every slot taken and the queue full).",
    ["reason"],
)

# Close codes counted by their number: the server's own and the standard ones. A peer may close with any code,
# and each would be a series of its own.
_KNOWN_CLOSE_CODES = frozenset(CloseCode) | frozenset((1002, 1005, 1006, 1007, 1008, 1009))
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_ORIGINS = (
    ("client_updates", LIVE_UPDATES_RECEIVED.labels(origin="client")),
    ("server_updates", LIVE_UPDATES_RECEIVED.labels(origin="server")),
    ("cluster_updates", LIVE_UPDATES_RECEIVED.labels(origin="cluster")),
    ("relayed_updates", LIVE_UPDATES_RELAYED),
)
_published = dict.fromkeys((name for name, _ in _ORIGINS), 0)
_redis_up: Gauge | None = None


def route_of(scope: Any) -> str:
    """The template of the route that took a request (``/v1/sessions/{sessionId}``), or ``unmatched``."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


def observe_http(scope: Any, status: int, seconds: float) -> None:
    method = scope["method"] if scope["method"] in _METHODS else "other"
    route = route_of(scope)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def count_rest_rate_limited(route: str, limit: str) -> None:
    """Count a REST request refused with 429: ``route`` its route template (see :func:`route_of`), never a path;
    ``limit`` the error code of the limit. Errors raised as ``TooManyRequests`` are counted by the error handler."""
    REST_RATE_LIMITED.labels(route, limit).inc()


def count_close(code: int | None) -> None:
    code = 1006 if code is None else code
    LIVE_CLOSES.labels(str(int(code)) if code in _KNOWN_CLOSE_CODES else "other").inc()


def redis_up() -> Gauge:
    """``codeconnect_redis_up``: created by the first process that uses Redis, so one process shows none."""
    global _redis_up
    if _redis_up is None:
        _redis_up = Gauge(
            "codeconnect_redis_up",
            "1 while this process reaches Redis, else 0 (with several workers: the lowest of them).",
            multiprocess_mode="livemin",
        )
    return _redis_up


def publish_live_counts() -> None:
    """Move what the live core counted since the last call into the exported counters."""
    for name, counter in _ORIGINS:
        value = getattr(TALLY, name)
        grown = value - _published[name]
        if grown:
            _published[name] = value
            counter.inc(grown)


# --- exposition --------------------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, or None for one process (as prometheus_client decided when imported)."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def render() -> tuple[bytes, str]:
    """The exposition of every metric (summed over the workers in multiprocess mode), and its content type."""
    publish_live_counts()
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]  # the library leaves it unannotated
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that died without saying so (kill -9; a clean exit does it itself): uvicorn's
    supervisor, which restarts them, has no hook for it."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = os.path.basename(file).rsplit("_", 1)[-1].removesuffix(".db")
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, under another user


@contextlib.asynccontextmanager
async def exported(enabled: bool) -> AsyncIterator[None]:
    """This process's part of the metrics while its app runs (a lifespan resource)."""
    path = multiprocess_dir() if enabled else None
    task = asyncio.create_task(_publish_every(_PUBLISH_SECONDS), name="metrics-publish") if path else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        publish_live_counts()
        if path is not None:
            # This worker's gauges stop counting; its counters stay in the sums, as Prometheus expects.
            mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


async def _publish_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        publish_live_counts()


@contextlib.contextmanager
def shared_by_workers(workers: int, enabled: bool) -> Iterator[None]:
    """For ``serve --workers N`` (N > 1): multiprocess mode in a folder of this run's own, removed on exit. A folder
    kept from an earlier run would add that run's counts to this one's; an inherited setting is replaced."""
    if workers < 2 or not enabled:
        yield
        return
    path = tempfile.mkdtemp(prefix="codeconnect-metrics-")
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = path  # the workers inherit it and import prometheus_client with it set
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
