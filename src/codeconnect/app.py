"""The application factory: settings in, a FastAPI app out; resources owned by the lifespan."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pycrdt import Doc
from starlette.types import Message, Receive, Scope, Send

from codeconnect import __version__, logs, metrics
from codeconnect.clients import TrustedProxies, resolve_client
from codeconnect.collab.admission import Admission
from codeconnect.collab.cluster import Cluster, LocalCluster
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.router import LiveEndpoint, is_live
from codeconnect.collab.store import open_update_log
from codeconnect.collab.transport import (
    ACCEPTOR_STATE_KEY,
    LIMITS_STATE_KEY,
    SHUTDOWN_STATE_KEY,
    TransportLimits,
    WebSocketConnection,
)
from codeconnect.config import Settings
from codeconnect.controls.router import build_router as controls_router
from codeconnect.db import create_engine, create_sessionmaker
from codeconnect.errors import install_error_handlers
from codeconnect.execution.router import build_router as execution_router
from codeconnect.execution.sandbox import SandboxUnavailable
from codeconnect.execution.service import ExecutionService, client_runs_allowed
from codeconnect.health import build_metrics_router
from codeconnect.health import router as health_router
from codeconnect.history.notes import NotesWatch
from codeconnect.history.router import build_router as history_router
from codeconnect.history.service import HistoryCache
from codeconnect.hosts import HostAllowList
from codeconnect.limits import BodySizeLimit
from codeconnect.participants.router import build_router as participants_router
from codeconnect.participants.service import live_authenticator
from codeconnect.processes import ProcessList, SharedDatabase
from codeconnect.rates import RateLimits
from codeconnect.sessions.cards import SessionCards
from codeconnect.sessions.deletion import SessionDeletion
from codeconnect.sessions.retention import RetentionTask
from codeconnect.sessions.router import build_router as sessions_router
from codeconnect.sessions.schemas import build_request_models
from codeconnect.views.router import build_router as views_router
from codeconnect.views.service import ViewerLinks
from codeconnect.web.apidocs import build_router as api_docs_router
from codeconnect.web.router import build_router as web_router
from codeconnect.workspaces.router import build_router as admin_router
from codeconnect.workspaces.service import Policies

log = logging.getLogger(__name__)

DESCRIPTION = """
Code Connect Live: a live collaborative code pad. Create a session, share its link, join as a participant,
co-edit over the Yjs WebSocket endpoint, and run code.

Every error has the same shape: `{"error": "<code>", "detail": "<sentence>"}`, plus `fields` for validation
errors.
"""


class CodeConnectApp(FastAPI):
    """The API and the page, with the live endpoint's WebSocket requests answered before the middleware stack.

    Each idle live connection keeps its whole call chain suspended for as long as it is open: every layer in
    front of it (FastAPI's and Starlette's own middleware, which do nothing for these requests) would cost a
    suspended coroutine and its closures per connection, in memory and in every full garbage collection.
    """

    #: ``CODECONNECT_ALLOWED_HOSTS``; checked here, as the live endpoint never reaches the middleware stack.
    host_allow_list: HostAllowList | None = None
    #: ``CODECONNECT_TRUSTED_PROXIES`` (None: none); the client's address is resolved here, once, for everything.
    trusted_proxies: TrustedProxies | None = None
    #: ``CODECONNECT_METRICS``: HTTP requests are counted and timed here, around everything else the app does.
    http_metrics: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function still (servers tell ASGI 3 apps by that), but one frame instead of five.
        if scope["type"] == "http":
            await self._serve_http(scope, receive, send)
            return
        if scope["type"] != "lifespan":
            if self.trusted_proxies is not None:
                resolve_client(scope, self.trusted_proxies)
            # Read by every log line of this connection (its own task's context; see logs.py).
            logs.session.set(logs.session_in_path(scope["path"]))
        hosts = self.host_allow_list
        if hosts is not None and scope["type"] != "lifespan" and not hosts.allows(scope):
            await hosts.refuse(scope, receive, send)
        elif is_live(scope):
            await self.state.live(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted_proxies is not None:
            resolve_client(scope, self.trusted_proxies)
        # Read by every log line of this request (its own task's context; see logs.py).
        logs.session.set(logs.session_in_path(scope["path"]))
        rid = logs.new_request_id()
        logs.request_id.set(rid)
        header = (b"x-request-id", rid.encode("ascii"))
        status = 500  # what the server answers when the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        started = time.perf_counter()
        try:
            hosts = self.host_allow_list
            if hosts is not None and not hosts.allows(scope):
                await hosts.refuse(scope, receive, send_with_id)
            else:
                await super().__call__(scope, receive, send_with_id)
        finally:
            if self.http_metrics:
                # By the route that took the request (set in the scope by the router), never by its path.
                metrics.observe_http(scope, status, time.perf_counter() - started)


def _accept_live(
    app: FastAPI, live: LiveEndpoint, path: str, query: str, host: str | None, connection: WebSocketConnection
) -> bool:
    """The transport's acceptor (see ``collab/transport``): the live endpoint's, behind the same host check as
    :meth:`CodeConnectApp.__call__`; a refused host goes the usual way, to be answered there."""
    hosts = app.host_allow_list if isinstance(app, CodeConnectApp) else None
    if hosts is not None and not hosts.allows_host(host):
        return False
    return live.admit_now(path, query, connection)


def create_served_app() -> FastAPI:
    """The app as ``codeconnect serve`` runs it: the one app of its process (see ``create_app``)."""
    return create_app(own_process=True)


def create_app(settings: Settings | None = None, *, own_process: bool = False) -> FastAPI:
    """Build the app. Nothing connects until the lifespan starts, so tests can run several apps at once.

    ``own_process``: the app is the only one in its process and may tune it. After startup, everything the
    process holds by then (modules, classes, the app; ~120,000 objects) is moved out of the cyclic garbage
    collector's sight with ``gc.freeze()``: none of it is ever garbage, yet every full collection walked it
    all while holding the event loop, a pause of 40 ms at a few hundred connections that grew with them.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        async with AsyncExitStack() as stack:
            # Entered first, left last: what the rooms count while they flush on the way out is published.
            await stack.enter_async_context(metrics.exported(settings.metrics))
            engine = create_engine(settings.database_url, wait_seconds=settings.db_wait_seconds)
            stack.push_async_callback(engine.dispose)
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine)
            # Rooms flush on exit, before the engine they write through is disposed (exit order is LIFO).
            cluster: Cluster = LocalCluster()
            if settings.is_clustered:
                from codeconnect.collab.redis_cluster import RedisCluster

                cluster = RedisCluster(settings)
            update_log = open_update_log(app.state.sessionmaker, settings)
            lookup = update_log.participant if update_log.driver is not None else None
            authenticate = live_authenticator(app.state.sessionmaker, update_log.lock, lookup)
            collab = await stack.enter_async_context(
                RoomRegistry(
                    app.state.sessionmaker, settings, log_=update_log, authenticate=authenticate, cluster=cluster,
                    runs_allowed=partial(client_runs_allowed, app.state.sessionmaker, settings),
                )
            )
            app.state.collab = app.state.presence = app.state.run_sink = collab
            try:
                await stack.enter_async_context(ProcessList(app.state.sessionmaker, settings, update_log.lock))
            except SharedDatabase as exc:
                log.error("codeconnect: refusing to start: %s", exc)
                raise
            app.state.cards = SessionCards(
                settings.session_cards, partial(cluster.share, "card") if cluster.shared else None,
                also_forget=update_log.changed,
            )
            cluster.listen("card", app.state.cards.apply_shared)
            cluster.on_gap(app.state.cards.clear)
            app.state.policies = Policies(
                app.state.sessionmaker,
                settings.policy_cache_seconds,
                partial(cluster.share, "policy") if cluster.shared else None,
            )
            cluster.listen("policy", app.state.policies.apply_shared)
            cluster.on_gap(app.state.policies.clear)
            app.state.history = HistoryCache(app.state.sessionmaker, settings, collab)
            app.state.notes = NotesWatch(cluster, settings.notes_waiters_per_session, settings.notes_waiters_max)
            app.state.deletion = SessionDeletion(
                app.state.sessionmaker, collab, app.state.cards,
                forget=[app.state.history.forget, app.state.notes.forget],
            )  # fmt: skip
            app.state.retention = await stack.enter_async_context(
                RetentionTask(app.state.sessionmaker, settings, app.state.deletion)
            )
            views = ViewerLinks(app.state.sessionmaker, collab.db_lock)
            admission = Admission(settings, partial(cluster.share, "admission") if cluster.shared else None)
            cluster.listen("admission", admission.apply_shared)
            app.state.live = LiveEndpoint(collab, admission, views.session_of)
            app.state.rates = RateLimits(settings, cluster.take_rate if cluster.shared else None)
            execution = ExecutionService(settings, cluster.take_rate if cluster.shared else None)
            if cluster.shared:
                # A stop may reach a process other than the one running the run (no sticky sessions).
                execution.runs.share = partial(cluster.share, "run-stop")
                cluster.listen("run-stop", execution.runs.apply_shared)
            if execution.enabled:
                try:
                    await execution.self_test()
                except SandboxUnavailable as exc:
                    raise RuntimeError(
                        f"CODECONNECT_EXECUTION=sandbox but the sandbox is unusable: {exc}"
                    ) from exc
            stack.push_async_callback(execution.close)
            app.state.execution = execution
            # pycrdt's first document in a running loop imports anyio's asyncio backend (44 ms measured): paid
            # here, not by the first request that creates or loads a session.
            Doc()
            if own_process:
                gc.collect()
                gc.freeze()
            # The lifespan state reaches the server's protocol objects (ASGI lifespan state): the transport's
            # limits, read by each new connection of this project's WebSocket and HTTP protocol classes, and
            # the live endpoint's admission in the read that brings a request (see LiveEndpoint.admit_now), and
            # what to do when the server starts to stop, before it waits for the requests in flight (the notes'
            # long-polls answer at once rather than hold the stop for their whole wait).
            yield {
                LIMITS_STATE_KEY: TransportLimits.from_settings(settings),
                ACCEPTOR_STATE_KEY: partial(_accept_live, app, app.state.live),
                SHUTDOWN_STATE_KEY: app.state.notes.stop,
            }

    app = CodeConnectApp(
        title="Code Connect Live",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by codeconnect.web.apidocs instead, with Swagger UI and ReDoc from this process, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    if settings.allowed_host_list:
        app.host_allow_list = HostAllowList(settings.allowed_host_list)
    if settings.trusted_proxy_networks:
        app.trusted_proxies = settings.trusted_proxy_networks
    app.http_metrics = settings.metrics
    install_error_handlers(app)

    models = build_request_models(settings)
    # The session routes first: a request is matched against each router in turn, and they take most requests.
    app.include_router(sessions_router(models, settings))
    app.include_router(health_router)
    if settings.metrics:
        app.include_router(build_metrics_router(settings))
    app.include_router(participants_router(models, settings))
    app.include_router(controls_router(settings))
    app.include_router(history_router(settings))
    app.include_router(views_router(models))
    app.include_router(execution_router(settings))
    if settings.admin_token is not None:  # off, not merely refused, without a token: no such API at all
        app.include_router(admin_router())
    # Last: the page's routes (`/`, `/s/...`, static files) must never shadow an API route.
    app.include_router(api_docs_router(settings))
    app.include_router(web_router(settings))

    # Only when origins are configured: without the middleware, other origins get no CORS header at all (and
    # their preflights a 405), so no website a user visits can script the API from their browser.
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Location", "Retry-After"],
        )
    # Outermost, so an oversized body is refused before anything else looks at it.
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, paths={"/v1/sessions/import": settings.import_max_bytes}
    )
    return app
