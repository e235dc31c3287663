"""The shared document schema and the edits the server itself makes to it.

``Y.Text "code"`` holds the program, ``Y.Map "meta"`` its ``language`` and ``title``, ``Y.Array "runs"`` the
last run outputs. Yrs measures text in UTF-8 bytes, so every index handed to it is converted from Python
string positions here, and only here.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text

from codeconnect.languages import LanguageName, normalize_language

CODE, META, RUNS = "code", "meta", "runs"
MAX_RUNS = 20


class SharedDoc:
    """A pycrdt document with the session schema's root types at hand."""

    __slots__ = ("doc", "code", "meta", "runs")

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.code = self.doc.get(CODE, type=Text)
        self.meta = self.doc.get(META, type=Map)
        self.runs = self.doc.get(RUNS, type=Array)

    def text(self) -> str:
        return str(self.code)

    def text_bytes(self) -> int:
        return len(self.code)  # Yrs counts UTF-8 bytes

    def language(self) -> LanguageName | None:
        """The language in the document if it is a known one (clients may write anything there)."""
        value = self.meta.get("language")
        return normalize_language(value) if isinstance(value, str) else None

    def title(self) -> str | None:
        value = self.meta.get("title")
        return value if isinstance(value, str) and value else None

    def replace_text(self, new: str) -> bool:
        """Turn the text into ``new`` with one minimal edit (common prefix and suffix kept), so cursors of
        other participants outside the changed span stay where they are. Returns False when unchanged."""
        old = str(self.code)
        if old == new:
            return False
        limit = min(len(old), len(new))
        start = 0
        while start < limit and old[start] == new[start]:
            start += 1
        end = 0
        while end < limit - start and old[-1 - end] == new[-1 - end]:
            end += 1
        head = len(old[:start].encode("utf-8", "surrogatepass"))
        removed = len(old[start : len(old) - end].encode("utf-8", "surrogatepass"))
        inserted = new[start : len(new) - end]
        with self.doc.transaction():
            if removed:
                del self.code[head : head + removed]
            if inserted:
                self.code.insert(head, inserted)
        return True

    def set_meta(self, key: str, value: str) -> bool:
        if self.meta.get(key) == value:
            return False
        self.meta[key] = value
        return True

    def append_run(self, run: dict[str, Any]) -> None:
        """Append a run output and keep the last ``MAX_RUNS``, in one transaction (the shared contract)."""
        with self.doc.transaction():
            self.runs.append(run)
            excess = len(self.runs) - MAX_RUNS
            if excess > 0:
                del self.runs[0:excess]

    def drop_runs(self, records: list[Any]) -> int:
        """Remove the run records equal to one of ``records``; return how many went."""
        doomed = [i for i, run in enumerate(self.runs.to_py() or []) if run in records]
        if doomed:
            with self.doc.transaction():
                for i in reversed(doomed):
                    del self.runs[i]
        return len(doomed)

    def clear_runs(self) -> int:
        """Remove every run output; return how many there were."""
        count = len(self.runs)
        if count:
            with self.doc.transaction():
                del self.runs[0:count]
        return count


def initial_update(code: str, language: str, title: str) -> bytes:
    """The first update of a new session: every client starts from this same history."""
    shared = SharedDoc()
    with shared.doc.transaction():
        shared.meta["language"] = language
        shared.meta["title"] = title
        if code:
            shared.code.insert(0, code)
    return shared.doc.get_update()
