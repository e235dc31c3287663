"""`CODECONNECT_EXECUTION=sandbox` refuses to start when bwrap is missing or the self-test fails."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeconnect.__main__ import main
from codeconnect.app import create_app
from codeconnect.config import Settings
from codeconnect.execution.sandbox import Outcome, Sandbox, SandboxUnavailable
from codeconnect.execution.service import ExecutionService, check_sandbox
from codeconnect.execution.toolchains import Plan, Toolchains
from tests.execution.conftest import SANDBOX_LIMITS, require_language, require_sandbox, run


async def test_missing_bwrap_is_reported() -> None:
    with pytest.raises(SandboxUnavailable, match="is not installed"):
        await check_sandbox(Settings(execution="sandbox", exec_bwrap_path="/nonexistent/bwrap"))


async def test_broken_sandbox_fails_the_self_test(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho pretending\nexit 0\n")
    fake.chmod(0o755)
    tmp_path.chmod(tmp_path.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    with pytest.raises(SandboxUnavailable):
        await check_sandbox(Settings(execution="sandbox", exec_bwrap_path=str(fake)))


async def test_real_sandbox_passes_the_self_test() -> None:
    require_sandbox()
    await check_sandbox(Settings(execution="sandbox"))


async def test_app_refuses_to_start(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, execution="sandbox", exec_bwrap_path="/nonexistent/bwrap"))
    with pytest.raises(RuntimeError, match="sandbox is unusable"):
        async with app.router.lifespan_context(app):
            pass


def test_serve_refuses_to_start(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    monkeypatch.setenv("CODECONNECT_EXECUTION", "sandbox")
    monkeypatch.setenv("CODECONNECT_EXEC_BWRAP_PATH", "/nonexistent/bwrap")
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", sqlite_url)
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err
    assert "/nonexistent/bwrap" in err


# --- Every language, whatever the permissions of the checkout ----------------------------------------------

TS_SOURCE = Path(__file__).resolve().parents[2] / "src/codeconnect/execution/ts"
PROGRAMS = {
    "python": "print(6 * 7)\n",
    "javascript": "console.log(6 * 7);\n",
    "typescript": "const n: number = 6 * 7;\nconsole.log(n);\n",
    "java": "public class Main { public static void main(String[] a) { System.out.println(6 * 7); } }\n",
    "cpp": "#include <cstdio>\nint main() { std::printf(\"%d\\n\", 6 * 7); }\n",
}


def private_folder() -> Path:
    """A folder only its owner can enter (0700), as `mktemp -d` or a home directory is."""
    folder = Path(tempfile.mkdtemp(prefix="codeconnect-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    return folder


@pytest.mark.sandbox
async def test_typescript_runs_when_its_folder_is_private() -> None:
    require_sandbox()
    require_language("typescript")
    folder = private_folder()
    try:
        shutil.copytree(TS_SOURCE, folder / "ts", symlinks=True)
        service = ExecutionService(Settings(execution="sandbox", exec_typescript_dir=str(folder / "ts")))
        try:
            await service.self_test()
            result = await service.execute("typescript", PROGRAMS["typescript"], "", "test")
        finally:
            await service.close()
        assert (result.stdout, result.compile_output, result.exit_code) == ("42\n", "", 0), result
    finally:
        shutil.rmtree(folder)


@pytest.mark.sandbox
async def test_the_self_test_runs_every_language(monkeypatch: pytest.MonkeyPatch) -> None:
    require_sandbox()
    ran: list[str] = []
    original = Sandbox.run

    async def spy(self: Sandbox, plan: Plan, stdin: bytes, slot: int = 0, stop: object = None) -> Outcome:
        ran.extend(plan.files)
        return await original(self, plan, stdin, slot)

    monkeypatch.setattr(Sandbox, "run", spy)
    service = ExecutionService(Settings(execution="sandbox"))
    try:
        await service.self_test()
    finally:
        await service.close()
    expected = {"python": "main.py", "javascript": "main.js", "typescript": "main.ts", "cpp": "main.cpp"}
    available = {a.language for a in Toolchains(Settings()).all_availability() if a.available}
    for language, source in expected.items():
        assert (source in ran) == (language in available), (language, ran)
    assert any(name.endswith(".java") for name in ran) == ("java" in available), ran


@pytest.mark.sandbox
async def test_languages_left_out_by_the_operator_are_neither_self_tested_nor_run(
    monkeypatch: pytest.MonkeyPatch, server_factory: Any
) -> None:
    require_sandbox()
    ran: list[str] = []
    original = Sandbox.run

    async def spy(self: Sandbox, plan: Plan, *args: Any, **kwargs: Any) -> Outcome:
        ran.extend(plan.files)
        return await original(self, plan, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "run", spy)
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_languages": "Python"})
    assert ran == ["main.py"], ran  # the start-up self-test ran Python alone
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        listed = {e["language"]: e for e in (await client.get("/v1/execute/languages")).json()["languages"]}
        assert listed["python"]["available"] is True
        for language in ("javascript", "typescript", "java", "cpp"):
            assert listed[language]["available"] is False, listed[language]
            assert "CODECONNECT_EXEC_LANGUAGES" in listed[language]["reason"], listed[language]
        r = await client.post("/v1/execute", json={"language": "javascript", "code": "console.log(1)"})
        assert r.status_code == 501 and r.json()["error"] == "language_unavailable", r.text
        assert "CODECONNECT_EXEC_LANGUAGES" in r.json()["detail"]
        assert (await run(client, "python", "print(2)"))["stdout"] == "2\n"


def test_an_unknown_language_in_the_operators_list_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown language rust"):
        Settings(exec_languages="python, rust")
    assert Settings(exec_languages=" Java,cpp,java ").exec_language_set == {"java", "cpp"}
    assert Settings().exec_language_set == frozenset()


@pytest.mark.sandbox
async def test_a_language_that_fails_its_self_test_is_unavailable_with_the_reason(server_factory: Any) -> None:
    """Its tools are present but it cannot run a tiny program: the list says why, a run is refused with why,
    and the other languages still run."""
    require_sandbox()
    folder = private_folder()
    try:
        broken = folder / "ts"
        (broken / "node_modules/sucrase").mkdir(parents=True)
        (broken / "node_modules/sucrase/package.json").write_text("{}")
        (broken / "strip.cjs").write_text('process.stderr.write("stripper is broken\\n"); process.exit(3);\n')
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        server = await server_factory(**{**SANDBOX_LIMITS, "exec_typescript_dir": str(broken)})
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            listed = {e["language"]: e for e in (await client.get("/v1/execute/languages")).json()["languages"]}
            typescript = listed["typescript"]
            assert typescript["available"] is False and typescript["missing"] == [], typescript
            assert "self-test" in typescript["reason"] and "stripper is broken" in typescript["reason"], typescript
            assert listed["python"]["available"] is True and listed["python"]["reason"] is None
            r = await client.post("/v1/execute", json={"language": "ts", "code": "let a: number = 1;"})
            assert r.status_code == 501 and r.json()["error"] == "language_unavailable"
            assert "stripper is broken" in r.json()["detail"]
            assert (await run(client, "python", "print(2)"))["stdout"] == "2\n"
    finally:
        shutil.rmtree(folder)


_CHECKOUT_SCRIPT = """
import asyncio, json, sys
import codeconnect
from codeconnect.config import Settings
from codeconnect.execution.service import ExecutionService

async def main():
    service = ExecutionService(Settings(execution="sandbox"))
    try:
        await service.self_test()
        results = {}
        for language, code in json.loads(sys.argv[1]).items():
            r = await service.execute(language, code, "", "test")
            results[language] = [r.stdout, r.compile_output + r.stderr]
        languages = service.languages().model_dump(by_alias=True)
    finally:
        await service.close()
    print(json.dumps({"package": codeconnect.__file__, "results": results, "languages": languages}))

asyncio.run(main())
"""


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_checkout_in_a_private_folder_runs_every_language() -> None:
    """The package itself (and its TypeScript stripper) in a 0700 folder, as a clone in a home directory is."""
    require_sandbox()
    for language in PROGRAMS:
        require_language(language)  # type: ignore[arg-type]
    folder = private_folder()
    try:
        package = Path(__file__).resolve().parents[2] / "src/codeconnect"
        copy = folder / "checkout/src/codeconnect"
        shutil.copytree(package, copy, symlinks=True, ignore=shutil.ignore_patterns("static", "__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
        env["PYTHONPATH"] = str(folder / "checkout/src")
        done = subprocess.run(
            [sys.executable, "-c", _CHECKOUT_SCRIPT, json.dumps(PROGRAMS)],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["package"].startswith(str(copy)), report["package"]
        assert report["results"] == {language: ["42\n", ""] for language in PROGRAMS}, report["results"]
        assert all(entry["available"] for entry in report["languages"]["languages"]), report["languages"]
    finally:
        shutil.rmtree(folder)
