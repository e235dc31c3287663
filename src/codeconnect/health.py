"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeconnect.config import Settings
from codeconnect.errors import ServiceUnavailable, responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz", summary="Readiness: the database answers", response_model=Health, responses=responses(503)
)
async def readyz(request: Request) -> Health:
    engine: AsyncEngine = request.app.state.engine
    settings: Settings = request.app.state.settings
    try:
        async with asyncio.timeout(settings.readiness_timeout_seconds):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable("The database is not reachable.", code="database_unavailable") from exc
    return Health()
