"""Request and response bodies of history, playback, restore, notes, export and import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from codeconnect.languages import LanguageName
from codeconnect.schemas import NO_NUL, CamelModel, StrictRequest
from codeconnect.sessions.schemas import Role

BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
ChangeKind = Literal["edit", "language", "title", "run", "restore"]
#: The largest notes version: the column is a 32-bit integer, and a save stores the version it was made on plus one.
MAX_NOTES_VERSION = 2**31 - 1


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("The time falls outside the years 1 to 9999 once in UTC") from None


#: A time given to the server: with its offset (a time without one is ambiguous), kept in UTC, within years 1-9999.
UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class HistoryChange(CamelModel):
    """One change of the session, in the order the server received them."""

    index: int = Field(description="Position in the history, from 0 (the session's creation).")
    at: datetime = Field(description="When the server received the change.")
    author: str | None = Field(description="The participant id who sent it; null for the server's own changes.")
    inserted: int = Field(description="Characters of code inserted.")
    deleted: int = Field(description="Characters of code deleted.")
    kind: ChangeKind = Field(
        description="`run`: a run's output was added; `language`/`title`: switched; `restore`: the owner restored "
        "an earlier point; `edit`: anything else."
    )


class HistoryPerson(CamelModel):
    id: str
    name: str
    color: str


class HistoryPage(CamelModel):
    """A page of the session's timeline."""

    changes: list[HistoryChange]
    next: int | None = Field(description="Pass as `after` for the next page; null: this page is the last.")
    participants: list[HistoryPerson] = Field(description="The session's participants (authors' names and colours).")
    start: datetime | None = Field(description="Time of the first change (null: no history).")
    end: datetime | None = Field(description="Time of the last change (null: no history).")
    total: int = Field(description="Number of changes in the history.")


class AuthorRange(CamelModel):
    start: int = Field(description="Start offset in `code`, in UTF-16 code units (JavaScript string indices).")
    end: int = Field(description="End offset (exclusive).")
    author: str | None = Field(description="Who wrote these characters; null: the server, or before the history.")


class HistoryPoint(CamelModel):
    """The session right after one change."""

    index: int
    at: datetime
    code: str
    language: str
    title: str
    runs: list[Any] = Field(description="The run records of the document's `runs` array, as they were then.")
    authors: list[AuthorRange] = Field(description="Who wrote which part of `code`: covers it, in order.")


class RestoreAt(StrictRequest):
    """Go back to the last change at or before a time."""

    at: UtcTime = Field(description="A time (ISO 8601, with its offset).")


class RestoreIndex(StrictRequest):
    """Go back to right after one change."""

    index: int = Field(ge=0, description="A change index from the history.")


RestoreRequest = RestoreAt | RestoreIndex


class NotesBody(CamelModel):
    """The owner's private notes."""

    text: str
    version: int = Field(description="Grows by one with each save; 0: never saved.")
    updated_at: datetime | None


class SaveNotesRequest(StrictRequest):
    text: str = Field(pattern=NO_NUL, description="The whole notes (at most `CODECONNECT_NOTES_MAX_BYTES` of UTF-8).")
    version: int = Field(
        ge=0, lt=MAX_NOTES_VERSION, description="The version these notes were written on (409 if it is not the latest)."
    )


# --- export ----------------------------------------------------------------------------------------------------


class ExportedSession(CamelModel):
    title: str = Field(max_length=400, pattern=NO_NUL)
    language: LanguageName
    code: str = Field(pattern=NO_NUL)
    created_at: UtcTime
    updated_at: UtcTime
    ended_at: UtcTime | None = None


class ExportedParticipant(CamelModel):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    color: str = Field(max_length=16, pattern=NO_NUL)
    role: Role
    joined_at: UtcTime


class ExportedChange(CamelModel):
    at: UtcTime
    author: str | None = Field(default=None, max_length=64)
    tag: Literal["restore"] | None = None
    update: str = Field(description="The Yjs update, base64.", max_length=64 * 1024 * 1024, pattern=BASE64)


class ExportedNotes(CamelModel):
    text: str = Field(pattern=NO_NUL)
    version: int = Field(ge=0, le=MAX_NOTES_VERSION)
    updated_at: UtcTime | None = None


class SessionExport(CamelModel):
    """Everything needed to rebuild a session: `POST /v1/sessions/import` takes it back."""

    format: Literal["codeconnect-session"] = "codeconnect-session"
    version: Literal[1] = 1
    exported_at: UtcTime
    session: ExportedSession
    participants: list[ExportedParticipant]
    base: list[Annotated[str, Field(pattern=BASE64)]] = Field(
        description="What the history starts from (Yjs updates, base64): empty unless older changes were dropped "
        "by the retention or the session predates history."
    )
    history: list[ExportedChange] = Field(description="Every kept change, in order.")
    runs: list[Any] = Field(description="The run records of the document now.")
    notes: ExportedNotes


class SessionImport(SessionExport):
    """A session's export to rebuild (unknown fields refused)."""

    model_config = {**StrictRequest.model_config}
