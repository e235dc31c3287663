"""One error hierarchy and the handlers that render every failure in one JSON shape.

Every 4xx/5xx body is ``{"error": "<snake_case code>", "detail": "<sentence>"}`` plus ``fields`` for validation
errors. Routes raise :class:`AppError` subclasses; they never build error JSON themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from codeconnect import metrics

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Dotted path of the field, e.g. `body.title`.")
    message: str = Field(description="What was wrong with it.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str = Field(description="Stable snake_case error code.", examples=["session_not_found"])
    detail: str = Field(description="A human-readable sentence.")
    fields: list[FieldError] | None = Field(default=None, description="Invalid fields (validation errors).")


class AppError(Exception):
    """A failure the client can be told about."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class NotImplementedByServer(AppError):
    status_code = 501
    code = "not_implemented"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


class SessionNotFound(NotFound):
    code = "session_not_found"

    def __init__(self) -> None:
        super().__init__("No session exists with this id.")


class ViewNotFound(NotFound):
    code = "view_not_found"

    def __init__(self) -> None:
        super().__init__("No session has this read-only link.")


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, fields=fields)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the error shape for the given statuses."""
    descriptions = {
        400: "Malformed request (e.g. invalid JSON).",
        401: "Missing or invalid credentials.",
        403: "Not allowed.",
        404: "Not found.",
        409: "Conflict with the current state.",
        413: "Request or content too large.",
        422: "Validation failed; `fields` says which field and why.",
        429: "Too many requests; see `Retry-After`.",
        501: "Not available on this server.",
        503: "Temporarily unavailable.",
    }
    return {s: {"model": ErrorBody, "description": descriptions.get(s, "Error.")} for s in statuses}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _validation_fields(errors: Sequence[Any]) -> list[FieldError]:
    out: list[FieldError] = []
    for err in errors:
        msg = str(err.get("msg", "invalid value"))
        out.append(FieldError(field=_loc(err.get("loc", ())), message=msg))
    return out


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if isinstance(exc, TooManyRequests):
        # Here, so that every limit a route raises is counted, whichever domain it belongs to.
        metrics.count_rest_rate_limited(metrics.route_of(request.scope), exc.code)
    return error_response(exc.status_code, exc.code, exc.detail, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # FastAPI reports undecodable JSON as a validation error of type `json_invalid`: that is a 400.
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "The request body is not valid JSON.")
    fields = _validation_fields(errors)
    first = fields[0] if fields else None
    detail = f"Invalid {first.field}: {first.message}." if first else "The request is invalid."
    return error_response(422, "validation_error", detail, fields=fields)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first matching route's)."""
    allowed = [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No resource at this path."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on this path."
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, detail, headers=headers or None)


async def _database_busy(_: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed taken for CODECONNECT_DB_WAIT_SECONDS: overload, not a fault of the request
    # or of the server; nothing was written.
    return error_response(
        503, "database_busy", "The database is busy; try again shortly.", headers={"Retry-After": "1"}
    )


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "The server failed to handle this request.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PoolTimeout, _database_busy)
    app.add_exception_handler(Exception, _unhandled)
