"""The join request as the participants API validates it: the session schema's ``JoinRequest`` (with this
deployment's limits) plus the rules of :mod:`codeconnect.participants.names`."""

from __future__ import annotations

from typing import Any

from pydantic import create_model, field_validator
from pydantic_core import PydanticCustomError

from codeconnect.participants.names import InvalidName, normalize_name
from codeconnect.sessions.schemas import JoinRequest


def _checked_name(value: Any) -> Any:
    # Before the field's own checks, so the length limit applies to the name as it is stored (NFC can change
    # the length) and a refusal is a validation error of `body.name` like any other. Non-strings are left to
    # the field's type check.
    if not isinstance(value, str):
        return value
    try:
        return normalize_name(value)
    except InvalidName as exc:
        # The sentence as written (a plain ValueError would be prefixed "Value error, "): the page shows it.
        raise PydanticCustomError("invalid_name", str(exc)) from None


def checked_join_model(base: type[JoinRequest]) -> type[JoinRequest]:
    """``base`` with names normalised (NFC, trimmed) and refused when they cannot be shown faithfully."""
    return create_model(
        base.__name__,
        __base__=base,
        __doc__=base.__doc__,
        __validators__={"_checked_name": field_validator("name", mode="before")(_checked_name)},
    )
