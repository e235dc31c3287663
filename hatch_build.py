"""Build hook: a wheel (or sdist) of Code Connect Live carries the files the server needs at run time that are not
source files: the built web page, the in-browser Python's packages and the sandbox's TypeScript stripper.

All three are outputs of ``scripts/setup`` (``scripts/build-web``, ``pip download``, ``npm ci``), ignored by git,
and listed as ``artifacts`` in pyproject.toml so hatchling packs them anyway. Without this hook a checkout whose
page was never built gave a wheel without it, and the installed server answered ``/`` and ``/docs`` with 503. So:

* the page is brought up to date first with ``scripts/build-web``: it does nothing when the build matches its
  sources (no Node.js needed then, so a wheel builds from an sdist without it) and rebuilds it otherwise, the
  same step ``scripts/serve`` takes before serving;
* the other two cannot be made here (one needs the package index, the other npm, and a build backend should not
  fetch), so when they are missing or do not match their lists the build stops and says to run ``scripts/setup``.

Editable installs (``uv sync``) are left alone: they read these folders in the checkout, and ``scripts/setup``
syncs before it builds the page.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("src/codeconnect")


class RunTimeFiles(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        build_web = root / "scripts" / "build-web"
        if build_web.is_file() and (root / "web" / "package.json").is_file():
            # Through bash: an unpacked sdist need not keep the script's executable bit.
            subprocess.run(["bash", str(build_web)], check=True)
        problems = missing_run_time_files(root)
        if problems:
            raise RuntimeError(
                "codeconnect: refusing to build a package the server cannot run from:\n  - "
                + "\n  - ".join(problems)
                + "\nRun scripts/setup in the checkout (it builds the page, fetches the in-browser Python's "
                "packages and installs the TypeScript stripper), then build again."
            )


def missing_run_time_files(root: Path) -> list[str]:
    """What of the run-time files is missing or stale under ``root``, one line each (empty: all there)."""
    package = root / PACKAGE
    problems = []
    if not (package / "static" / "index.html").is_file():
        problems.append("the web page is not built (src/codeconnect/static/index.html)")
    wanted = package / "web" / "browser-packages.txt"
    fetched = package / "py-packages" / ".list"
    if wanted.is_file() and (not fetched.is_file() or fetched.read_bytes() != wanted.read_bytes()):
        problems.append("the in-browser Python's packages (src/codeconnect/py-packages/) do not match their list")
    if not (package / "execution" / "ts" / "node_modules" / "sucrase" / "package.json").is_file():
        problems.append("the TypeScript stripper is not installed (src/codeconnect/execution/ts/node_modules/)")
    return problems
