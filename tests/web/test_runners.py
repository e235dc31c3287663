"""Running code from the page: Pyodide, QuickJS, TypeScript; Stop, the time limit, and the shared output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, open_context, start_threaded_server, watch_for_page_errors
from tests.web.pages import join, last_run, last_run_id, run, run_cards, set_code, stream, wait_new_run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LIMIT_SECONDS = 3.0


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    # A short limit keeps the time-limit tests quick; the default is 10 s.
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", run_time_limit_seconds=LIMIT_SECONDS)


@pytest.fixture(scope="module")
def pad(web_server: ThreadedServer, browser: Any) -> Any:
    """One person in one session for the whole module: runtimes load once, as they would for a real user."""
    context = open_context(browser)
    context.set_default_timeout(30_000)
    errors = watch_for_page_errors(context)
    page = join(context, web_server.base_url, web_server.create_session("Runners"), "Runner")
    yield page
    context.close()
    assert not errors, errors


def stop_soon(page: Any, program: str, *, language: str) -> Any:
    if page.input_value("#language") != language:
        page.select_option("#language", language)
    set_code(page, program)
    before = last_run_id(page)
    page.click("#run")
    page.wait_for_selector(".run.live .run-status:has-text('Running')", timeout=90_000)
    page.click("#stop")
    return wait_new_run(page, before, timeout=30_000)


def test_python_runs_and_everyone_sees_the_output(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Shared output")
    runner = join(new_context(), web_server.base_url, session_id, "Runner")
    watcher = join(new_context(), web_server.base_url, session_id, "Watcher")
    set_code(runner, "import sys\nprint('hello from pyodide', sys.version_info[0])\n")
    runner.keyboard.press("ControlOrMeta+Enter")
    for page in (runner, watcher):
        page.wait_for_selector(".run:not(.live) .stdout:has-text('hello from pyodide 3')", timeout=90_000)
        card = last_run(page)
        assert card.locator(".run-who").inner_text() == "Runner"
        assert card.locator(".run-status").inner_text() == "exit 0"


def test_python_input_reads_the_stdin_box(pad: Any) -> None:
    program = "name = input()\nage = int(input())\nprint(f'{name} is {age}')\n"
    card = run(pad, program, language="python", stdin="Ada\n36\n")
    assert stream(card, "stdout") == "Ada is 36"
    card = run(pad, "input()\n", stdin="")
    assert "EOFError" in stream(card, "stderr")
    assert card.locator(".run-status").inner_text() == "exit 1"


def test_python_errors_and_exit_codes(pad: Any) -> None:
    card = run(pad, "def f():\n    1 / 0\nf()\n", language="python")
    stderr = stream(card, "stderr")
    assert "ZeroDivisionError" in stderr and 'File "main.py", line 2' in stderr
    assert "_ccl_run" not in stderr
    card = run(pad, "import sys\nsys.exit(3)\n")
    assert card.locator(".run-status").inner_text() == "exit 3"


def test_python_infinite_loop_is_stopped_by_stop_then_page_still_works(pad: Any) -> None:
    card = stop_soon(pad, "while True:\n    pass\n", language="python")
    assert card.locator(".run-status").inner_text() == "stopped"
    assert "KeyboardInterrupt" in stream(card, "stderr")
    card = run(pad, "print('still alive')\n")
    assert stream(card, "stdout") == "still alive"


def test_python_infinite_loop_is_stopped_by_the_time_limit(pad: Any) -> None:
    card = run(pad, "print('start', flush=True)\nwhile True:\n    pass\n", language="python")
    assert card.locator(".run-status").inner_text().startswith("time limit · ")
    assert stream(card, "stdout") == "start"
    assert "Time limit reached" in stream(card, "stderr")
    assert stream(run(pad, "print(6 * 7)\n"), "stdout") == "42"


def test_python_loop_that_ignores_interrupts_is_terminated(pad: Any) -> None:
    # Catching KeyboardInterrupt keeps the program alive: the worker is then terminated and replaced.
    program = (
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    card = stop_soon(pad, program, language="python")
    # Stop is Stop, however hard the program made it.
    assert card.locator(".run-status").inner_text() == "stopped"
    assert "terminated" in stream(card, "stderr")
    assert stream(run(pad, "print('fresh worker')\n"), "stdout") == "fresh worker"


def test_javascript_runs_in_quickjs(pad: Any) -> None:
    program = (
        "const xs = [3, 1, 2].sort();\nconsole.log('sorted', xs, { ok: true });\n"
        "console.error('to stderr');\nPromise.resolve(5).then((v) => console.log('async', v));\n"
        "console.log(readline(), readline());\n"
    )
    card = run(pad, program, language="javascript", stdin="a\nb\n")
    assert stream(card, "stdout") == "sorted [ 1, 2, 3 ] { ok: true }\na b\nasync 5"
    assert stream(card, "stderr") == "to stderr"
    card = run(pad, "function f() { throw new TypeError('bad'); }\nf();\n")
    assert stream(card, "stderr").startswith("TypeError: bad")
    assert card.locator(".run-status").inner_text() == "exit 1"


def test_javascript_top_level_await(pad: Any) -> None:
    program = "const v = await Promise.resolve(41);\nconsole.log(v + 1);\n"
    assert stream(run(pad, program, language="javascript"), "stdout") == "42"
    card = run(pad, "await null;\nthrow new Error('late');\n")
    assert stream(card, "stderr").startswith("Error: late")
    assert card.locator(".run-status").inner_text() == "exit 1"
    card = run(pad, "function f() { await 1; }\n")
    assert stream(card, "stderr").startswith("SyntaxError")


def test_javascript_infinite_loop_is_stopped_by_stop_and_by_the_time_limit(pad: Any) -> None:
    card = stop_soon(pad, "for (;;) {}\n", language="javascript")
    assert card.locator(".run-status").inner_text() == "stopped"
    card = run(pad, "console.log('before');\nwhile (true) {}\n", language="javascript")
    assert card.locator(".run-status").inner_text().startswith("time limit · ")
    assert stream(card, "stdout") == "before"
    assert stream(run(pad, "console.log(1 + 1);\n"), "stdout") == "2"


def test_javascript_deep_recursion_fails_cleanly(pad: Any) -> None:
    card = run(pad, "function down(n) { return down(n + 1) + 1; }\ndown(0);\n", language="javascript")
    assert "RangeError" in stream(card, "stderr")
    assert stream(run(pad, "console.log('ok');\n"), "stdout") == "ok"


def test_javascript_memory_hog_ends_and_the_page_recovers(pad: Any) -> None:
    program = "const hoard = [];\nfor (;;) hoard.push(new Array(100000).fill(hoard.length));\n"
    card = run(pad, program, language="javascript")
    # QuickJS's allocator refuses past its limit, or the time limit ends it: either way the run is over.
    assert card.get_attribute("data-outcome") in {"error", "time_limit", "crashed"}
    assert stream(run(pad, "console.log('recovered');\n"), "stdout") == "recovered"


def test_typescript_runs_and_shows_syntax_errors(pad: Any) -> None:
    program = (
        "interface Point { x: number; y: number }\n"
        "const norm = (p: Point): number => Math.hypot(p.x, p.y);\n"
        "console.log(norm({ x: 3, y: 4 }));\n"
    )
    card = run(pad, program, language="typescript")
    assert stream(card, "stdout") == "5"
    card = run(pad, "const x: number = ;\n")
    assert card.locator(".run-status").inner_text() == "exit 1"
    assert "SyntaxError" in stream(card, "stderr")
    assert "main.ts" in stream(card, "stderr")


def test_output_is_capped(pad: Any) -> None:
    card = run(pad, "while True:\n    print('x' * 1000)\n", language="python")
    assert "Output limit reached" in stream(card, "stderr")
    assert len(stream(card, "stdout")) <= 64 * 1024
    assert card.locator(".note").inner_text() == "Output was cut at 64 KB."


def test_shared_output_keeps_the_last_twenty_runs(pad: Any) -> None:
    for i in range(22):
        run(pad, f"console.log('run {i}');\n", language="javascript")
    assert run_cards(pad).count() == 20
    assert stream(run_cards(pad).first, "stdout") == "run 2"
    assert stream(last_run(pad), "stdout") == "run 21"


def test_java_and_cpp_say_plainly_they_do_not_run_here(pad: Any) -> None:
    for language, label in (("java", "Java"), ("cpp", "C++")):
        pad.select_option("#language", language)
        pad.wait_for_selector(f".cm-editor[data-language={language}]")
        assert pad.is_disabled("#run")
        note = pad.inner_text("#run-note")
        assert f"does not run {label}" in note
    pad.select_option("#language", "python")
    assert pad.is_enabled("#run")


# --- How runs behave as people write them: timers, async, ordered output, one vocabulary of outcomes -----------


def outcome(card: Any) -> str | None:
    value: str | None = card.get_attribute("data-outcome")
    return value


def status(card: Any) -> str:
    text: str = card.locator(".run-status").inner_text()
    return text


def body(card: Any) -> str:
    """Everything a run card shows under its header, in the order shown."""
    text: str = card.locator(".run-body").inner_text()
    return text.strip()


def test_javascript_timers_fire_in_order_after_microtasks(pad: Any) -> None:
    program = (
        "setTimeout(() => console.log('c'), 30);\n"
        "setTimeout(() => console.log('a'), 0);\n"
        "setTimeout((word) => console.log(word), 10, 'b');\n"
        "Promise.resolve().then(() => console.log('micro'));\n"
        "queueMicrotask(() => console.log('queued'));\n"
        "console.log('sync');\n"
    )
    card = run(pad, program, language="javascript")
    assert stream(card, "stdout") == "sync\nmicro\nqueued\na\nb\nc", stream(card, "stderr")
    assert status(card) == "exit 0"


def test_javascript_event_loop_order_matches_node(pad: Any) -> None:
    # The classic interview question: the answer depends on how many microtask turns an await takes.
    program = (
        "async function async1() { console.log('async1 start'); await async2(); console.log('async1 end'); }\n"
        "async function async2() { console.log('async2'); }\n"
        "console.log('script start');\n"
        "setTimeout(() => console.log('setTimeout'), 0);\n"
        "async1();\n"
        "new Promise((resolve) => { console.log('promise1'); resolve(); }).then(() => console.log('promise2'));\n"
        "console.log('script end');\n"
    )
    card = run(pad, program, language="javascript")
    assert stream(card, "stdout").split("\n") == [
        "script start", "async1 start", "async2", "promise1", "script end", "async1 end", "promise2", "setTimeout",
    ], stream(card, "stderr")  # fmt: skip


def test_javascript_set_interval_runs_until_cleared(pad: Any) -> None:
    program = (
        "let n = 0;\n"
        "const id = setInterval(() => { n += 1; console.log('tick', n); if (n === 3) clearInterval(id); }, 10);\n"
        "const never = setTimeout(() => console.log('never'), 20);\n"
        "clearTimeout(never);\n"
    )
    card = run(pad, program, language="javascript")
    assert stream(card, "stdout") == "tick 1\ntick 2\ntick 3", stream(card, "stderr")
    assert status(card) == "exit 0"


def test_a_program_lasts_until_its_last_timer(pad: Any) -> None:
    program = (
        "const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));\n"
        "async function main() {\n  console.log('first');\n  await sleep(300);\n  console.log('last');\n}\n"
        "main();\n"
    )
    card = run(pad, program, language="javascript")
    assert stream(card, "stdout") == "first\nlast", stream(card, "stderr")
    assert status(card) == "exit 0"
    typed = (
        "const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));\n"
        "console.log('first');\nawait sleep(300);\nconsole.log('last');\n"
    )
    card = run(pad, typed, language="typescript")
    assert stream(card, "stdout") == "first\nlast", stream(card, "stderr")
    assert status(card) == "exit 0"


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("async function main() {\n  console.log('start');\n  throw new Error('boom');\n}\nmain();\n",
         "Error: boom\n    at main (main.js:3:"),
        ("Promise.reject(new Error('nobody listens'));\n", "nobody listens"),
        ("new Promise((resolve, reject) => reject(new TypeError('bad input')));\n", "bad input"),
        ("Promise.resolve(1).then(() => { throw new RangeError('in then'); });\n", "in then"),
        ("setTimeout(async () => { throw new Error('in a timer'); }, 10);\n", "in a timer"),
        ("const main = async () => { await null; throw new Error('after await'); };\nmain();\nconsole.log('go');\n",
         "after await"),
    ],
)
def test_javascript_unhandled_rejection_is_an_error(pad: Any, program: str, message: str) -> None:
    card = run(pad, program, language="javascript")
    stderr = stream(card, "stderr")
    assert message in stderr, body(card)
    assert status(card) == "exit 1"
    # The trace is the program's own: no frames of the runner's event loop or promise tracking.
    assert "prelude.js" not in stderr and "__ccl" not in stderr, stderr


def test_javascript_handled_rejections_are_not_errors(pad: Any) -> None:
    program = (
        "async function fail() { await null; throw new Error('expected'); }\n"
        "fail().catch((e) => console.log('caught', e.message));\n"
        "(async () => { try { await fail(); } catch (e) { console.log('awaited', e.message); } })();\n"
        "Promise.allSettled([fail()]).then(([r]) => console.log(r.status));\n"
        "const later = Promise.reject(new Error('handled in the same turn'));\n"
        "later.catch(() => console.log('late handler'));\n"
    )
    card = run(pad, program, language="javascript")
    assert stream(card, "stderr") == ""
    assert sorted(stream(card, "stdout").split("\n")) == [
        "awaited expected", "caught expected", "late handler", "rejected",
    ]  # fmt: skip
    assert status(card) == "exit 0"


def test_python_asyncio_run_and_top_level_await(pad: Any) -> None:
    program = (
        "import asyncio\n\n"
        "async def work(n):\n    await asyncio.sleep(0.05 * n)\n    return n * 10\n\n"
        "async def main():\n    print('start')\n    print(await asyncio.gather(work(2), work(1)))\n\n"
        "asyncio.run(main())\n"
    )
    card = run(pad, program, language="python")
    assert stream(card, "stdout") == "start\n[20, 10]", body(card)
    assert status(card) == "exit 0"
    card = run(pad, "import asyncio\nvalue = await asyncio.sleep(0.05, 'awaited')\nprint(value)\n")
    assert stream(card, "stdout") == "awaited", body(card)
    assert status(card) == "exit 0"


def test_python_traceback_shows_the_source_lines(pad: Any) -> None:
    card = run(pad, "def divide(a, b):\n    return a / b\n\nprint(divide(1, 0))\n", language="python")
    stderr = stream(card, "stderr")
    assert 'File "main.py", line 2, in divide' in stderr
    assert "return a / b" in stderr and "print(divide(1, 0))" in stderr
    program = "import asyncio\n\nasync def main():\n    raise ValueError('from a coroutine')\n\nasyncio.run(main())\n"
    stderr = stream(run(pad, program), "stderr")
    assert "raise ValueError('from a coroutine')" in stderr and "ValueError: from a coroutine" in stderr


def test_stdout_and_stderr_keep_their_order(pad: Any, new_context: Any) -> None:
    python = (
        "import sys\nprint('out 1')\nprint('err 1', file=sys.stderr)\n"
        "print('out 2')\nprint('err 2', file=sys.stderr)\n"
    )
    card = run(pad, python, language="python")
    assert body(card) == "out 1\nerr 1\nout 2\nerr 2"
    js = "console.log('out 1');\nconsole.error('err 1');\nconsole.log('out 2');\nconsole.warn('err 2');\n"
    card = run(pad, js, language="javascript")
    assert body(card) == "out 1\nerr 1\nout 2\nerr 2"
    assert stream(card, "stdout") == "out 1\nout 2" and stream(card, "stderr") == "err 1\nerr 2"
    # The order is in the shared record: someone joining later sees the same.
    session_id = pad.url.rsplit("/", 1)[-1].split("?")[0]
    watcher = join(new_context(), pad.url.split("/s/")[0], session_id, "Watcher")
    watcher.wait_for_selector(f".run[data-run-id='{card.get_attribute('data-run-id')}']")
    assert body(watcher.locator(f".run[data-run-id='{card.get_attribute('data-run-id')}']")) == body(card)


def test_outcomes_name_how_each_run_ended(pad: Any) -> None:
    card = run(pad, "print('fine')\n", language="python")
    assert (outcome(card), status(card)) == ("ok", "exit 0")
    card = run(pad, "raise SystemExit(4)\n")
    assert (outcome(card), status(card)) == ("error", "exit 4")
    card = stop_soon(pad, "while True:\n    pass\n", language="python")
    assert (outcome(card), status(card)) == ("stopped", "stopped")
    card = run(pad, "while True:\n    pass\n")
    assert outcome(card) == "time_limit" and status(card).startswith("time limit · "), status(card)
    card = run(pad, "while True:\n    print('x' * 1000)\n")
    assert (outcome(card), status(card)) == ("output_limit", "output limit")
    card = run(pad, "while (true) console.log('y'.repeat(1000));\n", language="javascript")
    assert (outcome(card), status(card)) == ("output_limit", "output limit")
    card = stop_soon(pad, "setInterval(() => {}, 5);\n", language="javascript")
    assert (outcome(card), status(card)) == ("stopped", "stopped")
    card = run(pad, "setInterval(() => {}, 5);\n", language="javascript")
    assert outcome(card) == "time_limit", body(card)
    card = run(pad, "const spin = () => Promise.resolve().then(spin);\nspin();\n", language="javascript")
    assert outcome(card) == "time_limit" and "Interrupted" in stream(card, "stderr"), body(card)


def test_python_async_programs_stop_and_the_runner_recovers(pad: Any) -> None:
    program = (
        "import asyncio\n\nasync def main():\n    while True:\n        await asyncio.sleep(0.01)\n\n"
        "asyncio.run(main())\n"
    )
    card = stop_soon(pad, program, language="python")
    assert outcome(card) == "stopped", body(card)
    assert stream(run(pad, "print('after stop')\n"), "stdout") == "after stop"
    card = run(pad, "import time\nprint('napping', flush=True)\ntime.sleep(60)\n")
    assert outcome(card) == "time_limit" and stream(card, "stdout") == "napping", body(card)
    assert stream(run(pad, "import asyncio\nawait asyncio.sleep(0)\nprint('after limit')\n"), "stdout") == "after limit"


@pytest.mark.parametrize("preload", [True, False])
def test_an_editors_page_loads_its_runner_before_the_first_run_unless_the_server_says_not_to(
    tmp_path: Path, new_context: Any, preload: bool
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'preload.db'}", web_preload_runners=preload)
    server = start_threaded_server(settings)
    try:
        context = new_context()
        loads: list[str] = []
        context.on("request", lambda request: loads.append(request.url) if "pyodide.mjs" in request.url else None)
        page = join(context, server.base_url, server.create_session("Preload"), "Ada")
        if preload:
            # No Run pressed: the page loads Pyodide once it is idle.
            if not loads:
                page.wait_for_event("request", lambda request: "pyodide.mjs" in request.url, timeout=60_000)
            assert loads
        else:
            # Twice past the page's own idle point, where a preload would have started; then Run loads it.
            for _ in range(2):
                page.evaluate("new Promise((r) => requestIdleCallback(() => r(null), { timeout: 3000 }))")
            assert loads == []
            card = run(page, "print('loaded on demand')")
            assert "loaded on demand" in card.locator(".stdout").inner_text()
            assert len(loads) >= 1
    finally:
        server.stop()
