"""The wheel `uv build` makes is the whole service: installed into a fresh environment outside the checkout, its
`codeconnect serve` (run from another folder) migrates a new database and serves the page, the API's
documentation and a live session, every file from inside the installed package."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import eventually, skip_or_fail
from tests.test_cli import start_serve, stop

ROOT = Path(__file__).resolve().parents[1]
CODE = "print('served from the wheel')\n"

# Building may rebuild a stale page first (tens of seconds on a loaded machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def uv_command() -> list[str]:
    """uv as scripts/setup finds it: on PATH, else the module it installs with pip."""
    found = shutil.which("uv")
    if found:
        return [found]
    python3 = shutil.which("python3")
    if python3 and subprocess.run([python3, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [python3, "-m", "uv"]
    skip_or_fail("uv is not installed (scripts/setup installs it)")


def run_uv(uv: list[str], *args: str, **env: str) -> None:
    """``uv args`` from the checkout, offline first: everything it needs is in uv's cache once scripts/setup has
    run (the locked packages, and hatchling from installing the project). Then with the network, in case this
    cache was filled otherwise."""
    # Another environment's variables would point uv (and Python) at it instead of the new one.
    base = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    tries = []
    for offline in (["--offline"], []):
        done = subprocess.run(
            [*uv, *args, *offline], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=240
        )
        if done.returncode == 0:
            return
        tries.append(f"$ uv {' '.join([*args, *offline])}\n{done.stdout}{done.stderr}")
    raise AssertionError("\n".join(tries))


def build_and_install(work: Path) -> tuple[Path, Path]:
    """The wheel, built from the checkout, and a new environment outside it with the wheel installed."""
    uv = uv_command()
    dist, venv = work / "dist", work / "venv"
    # The build hook brings the page up to date first (nothing to do after scripts/setup).
    run_uv(uv, "build", "--wheel", "--quiet", "--out-dir", str(dist))
    (wheel,) = dist.glob("codeconnect-*.whl")
    # The locked dependencies (as `uv sync` installs them, from its cache), then the wheel itself.
    run_uv(
        uv, "sync", "--frozen", "--quiet", "--no-dev", "--no-install-project", "--python", sys.executable,
        UV_PROJECT_ENVIRONMENT=str(venv),
    )
    python = str(venv / "bin" / "python")
    run_uv(uv, "pip", "install", "--quiet", "--no-deps", "--python", python, str(wheel))
    # What the wheel says it needs is what the lock installed.
    run_uv(uv, "pip", "check", "--quiet", "--python", python)
    return wheel, venv


def check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "codeconnect/static/index.html",
        "codeconnect/py-packages/.list",
        "codeconnect/execution/ts/strip.cjs",
        "codeconnect/execution/ts/node_modules/sucrase/package.json",
        "codeconnect/migrations/env.py",
        "codeconnect/migrations/script.py.mako",
    ):
        assert name in names, name
    page = ROOT / "src" / "codeconnect" / "static"
    built = {f"codeconnect/static/{p.relative_to(page)}" for p in page.rglob("*") if p.is_file()}
    assert built <= names, sorted(built - names)[:5]
    assert any(re.fullmatch(r"codeconnect/static/pyodide-[^/]+/pyodide\.asm\.wasm", n) for n in names)
    assert any(re.fullmatch(r"codeconnect/py-packages/[^/]+\.whl", n) for n in names)
    assert any(re.fullmatch(r"codeconnect/migrations/versions/0001_[^/]+\.py", n) for n in names)


def check_files_come_from_the_package(venv: Path, cwd: Path) -> None:
    # The environment start_serve gives the server, so this imports the `codeconnect` the server imports.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
    script = (
        "import json, codeconnect.db as d, codeconnect.web.assets as a, codeconnect.web.pypackages as p;"
        "print(json.dumps([d.__file__, str(a.PACKAGE_STATIC_DIR), str(p.PACKAGES_DIR)]))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    for path in map(Path, json.loads(out.stdout)):
        assert path.resolve().is_relative_to(venv.resolve()), path
        assert path.exists(), path


def check_page(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    scripts = re.findall(r'<script type="module"[^>]*src="(/assets/[^"]+\.js)"', page.text)
    assert scripts, page.text
    for url in scripts:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith("text/javascript")
    packages = client.get("/py-packages/lock.json").json()["packages"]
    assert packages, "the in-browser Python's packages are missing"
    first = next(iter(packages.values()))["file_name"]
    assert client.get(f"/py-packages/{first}").status_code == 200


def check_api_docs(client: httpx.Client) -> None:
    for path in ("/docs", "/redoc"):
        docs = client.get(path)
        assert docs.status_code == 200, docs.text
        files = re.findall(r'(?:src|href)="(/(?:swagger-ui|redoc)-[^"]+)"', docs.text)
        assert files, docs.text
        for url in files:
            assert client.get(url).status_code == 200, url
    assert client.get("/openapi.json").status_code == 200


async def check_live_session(base_url: str) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=base_url) as client:
        session = await new_session(client, title="From the wheel", language="python", code=CODE)
        token = (await join(client, session["id"], "Ada"))["token"]
        yc = await YClient(collab_url(base_url.replace("http://", "ws://"), session["id"], token)).connect()
        try:
            assert yc.text == CODE
            # An edit over the live connection reaches the server's document and its REST reads.
            yc.code += "print(42)\n"

            async def edit_arrived() -> bool:
                code = (await client.get(f"/v1/sessions/{session['id']}")).json()["code"]
                return bool(code == CODE + "print(42)\n")

            await eventually(edit_arrived)
        finally:
            await yc.close()


async def test_the_wheel_installed_elsewhere_serves_the_page_the_docs_and_a_live_session(tmp_path: Path) -> None:
    # One test, not several sharing a fixture: under pytest-xdist each worker would build and install its own.
    wheel, venv = build_and_install(tmp_path)
    check_wheel_contents(wheel)
    run = tmp_path / "run"
    run.mkdir()
    check_files_come_from_the_package(venv, run)
    # From a folder that is not the checkout; `serve` migrates the new database on start.
    server = start_serve(f"sqlite+aiosqlite:///{run / 'data' / 'pad.db'}", run, program=venv / "bin" / "codeconnect")
    try:
        with httpx.Client(timeout=30, base_url=server.base_url) as client:
            check_page(client)
            check_api_docs(client)
        await check_live_session(server.base_url)
    finally:
        stop(server)
