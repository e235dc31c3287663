"""Java and C++ from the page when the deployment runs code on the server (bubblewrap sandbox)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.execution.conftest import SANDBOX_LIMITS, require_sandbox
from tests.execution.test_stop import marked_processes, sleeper
from tests.web.conftest import ThreadedServer, require_built_page, start_threaded_server
from tests.web.pages import join, run, run_cards, set_code, stream

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(120)]

JAVA = """import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        System.out.println("hello " + in.nextLine() + " from java");
    }
}
"""


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    require_sandbox()
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", **{**SANDBOX_LIMITS, "exec_wall_seconds": 15.0})


def test_java_and_cpp_run_on_the_server_and_are_shared(web_server: ThreadedServer, new_context: Any) -> None:
    languages = web_server.api("GET", "/v1/execute/languages")
    available = {entry["language"] for entry in languages["languages"] if entry["available"]}
    if not {"java", "cpp"} <= available:
        pytest.skip(f"toolchains missing on this machine: {languages}")
    session_id = web_server.create_session("Server languages")
    page = join(new_context(), web_server.base_url, session_id, "Compiler")
    watcher = join(new_context(), web_server.base_url, session_id, "Watcher")

    card = run(page, JAVA, language="java", stdin="Ada\n")
    assert stream(card, "stdout") == "hello Ada from java"
    assert card.locator(".run-lang").inner_text() == "Java · server"
    # The server adds the run to the shared output, as the participant who pressed Run.
    assert "Compiler" in card.locator(".run-who").inner_text()
    watcher.wait_for_selector(".run:not(.live) .stdout:has-text('hello Ada from java')")

    card = run(page, "int main() { return undeclared; }\n", language="cpp")
    assert card.locator(".run-status").inner_text().startswith("exit")
    assert "undeclared" in card.locator(".compile").inner_text()


def test_the_owner_can_turn_running_off_for_the_session(web_server: ThreadedServer, new_context: Any) -> None:
    import urllib.error
    import urllib.request

    created = web_server.api("POST", "/v1/sessions", {"title": "Locked", "language": "python"})
    session_id, owner_key = created["id"], created["ownerKey"]
    page = join(new_context(), web_server.base_url, session_id, "Candidate")
    page.wait_for_selector("#run:enabled")

    request = urllib.request.Request(
        f"{web_server.base_url}/v1/sessions/{session_id}/settings",
        data=b'{"executionEnabled": false}',
        method="PUT",
        headers={"Content-Type": "application/json", "X-Owner-Key": owner_key},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200
    # The page finds out at the latest when Run is pressed, and says why it does not run.
    page.click("#run")
    page.wait_for_selector("#run-note:has-text('owner turned off running code')")
    assert page.locator("#run").is_disabled()
    assert "No runs yet" in page.locator(".runs").inner_text()
    # The server enforces it for server runs whatever a page does.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            urllib.request.Request(
                f"{web_server.base_url}/v1/sessions/{session_id}/execute",
                data=b"{}",
                method="POST",
                headers={"Content-Type": "application/json"},
            ),
            timeout=15,
        )
    assert refused.value.code == 403
    assert json.load(refused.value)["error"] == "execution_disabled_for_session"


# The run's own wall clock in the Stop test: short, so waiting until it would have passed stays quick.
STOP_WALL_SECONDS = 4.0


@pytest.fixture
def short_run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    require_sandbox()
    require_built_page()
    db = tmp_path_factory.mktemp("stop-db") / "codeconnect.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db}", **{**SANDBOX_LIMITS, "exec_wall_seconds": STOP_WALL_SECONDS}
    )
    server = start_threaded_server(settings)
    yield server
    server.stop()


def _wait(condition: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("stop_request", ["delivered", "lost"])
def test_stop_ends_a_server_run_at_once_and_only_once(
    short_run_server: ThreadedServer, new_context: Any, stop_request: str
) -> None:
    """Stop kills the run's sandbox; everyone sees one card, "stopped". When the stop request itself cannot get
    through, the page drops the run's request after a grace period, and that stops the run too."""
    languages = short_run_server.api("GET", "/v1/execute/languages")
    if not any(e["language"] == "cpp" and e["available"] for e in languages["languages"]):
        pytest.skip(f"C++ toolchain missing on this machine: {languages}")
    session_id = short_run_server.create_session("Stop me", language="cpp")
    page = join(new_context(), short_run_server.base_url, session_id, "Runner")
    if stop_request == "lost":
        page.route("**/runs/*/stop", lambda route: route.abort())
    watcher = join(new_context(), short_run_server.base_url, session_id, "Watcher")
    marker = "stop" + secrets.token_hex(4)
    set_code(page, sleeper("cpp", marker))
    page.wait_for_selector("#run:enabled")
    page.click("#run")
    _wait(lambda: bool(marked_processes(marker)), 30, "the program started on the server")
    program_started = time.monotonic()

    page.click("#stop")
    stopped_at = time.monotonic()
    # At once; through the dropped request, after the page's grace period (3 s) for the stop to be answered.
    within = 3.0 if stop_request == "delivered" else 6.0
    page.wait_for_selector(".runs .run:not(.live) .run-status:has-text('stopped')", timeout=within * 1000)
    shown_after = time.monotonic() - stopped_at
    # The sandbox is gone by then, not when its wall clock runs out.
    _wait(lambda: not marked_processes(marker), 1.5, "the sandbox was killed")
    assert shown_after < within, shown_after
    card = run_cards(page).last
    assert card.locator(".run-lang").inner_text() == "C++ · server"
    assert "Runner" in card.locator(".run-who").inner_text()
    watcher.wait_for_selector(".runs .run:not(.live) .run-status:has-text('stopped')")

    # Until the run's own time limit would have ended it, and a margin: still that one card, everywhere.
    while time.monotonic() < program_started + STOP_WALL_SECONDS + 3:
        for p in (page, watcher):
            statuses = p.locator(".runs .run:not(.live) .run-status").all_inner_texts()
            assert statuses == ["stopped"], statuses
        time.sleep(0.25)
    assert page.locator(".runs .run.live").count() == 0


CPP_TICKS = (
    "#include <cstdio>\n#include <unistd.h>\n"
    "int main() {\n"
    '  for (int i = 1; i <= 6; i++) { std::printf("tick %d\\n", i); std::fflush(stdout); usleep(400000); }\n'
    "}\n"
)


def test_the_others_see_a_server_runs_output_while_it_runs(web_server: ThreadedServer, new_context: Any) -> None:
    """Before: a Java/C++ card said "Running on the server…" until the end. Pass: the output streams from the
    sandbox to the runner's page and from there to everyone's live card; the final card replaces it."""
    from tests.web.test_live_output import live_text_once, wait_final

    languages = web_server.api("GET", "/v1/execute/languages")
    if not any(e["language"] == "cpp" and e["available"] for e in languages["languages"]):
        pytest.skip(f"C++ toolchain missing on this machine: {languages}")
    session_id = web_server.create_session("Ticks", language="cpp")
    page = join(new_context(), web_server.base_url, session_id, "Runner")
    watcher = join(new_context(), web_server.base_url, session_id, "Watcher")
    set_code(page, CPP_TICKS)
    page.wait_for_selector("#run:enabled")
    page.click("#run")
    run_id, partial = live_text_once(watcher, "tick 2")
    # Six lines 0.4 s apart: the second without the last means the program was still running.
    assert "tick 6" not in partial, partial
    for p in (watcher, page):
        card = wait_final(p, run_id)
        assert stream(card, "stdout") == "\n".join(f"tick {i}" for i in range(1, 7))
