"""What operators probe and scrape: liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeconnect import metrics
from codeconnect.config import Settings
from codeconnect.errors import ServiceUnavailable, Unauthorized, responses
from codeconnect.security import hash_secret, secret_matches

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(Health):
    redis: Literal["up", "down"] | None = Field(
        default=None,
        description="Whether this process reaches Redis (null: one process, no Redis). Down is not unready: "
        "rooms keep working for each process's clients and heal when it returns, and taking every process out "
        "of the load balancer at once would turn a degraded cluster into an outage.",
    )


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    response_model=Readiness,
    # `redis` only where Redis is configured: one process answers as it always did.
    response_model_exclude_none=True,
    responses=responses(503),
)
async def readyz(request: Request) -> Readiness:
    engine: AsyncEngine = request.app.state.engine
    settings: Settings = request.app.state.settings
    try:
        async with asyncio.timeout(settings.readiness_timeout_seconds):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable("The database is not reachable.", code="database_unavailable") from exc
    return Readiness(redis=request.app.state.collab.cluster.status())


def build_metrics_router(settings: Settings) -> APIRouter:
    """``GET /metrics``, behind ``CODECONNECT_METRICS_TOKEN`` when it is set."""
    router = APIRouter(tags=["health"])
    # Only the token's hash is kept, and compared in constant time (as participant tokens are).
    expected = hash_secret(settings.metrics_token.get_secret_value()) if settings.metrics_token is not None else None

    @router.get(
        "/metrics",
        summary="Metrics in the Prometheus text format",
        response_class=PlainTextResponse,
        # The error is JSON like every other (a model here would be documented as the route's text/plain); its
        # schema is in the components through /readyz's 503.
        responses={
            401: {
                "description": "Missing or wrong metrics token (`CODECONNECT_METRICS_TOKEN` is set).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            }
        },
    )
    async def get_metrics(request: Request) -> Response:
        """Counters, gauges and histograms of this server (every worker's, summed, under `serve --workers N`):
        HTTP requests, live connections and updates, the update log, the sandbox. With
        `CODECONNECT_METRICS_TOKEN` set, the request needs `Authorization: Bearer <token>`; 401 otherwise."""
        if expected is not None:
            _check_token(request.headers.get("authorization"), expected)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return router


def _check_token(header: str | None, expected: str) -> None:
    scheme, _, given = (header or "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized(
            "Reading the metrics needs the metrics token in an `Authorization: Bearer` header.",
            code="metrics_token_required",
            headers=challenge,
        )
    if not secret_matches(given.strip(), expected):
        raise Unauthorized("The metrics token does not match.", code="metrics_token_invalid", headers=challenge)
