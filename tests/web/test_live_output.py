"""Two people, one session: the output of a run in progress reaches the other page as it is produced (through
presence, never the document), bounded in rate and size; the final card replaces the live one; every card shows
the input its run read, collapsed; Clear removes the cards for everyone, unless the owner turned clearing off."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer, open_context, watch_for_page_errors
from tests.web.pages import join, last_run_id, run, run_cards, set_code, stream, wait_connected, wait_new_run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# The page's bounds (web/src/liveRuns.ts): 16 KiB/s of new output, 64 KiB per run.
LIVE_BYTES_PER_SECOND = 16 * 1024
LIVE_MAX = 64 * 1024

# Counts the awareness messages (y-websocket type 1) the page receives, before the page opens its connection.
COUNT_AWARENESS = """
window.__awarenessBytes = 0;
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      if (event.data instanceof ArrayBuffer && new Uint8Array(event.data)[0] === 1) {
        window.__awarenessBytes += event.data.byteLength;
      }
    });
  }
};
"""

# What the watching page saw: every live card (by run id), the longest live text, and the longest pause of its
# main thread (a page flooded with output stops answering).
WATCH_LIVE = """() => {
  window.__live = { seen: {}, longest: 0, gap: 0, last: performance.now() };
  const look = () => {
    for (const card of document.querySelectorAll('.run.live.remote')) {
      const text = card.querySelector('pre')?.textContent ?? '';
      window.__live.seen[card.dataset.runId] = Math.max(window.__live.seen[card.dataset.runId] ?? 0, text.length);
      window.__live.longest = Math.max(window.__live.longest, text.length);
    }
  };
  const what = { childList: true, subtree: true, characterData: true };
  new MutationObserver(look).observe(document.querySelector('#runs'), what);
  setInterval(() => {
    const now = performance.now();
    window.__live.gap = Math.max(window.__live.gap, now - window.__live.last);
    window.__live.last = now;
  }, 20);
}"""


def http(server: ThreadedServer, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.base_url + path, data=data, method=method, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture(scope="module")
def pair(web_server: ThreadedServer, browser: Any) -> Any:
    """Ada runs, Bob watches, in one session for the whole module (runtimes load once, as for real people)."""
    status, session = http(web_server, "POST", "/v1/sessions", {"title": "Live output", "language": "python"})
    assert status == 201
    contexts, errors = [], []
    pages = []
    for name in ("Ada", "Bob"):
        context = open_context(browser, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        if name == "Bob":
            context.add_init_script(COUNT_AWARENESS)
        errors.append(watch_for_page_errors(context))
        contexts.append(context)
        pages.append(join(context, web_server.base_url, session["id"], name))
    pages[1].evaluate(WATCH_LIVE)
    yield pages[0], pages[1], session
    for context in contexts:
        context.close()
    assert not any(errors), errors


def start(page: Any, program: str, *, language: str, stdin: str = "") -> None:
    if page.input_value("#language") != language:
        page.select_option("#language", language)
        page.wait_for_selector(f".cm-editor[data-language={language}]")
    set_code(page, program)
    page.fill("#stdin", stdin)
    page.wait_for_selector("#run:enabled", timeout=90_000)
    page.click("#run")


def live_text_once(page: Any, must_have: str) -> tuple[str, str]:
    """Wait until a live card of someone else's run shows ``must_have`` while that run has no final card yet."""
    handle = page.wait_for_function(
        """(needle) => {
          for (const card of document.querySelectorAll('.run.live.remote')) {
            const id = card.dataset.runId;
            if (card.textContent.includes(needle) && !document.querySelector(`.run:not(.live)[data-run-id="${id}"]`)) {
              return [id, card.querySelector('pre').textContent];
            }
          }
          return false;
        }""",
        arg=must_have,
        timeout=90_000,
    )
    run_id, text = handle.json_value()
    return run_id, text


def wait_final(page: Any, run_id: str) -> Any:
    """The final card of ``run_id``, once it has replaced the live one."""
    page.wait_for_selector(f'.run:not(.live)[data-run-id="{run_id}"]', timeout=90_000)
    page.wait_for_function(f"() => !document.querySelector('.run.live[data-run-id=\"{run_id}\"]')")
    return page.locator(f'.run:not(.live)[data-run-id="{run_id}"]')


@pytest.mark.parametrize(
    ("language", "program", "word"),
    [
        (
            "python",
            "import time\nfor i in range(1, 7):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n",
            "tick",
        ),
        (
            "javascript",
            "let i = 0;\nfunction tick() {\n  i += 1;\n  console.log('tock ' + i);\n"
            "  if (i < 6) setTimeout(tick, 500);\n}\ntick();\n",
            "tock",
        ),
    ],
    ids=["python-sleep", "javascript-settimeout"],
)
def test_the_other_person_sees_output_while_the_run_is_in_progress(
    pair: Any, language: str, program: str, word: str
) -> None:
    ada, bob, _ = pair
    start(ada, program, language=language)
    run_id, partial = live_text_once(bob, f"{word} 2")
    # Six lines half a second apart: seeing the second without the last means the run was still going.
    assert f"{word} 2" in partial and f"{word} 6" not in partial
    for page in (bob, ada):
        card = wait_final(page, run_id)
        assert stream(card, "stdout") == "\n".join(f"{word} {i}" for i in range(1, 7))
        assert card.get_attribute("data-outcome") == "ok"
    # Live output is ephemeral: what the document holds is the final card only.
    assert bob.locator(".run.live").count() == 0


def test_a_print_flood_stays_bounded_on_the_other_page(pair: Any) -> None:
    ada, bob, _ = pair
    bob.evaluate(
        "() => { window.__awarenessBytes = 0; window.__live.gap = 0; window.__live.last = performance.now(); }"
    )
    before = last_run_id(bob)
    started = time.monotonic()
    start(ada, 'while True:\n    print("x" * 1000)\n', language="python")
    card = wait_new_run(bob, before)
    elapsed = time.monotonic() - started
    run_id = card.get_attribute("data-run-id")
    assert card.get_attribute("data-outcome") == "output_limit"
    seen = bob.evaluate("() => window.__live")
    assert run_id in seen["seen"], "Bob never saw the flood's live card"
    assert seen["longest"] <= LIVE_MAX
    # Presence carried at most the rate (plus each state's small fixed part), not the flood.
    awareness = bob.evaluate("() => window.__awarenessBytes")
    assert awareness <= (elapsed + 1) * (LIVE_BYTES_PER_SECOND + 4 * 1024), (awareness, elapsed)
    assert seen["gap"] < 2000, seen  # Bob's page kept answering
    wait_final(bob, run_id)


def test_a_steady_stream_is_published_at_the_rate_and_capped(pair: Any) -> None:
    ada, bob, _ = pair
    bob.evaluate(
        "() => { window.__awarenessBytes = 0; window.__live.gap = 0; window.__live.last = performance.now(); }"
    )
    program = (
        "import sys, time\n"
        "for i in range(400):\n"
        "    print(str(i).rjust(499, 'x'), file=sys.stderr if i % 2 else sys.stdout, flush=True)\n"
        "    time.sleep(0.01)\n"
    )
    before = last_run_id(bob)
    started = time.monotonic()
    start(ada, program, language="python")
    run_id, _ = live_text_once(bob, "xxxx")
    card = wait_new_run(bob, before)
    elapsed = time.monotonic() - started
    assert card.get_attribute("data-run-id") == run_id
    seen = bob.evaluate("() => window.__live")
    assert 0 < seen["seen"][run_id] <= LIVE_MAX
    awareness = bob.evaluate("() => window.__awarenessBytes")
    assert awareness <= (elapsed + 1) * (LIVE_BYTES_PER_SECOND + 4 * 1024), (awareness, elapsed)
    # The final card has all of it: the live view was a bounded preview.
    assert len(stream(card, "stdout")) + len(stream(card, "stderr")) > seen["seen"][run_id]


def test_the_input_is_on_the_card_collapsed_for_everyone(pair: Any) -> None:
    ada, bob, _ = pair
    card = run(
        ada, "first = input()\nsecond = input()\nprint(first, second)\n", language="python", stdin="Ada\nLovelace\n"
    )
    run_id = card.get_attribute("data-run-id")
    for page in (ada, bob):
        card = wait_final(page, run_id)
        assert stream(card, "stdout") == "Ada Lovelace"
        details = card.locator("details.run-input")
        assert details.count() == 1
        assert details.evaluate("(el) => el.open") is False  # collapsed
        assert details.locator("summary").inner_text() == "Input · 2 lines"
        assert details.locator("pre").text_content() == "Ada\nLovelace\n"
        assert not details.locator("pre").is_visible()
        details.locator("summary").click()
        assert details.locator("pre").is_visible()


def test_clear_removes_the_cards_for_everyone(pair: Any) -> None:
    ada, bob, _ = pair
    if run_cards(ada).count() == 0:
        run(ada, "print('something to clear')\n", language="python")
    bob.wait_for_function("() => document.querySelectorAll('.runs .run:not(.live)').length > 0")
    assert bob.locator("#clear-output").is_visible()
    ada.click("#clear-output")
    for page in (ada, bob):
        page.wait_for_function("() => document.querySelectorAll('.runs .run').length === 0")
        page.wait_for_selector(".runs-empty")


def test_with_clearing_turned_off_clear_is_absent_and_refused(web_server: ThreadedServer, new_context: Any) -> None:
    status, session = http(web_server, "POST", "/v1/sessions", {"title": "No clearing", "language": "python"})
    sid = session["id"]
    status, _ = http(
        web_server,
        "PUT",
        f"/v1/sessions/{sid}/settings",
        {"allowClearOutput": False},
        **{"X-Owner-Key": session["ownerKey"]},
    )
    assert status == 200
    ada = join(new_context(), web_server.base_url, sid, "Ada")
    run(ada, "print('kept')\n")
    assert ada.locator("#clear-output").is_hidden()
    status, participant = http(web_server, "POST", f"/v1/sessions/{sid}/participants", {"name": "Mallory"})
    status, body = http(
        web_server, "DELETE", f"/v1/sessions/{sid}/runs", **{"X-Participant-Token": participant["token"]}
    )
    assert (status, body["error"]) == (403, "clear_output_disabled")
    assert run_cards(ada).count() == 1

    # Back on: the page offers Clear again once it reads the settings (on load).
    http(
        web_server,
        "PUT",
        f"/v1/sessions/{sid}/settings",
        {"allowClearOutput": True},
        **{"X-Owner-Key": session["ownerKey"]},
    )
    ada.reload()
    wait_connected(ada)
    ada.wait_for_selector("#clear-output:visible")
    viewer = join(new_context(), web_server.base_url, sid, "Vic", view=True)
    viewer.wait_for_selector(".runs .run:not(.live)")
    assert viewer.locator("#clear-output").is_hidden()
