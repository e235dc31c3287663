"""A recorded session to play back: three people typing steadily, with runs and a language switch, as the document
`POST /v1/sessions/import` takes (`GET .../export`'s shape), every change with its own time.

Each person edits their own copy of the document (pycrdt, their own Yjs client id) synced with the others before
each change, so the updates are the ones their pages would have sent; the times are spread evenly over
``seconds``, with a few idle pauses.

    .venv/bin/python bench/recorded_session.py --changes 20000 --seconds 3600 > session.json
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pycrdt import Array, Doc, Map, Text, merge_updates

PEOPLE = [("p-ada", "Ada", "#e06c75"), ("p-grace", "Grace", "#61afef"), ("p-linus", "Linus", "#98c379")]
WORDS = "def total for item in items return value if else while print result count index range len".split()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def session_export(
    changes: int = 3000, seconds: float = 600.0, seed: int = 7, start: datetime | None = None
) -> dict[str, Any]:
    """An export of ``changes`` changes over ``seconds``: mostly typing (a character a change), some deletions, a run
    every 400 changes (by the server, as a server run's record is), and a switch to JavaScript half-way."""
    rng = random.Random(seed)
    began = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    server = Doc(client_id=1)
    server.get("code", type=Text)
    server.get("meta", type=Map)
    server.get("runs", type=Array)
    docs = [Doc(client_id=100 + i) for i in range(len(PEOPLE))]
    texts = [d.get("code", type=Text) for d in docs]
    for d in docs:
        d.get("meta", type=Map)
        d.get("runs", type=Array)
    history: list[dict[str, Any]] = []
    pending = [""] * len(PEOPLE)  # what each person is about to type
    step = seconds / max(1, changes)
    now = 0.0

    def record(doc: Doc, edit: Any, author: str | None) -> None:
        nonlocal now
        doc.apply_update(server.get_update(doc.get_state()))
        # The update the edit's transaction made, as a page sends it (a diff against a state vector would carry the
        # document's whole delete set every time).
        made: list[bytes] = []
        subscription = doc.observe(lambda event: made.append(event.update))
        edit()
        doc.unobserve(subscription)
        update = made[0] if len(made) == 1 else merge_updates(*made)
        server.apply_update(update)
        # Steady typing, with now and then a pause of a few seconds (skipped when idle gaps are).
        now += step * rng.uniform(0.5, 1.5) + (rng.uniform(4, 12) if rng.random() < 0.004 else 0)
        history.append({"at": (began + timedelta(seconds=now)).isoformat(), "author": author, "update": _b64(update)})

    # Each person writes in their own part of the program: a line of their own to extend.
    for i, (pid, name, _color) in enumerate(PEOPLE):
        text = texts[i]
        record(docs[i], lambda t=text, n=name: t.insert(len(str(t)), f"# {n}\n\n"), pid)
    for n in range(changes - len(PEOPLE)):
        i = rng.randrange(len(PEOPLE))
        doc, text, pid = docs[i], texts[i], PEOPLE[i][0]
        doc.apply_update(server.get_update(doc.get_state()))
        code = str(text)
        marker = f"# {PEOPLE[i][1]}\n"
        at = code.find(marker)
        end = code.find("\n# ", at + len(marker))
        end = len(code) if end < 0 else end + 1
        if n == changes // 2:
            record(doc, lambda d=doc: d.get("meta", type=Map).__setitem__("language", "javascript"), pid)
        elif n and n % 400 == 0:
            run = {"id": f"run-{n}", "by": {"participantId": pid, "name": PEOPLE[i][1], "color": PEOPLE[i][2]},
                   "source": "server", "language": "python", "stdin": "", "stdout": f"run {n // 400}: ok\n",
                   "stderr": "", "exitCode": 0, "signal": None, "signalName": None, "timedOut": False,
                   "outputTruncated": False, "outcome": "ok", "compileOutput": "", "durationMs": 40 + n % 90,
                   "startedAt": (began + timedelta(seconds=now)).isoformat()}  # fmt: skip
            record(server, lambda r=run: server.get("runs", type=Array).append(r), None)
        elif rng.random() < 0.08 and end - 1 > at + len(marker):
            # Backspace at the end of their part (before its last newline).
            gone = slice(len(code[: end - 2].encode()), len(code[: end - 1].encode()))
            record(doc, lambda t=text, g=gone: t.__delitem__(g), pid)
        else:
            if not pending[i]:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 7)))
                pending[i] = "    " * rng.randrange(3) + words + "\n"
            ch, pending[i] = pending[i][0], pending[i][1:]
            position = len(code[: end - 1].encode())
            record(doc, lambda t=text, p=position, c=ch: t.insert(p, c), pid)
    first = began.isoformat()
    return {
        "format": "codeconnect-session",
        "version": 1,
        "exportedAt": (began + timedelta(seconds=now + 1)).isoformat(),
        "session": {"title": "Recorded session", "language": "python", "code": str(server.get("code", type=Text)),
                    "createdAt": first, "updatedAt": history[-1]["at"]},  # fmt: skip
        "participants": [
            {"id": pid, "name": name, "color": color, "role": "editor", "joinedAt": first}
            for pid, name, color in PEOPLE
        ],
        "base": [],
        "history": history,
        "runs": server.get("runs", type=Array).to_py() or [],
        "notes": {"text": "", "version": 0},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    json.dump(session_export(args.changes, args.seconds, args.seed), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
