"""What the service's log lines say, and what they never say.

* Secrets and invitations never appear: tokens and owner keys are secrets, a session id is the editor invitation
  and a viewer id a read capability. :class:`RedactSecrets` removes them from every line (access logs show paths
  and query strings), whatever the format.
* Lines are text (uvicorn's format) or JSON, one object per line (``CODECONNECT_LOG_FORMAT``): time, level,
  logger, message, and where there is one, the request's id and the session's reference.
* Every HTTP request gets an id, returned in its ``X-Request-ID`` header and carried by every line logged while
  it is handled (its access line included). The id is always the server's own: one sent by the client could be
  anything, a token included.
* A line about a session carries a short keyed hash of its id (:func:`session_ref`), never the id: the lines of
  one session can be told apart from another's, and the id cannot be recovered from them. Processes with the same
  ``CODECONNECT_LOG_HASH_KEY`` give a session the same reference; without one, each process draws its own key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import uvicorn

from codeconnect.config import Settings

# Query parameters holding a secret or a session id, whatever their case or spelling (ownerKey, owner_key...).
_SECRET_PARAM = re.compile(r"((?:token|owner_?key|session(?:_?id)?|viewer(?:_?id)?)=)[^&\s\"']+", re.IGNORECASE)
# Path segments holding a session id or a viewer id (a read-only link): the API, the live endpoint and the page.
# Anything in that place is redacted, existing session or not (a mistyped link is still most of one).
_ID_PATH = re.compile(r"(/v1/sessions/|/v1/views/|/v1/collab/(?:v/)?|/s/|/v/)[^/?#\s\"']+")
# Paths naming a session by its id (not a viewer id, which is a different capability).
_SESSION_PATH = re.compile(r"^(?:/v1/sessions/|/v1/collab/(?!v/)|/s/)([A-Za-z0-9_-]{1,64})(?:/|$)")

#: The id of the HTTP request being handled (None outside one).
request_id: ContextVar[str | None] = ContextVar("codeconnect_request_id", default=None)
#: The id of the session the request being handled is about. Never logged as such: a JSON line carries its
#: reference (:func:`session_ref`), computed only when a line is written (text lines carry nothing of it).
session: ContextVar[str | None] = ContextVar("codeconnect_session", default=None)

_hash_key = secrets.token_bytes(32)


def redact(text: str) -> str:
    return _ID_PATH.sub(r"\1[redacted]", _SECRET_PARAM.sub(r"\1[redacted]", text))


def set_hash_key(key: str | None) -> None:
    """Use ``key`` for session references (None: keep this process's random one)."""
    global _hash_key
    if key:
        _hash_key = key.encode("utf-8")


def session_ref(session_id: str, key: bytes | None = None) -> str:
    """A short keyed hash of a session id (by default under this process's key): the same for every line about
    the session, useless to anyone else."""
    return hmac.new(key or _hash_key, session_id.encode("utf-8"), hashlib.sha256).hexdigest()[:12]


def session_in_path(path: str) -> str | None:
    """The id of the session a request path names, if it names one by its id (not by a viewer id)."""
    found = _SESSION_PATH.match(path)
    return found.group(1) if found else None


def new_request_id() -> str:
    return secrets.token_hex(8)


class RedactSecrets(logging.Filter):
    """Access logs show request paths and query strings. Tokens and owner keys are secrets, and a session id is
    the editor invitation (whoever has it can edit): none of them is ever logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and when set,
    ``request_id``, ``session`` and ``exception`` (the traceback, redacted like the message)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid, sid = request_id.get(), session.get()
        if rid is not None:
            line["request_id"] = rid
        if sid is not None:
            line["session"] = session_ref(sid)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def log_config(settings: Settings) -> dict[str, object]:
    """``logging.config.dictConfig`` for the service and uvicorn, in the format the settings ask for."""
    set_hash_key(settings.log_hash_key.get_secret_value() if settings.log_hash_key else None)
    config = dict(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "codeconnect.logs.RedactSecrets"}}
    if settings.log_format == "json":
        config["formatters"] = {"json": {"()": "codeconnect.logs.JsonLines"}}
    handlers = {k: dict(v) for k, v in config["handlers"].items()}
    for handler in handlers.values():
        handler["filters"] = ["redact"]
        if settings.log_format == "json":
            handler["formatter"] = "json"
    config["handlers"] = handlers
    config["loggers"] = {
        **config["loggers"],
        "codeconnect": {"handlers": ["default"], "level": settings.log_level.upper(), "propagate": False},
    }
    return config
