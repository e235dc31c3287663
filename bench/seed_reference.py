"""The REST reference for ``rest_bench.py``: the first version's design, sessions in a dict.

FastAPI with Pydantic models and the same uvicorn as ours, no database, no authentication, no live document:
what a request costs on this machine when nothing is stored. Run by ``rest_bench.py`` as
``python -m uvicorn seed_reference:app`` from this folder; not part of the product.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field


class CreateSession(BaseModel):
    title: str = Field(default="Untitled", max_length=200)
    language: str = "python"
    code: str | None = None


class Session(BaseModel):
    id: str
    title: str
    language: str
    code: str
    created_at: datetime
    updated_at: datetime
    participants: list[dict[str, str]]


class Created(Session):
    owner_key: str


app = FastAPI()
sessions: dict[str, Session] = {}


@app.post("/v1/sessions", status_code=201, response_model=Created)
async def create(body: CreateSession) -> Created:
    now = datetime.now(UTC)
    session = Session(
        id=secrets.token_urlsafe(16),
        title=body.title,
        language=body.language,
        code=body.code if body.code is not None else "print('hello')\n",
        created_at=now,
        updated_at=now,
        participants=[],
    )
    sessions[session.id] = session
    return Created(**session.model_dump(), owner_key=secrets.token_urlsafe(32))


@app.get("/v1/sessions/{session_id}", response_model=Session)
async def read(session_id: str) -> Session:
    found = sessions.get(session_id)
    if found is None:
        raise HTTPException(404, "Session not found")
    return found


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
