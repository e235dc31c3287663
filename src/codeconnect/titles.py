"""What a session title may be, wherever it is written from: a REST body or the live document's ``meta.title``.

REST refuses a title that breaks these rules (422); the live room ignores one written through Yjs and keeps the
last valid title. Both check it with the same pydantic type, so the two paths cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from codeconnect.schemas import NO_NUL


def title_type(max_length: int) -> Any:
    """The title as request bodies declare it (its limits appear in the OpenAPI schema)."""
    return Annotated[str, Field(min_length=1, max_length=max_length, pattern=NO_NUL)]


@lru_cache(maxsize=4)
def _adapter(max_length: int) -> TypeAdapter[str]:
    return TypeAdapter(title_type(max_length))


def is_valid_title(value: object, max_length: int) -> bool:
    """Whether REST would accept ``value`` as a title (a JSON string: no other type is coerced)."""
    if not isinstance(value, str):
        return False
    try:
        _adapter(max_length).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True
