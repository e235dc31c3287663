"""Shared pydantic building blocks: camelCase JSON and string constraints that the schema can state."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# PostgreSQL text cannot hold NUL, and no editor produces it: the schema says so and requests with it are 422.
NO_NUL = r"^[^\x00]*$"


def byte_limited_text(max_bytes: int, description: str) -> Any:
    """Text limited in bytes of UTF-8, which a schema cannot count: the schema states the limit (``x-maxBytes``)
    and the route enforces it with ``limits.check_text_bytes`` (413), so a long text is refused the same way
    whether its characters take one byte or four."""
    return Annotated[
        str, Field(pattern=NO_NUL, description=description, json_schema_extra={"x-maxBytes": max_bytes})
    ]


class CamelModel(BaseModel):
    """JSON in camelCase, Python in snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class StrictRequest(CamelModel):
    """Request bodies: unknown fields are an error, so typos are caught instead of silently ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", serialize_by_alias=True
    )


def bind_body(endpoint: Callable[..., Any], model: type[BaseModel], param: str = "body") -> None:
    """Make FastAPI validate ``param`` of ``endpoint`` with ``model``.

    Request models carry per-deployment limits (see ``build_request_models``), so they are created at start-up;
    endpoints are written against the static base class for type checking and re-bound here.
    """
    sig = inspect.signature(endpoint, eval_str=True)
    params = [p.replace(annotation=model) if p.name == param else p for p in sig.parameters.values()]
    endpoint.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
