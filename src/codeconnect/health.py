"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeconnect.config import Settings
from codeconnect.errors import ServiceUnavailable, responses

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
