"""Attack: impersonation through participant names.

A name is what the people list and the live cursors show, so a name that looks like someone else's is a way to
pass for them: one made of a right-to-left override (``"\u202eadA"`` shows as ``Ada`` reversed, and flips what
follows it on screen), one made only of zero-width characters (an empty-looking label), or a copy of a name
already in the session. Names are normalised (NFC, surrounding whitespace trimmed), such names are refused with
422 in the error shape, and a repeated name is made distinguishable: ``Ada``, ``Ada (2)``, ``Ada (3)``.

Each test runs on SQLite and PostgreSQL through real servers.
"""

from __future__ import annotations

import asyncio
import unicodedata

import httpx
import pytest

from tests.conftest import ServerFactory


async def new_session(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/sessions", json={"title": "Interview"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def join(client: httpx.AsyncClient, sid: str, name: str) -> httpx.Response:
    return await client.post(f"/v1/sessions/{sid}/participants", json={"name": name})


async def names_in(client: httpx.AsyncClient, sid: str) -> list[str]:
    return [p["name"] for p in (await client.get(f"/v1/sessions/{sid}/participants")).json()]


def assert_refused(r: httpx.Response) -> None:
    """422 in the project's error shape, naming the field."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error", body
    assert body["fields"][0]["field"] == "body.name", body
    assert isinstance(body["detail"], str) and body["detail"]


DIRECTION_CONTROLS = [
    "\u202eadA",  # RIGHT-TO-LEFT OVERRIDE: shows as "Ada"
    "Ada\u202e",  # ...and at the end, where it flips whatever the page shows after the name
    "\u202aAda\u202c",  # LEFT-TO-RIGHT EMBEDDING ... POP DIRECTIONAL FORMATTING
    "\u202bAda",  # RIGHT-TO-LEFT EMBEDDING
    "\u202dAda",  # LEFT-TO-RIGHT OVERRIDE
    "\u2066Ada\u2069",  # LEFT-TO-RIGHT ISOLATE ... POP DIRECTIONAL ISOLATE
    "\u2067Ada",  # RIGHT-TO-LEFT ISOLATE
    "Ada\u2068",  # FIRST STRONG ISOLATE
    "\u200eAda",  # LEFT-TO-RIGHT MARK
    "Ada\u200f",  # RIGHT-TO-LEFT MARK
    "Ada\u061c",  # ARABIC LETTER MARK
]

INVISIBLE_ONLY = [
    "\u200b",  # ZERO WIDTH SPACE
    "\u200b\u200c\u200d",  # zero-width space, non-joiner, joiner
    "\u2060\ufeff",  # WORD JOINER, ZERO WIDTH NO-BREAK SPACE
    " \u200b \u200b ",  # spaces around zero-width spaces
    "\u00ad",  # SOFT HYPHEN
    "\u00a0\u2003\u3000",  # no-break, em and ideographic spaces
    "\u0301\u0308",  # combining marks with nothing to sit on
    "\U000e0041\U000e0064\U000e0061",  # TAG characters spelling "Ada", which no font draws
    "\u3164",  # HANGUL FILLER: a letter by category, drawn as nothing
    "\u115f\u1160",  # HANGUL CHOSEONG/JUNGSEONG FILLER
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\u2800",  # BRAILLE PATTERN BLANK
    "\u034f\ufe0f",  # COMBINING GRAPHEME JOINER, VARIATION SELECTOR-16
]

CONTROLS = [
    "Ada\u0000",  # NUL
    "Ada\nLovelace",  # a line break in a one-line label
    "Ada\tLovelace",
    "Ada\rLovelace",
    "\u001b[31mAda",  # an ANSI escape, for whoever reads names in a terminal
    "Ada\u007f",  # DEL
    "Ada\u0085Lovelace",  # NEXT LINE (C1)
    "Ada\u009b",  # CONTROL SEQUENCE INTRODUCER (C1)
]


def escaped(names: list[str]) -> list[str]:
    return [n.encode("unicode_escape").decode() for n in names]


@pytest.mark.parametrize("name", DIRECTION_CONTROLS, ids=escaped(DIRECTION_CONTROLS))
async def test_direction_controls_are_refused(client: httpx.AsyncClient, name: str) -> None:
    """Pass: 422 validation_error on `body.name`, and nobody joined."""
    sid = await new_session(client)
    assert_refused(await join(client, sid, name))
    assert await names_in(client, sid) == []


@pytest.mark.parametrize("name", INVISIBLE_ONLY, ids=escaped(INVISIBLE_ONLY))
async def test_invisible_only_names_are_refused(client: httpx.AsyncClient, name: str) -> None:
    """Pass: 422 validation_error on `body.name`, and nobody joined."""
    sid = await new_session(client)
    assert_refused(await join(client, sid, name))
    assert await names_in(client, sid) == []


@pytest.mark.parametrize("name", CONTROLS, ids=escaped(CONTROLS))
async def test_control_characters_are_refused(client: httpx.AsyncClient, name: str) -> None:
    """Pass: 422 validation_error on `body.name`, and nobody joined."""
    sid = await new_session(client)
    assert_refused(await join(client, sid, name))
    assert await names_in(client, sid) == []


async def test_unpaired_surrogate_is_refused(client: httpx.AsyncClient) -> None:
    """JSON can spell a lone surrogate (``\\ud800``), which no database or response can encode.
    Pass: 422 validation_error on `body.name`, and nobody joined."""
    sid = await new_session(client)
    r = await client.post(
        f"/v1/sessions/{sid}/participants",
        content=b'{"name": "Ada\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert_refused(r)
    assert await names_in(client, sid) == []


async def test_names_are_normalised_and_legitimate_invisibles_kept(client: httpx.AsyncClient) -> None:
    """NFC and trimming (any Unicode space); zero-width joiners inside a visible name are real spelling (emoji
    sequences, Persian) and stay. Pass: every name comes back exactly as listed, in the list too."""
    sid = await new_session(client)
    cases = {
        "  Ame\u0301lie  ": "Am\u00e9lie",  # decomposed -> composed, spaces trimmed
        "\u3000Ren\u00a0\u2003": "Ren",  # ideographic, no-break and em spaces trimmed
        "Lin\r\n": "Lin",  # a line break at the end is surrounding whitespace (a pasted line), trimmed too
        "\U0001f469\u200d\U0001f4bb Grace": "\U0001f469\u200d\U0001f4bb Grace",  # woman technologist (ZWJ)
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # ZWNJ
    }
    got = []
    for sent, expected in cases.items():
        r = await join(client, sid, sent)
        assert r.status_code == 201, r.text
        got.append(r.json()["name"])
        assert r.json()["name"] == expected
        assert unicodedata.is_normalized("NFC", r.json()["name"])
    assert await names_in(client, sid) == got


async def test_repeated_names_are_made_distinguishable(client: httpx.AsyncClient) -> None:
    """Duplicates compare as they look: after NFKC and case folding, without the characters drawn as nothing,
    with runs of spaces as one. So ``ADA``, fullwidth ``Ａda``, ``Ad<zero-width space>a`` and ``Ada<Hangul
    filler>`` are all copies of ``Ada``, and ``Grace  Hopper`` (two spaces) of ``Grace Hopper``. Pass: the names
    come back exactly as listed (each one's own spelling plus the first free number), in the join answers, the
    list and the session."""
    sid = await new_session(client)
    sent = ["Ada", "Ada", "ADA", "\uff21da", " ada ", "Ad\u200ba", "Ada (2)", "Bob", "Ada"]
    sent += ["Grace Hopper", "Grace  Hopper", "Ada\u3164"]
    expected = [
        "Ada",
        "Ada (2)",
        "ADA (3)",
        "\uff21da (4)",
        "ada (5)",
        "Ad\u200ba (6)",
        "Ada (2) (2)",
        "Bob",
        "Ada (7)",
        "Grace Hopper",
        "Grace  Hopper (2)",
        "Ada\u3164 (8)",
    ]
    got = []
    for name in sent:
        r = await join(client, sid, name)
        assert r.status_code == 201, r.text
        got.append(r.json()["name"])
    assert got == expected
    assert await names_in(client, sid) == expected
    session = (await client.get(f"/v1/sessions/{sid}")).json()
    assert [p["name"] for p in session["participants"]] == expected


async def test_the_number_never_pushes_a_name_past_the_limit(server_factory: ServerFactory) -> None:
    """Pass: with CODECONNECT_MAX_NAME_LENGTH=10, twelve joins as a 10-character name all succeed, each name is at
    most 10 characters, all twelve differ, and the name is trimmed (never cut to trailing spaces) to fit; with a
    limit of 4, which leaves no room for a name and a number, a repeat gets 409 `name_taken`."""
    server = await server_factory(max_name_length=10)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sid = await new_session(client)
        got = []
        for _ in range(12):
            r = await join(client, sid, "Ada Byron!")
            assert r.status_code == 201, r.text
            got.append(r.json()["name"])
        assert got[:3] == ["Ada Byron!", "Ada By (2)", "Ada By (3)"]
        assert got[9:] == ["Ada B (10)", "Ada B (11)", "Ada B (12)"]
        assert all(len(n) <= 10 for n in got), got
        assert len(set(got)) == 12
        # Cut where it leaves spaces at the end: they go, rather than show as "Ada    (2)".
        assert (await join(client, sid, "Ada   Lily")).json()["name"] == "Ada   Lily"
        assert (await join(client, sid, "Ada   Lily")).json()["name"] == "Ada (2)"
    # A limit with no room for a name and a number: the repeat is refused, never shown as the same name.
    tight = await server_factory(max_name_length=4)
    async with httpx.AsyncClient(base_url=tight.base_url, timeout=30) as client:
        sid = await new_session(client)
        assert (await join(client, sid, "Ada")).status_code == 201
        r = await join(client, sid, "ada")
        assert (r.status_code, r.json()["error"]) == (409, "name_taken"), r.text
        assert await names_in(client, sid) == ["Ada"]


async def test_simultaneous_joins_with_one_name_all_differ(server_factory: ServerFactory) -> None:
    """Twenty joins as "Ada" at once (the join locks the session row, so they are decided one after another).
    Pass: all 201, and the names are exactly Ada, Ada (2) ... Ada (20)."""
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        sid = await new_session(client)
        results = await asyncio.gather(*(join(client, sid, "Ada") for _ in range(20)))
        assert [r.status_code for r in results] == [201] * 20, [r.text for r in results if r.status_code != 201]
        expected = {"Ada", *(f"Ada ({n})" for n in range(2, 21))}
        assert {r.json()["name"] for r in results} == expected
        assert sorted(await names_in(client, sid)) == sorted(expected)
