"""Java and C++ from the page when the deployment runs code on the server (bubblewrap sandbox)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.execution.conftest import SANDBOX_LIMITS, require_sandbox
from tests.web.conftest import ThreadedServer
from tests.web.pages import join, run, stream

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
