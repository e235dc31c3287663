"""The pure-Python packages the in-browser Python can import: wheels on disk, described as Pyodide lock entries.

``scripts/setup`` downloads the wheels pinned in ``browser-packages.txt`` into :data:`PACKAGES_DIR`; the page's
Python worker asks for ``/py-packages/lock.json`` and hands its entries to Pyodide (``lockFileContents``), whose
``loadPackage`` then fetches a wheel, and what it depends on, from ``/py-packages/`` when a program imports it.
Everything in an entry is read from the wheel itself, so adding a package is adding a line to the list.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

PACKAGES_DIR = Path(__file__).resolve().parent.parent / "py-packages"
PACKAGE_LIST = Path(__file__).resolve().parent / "browser-packages.txt"

_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.+!]+)-[^/]*\.whl$")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """A project name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _top_level_imports(wheel: zipfile.ZipFile) -> list[str]:
    names: set[str] = set()
    for entry in wheel.namelist():
        first = entry.split("/", 1)[0]
        if first.endswith((".dist-info", ".data")):
            continue
        if "/" in entry:
            names.add(first)
        elif first.endswith(".py"):
            names.add(first.removesuffix(".py"))
    return sorted(n for n in names if n.isidentifier())


def _requirements(metadata: str) -> list[str]:
    """The projects a wheel needs at run time: its Requires-Dist entries that belong to no extra."""
    needed = []
    for requirement in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        _, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = _REQUIREMENT_NAME.match(requirement)
        if match:
            needed.append(normalize(match.group(1)))
    return needed


def lock_entry(path: Path) -> dict[str, Any] | None:
    """The Pyodide lock entry of one wheel file, or None when the file is not a wheel."""
    match = _WHEEL.match(path.name)
    if not match:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(path) as wheel:
        metadata_name = next((n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")), None)
        metadata = wheel.read(metadata_name).decode("utf-8", "replace") if metadata_name else ""
        imports = _top_level_imports(wheel)
    return {
        "name": normalize(match.group("name")),
        "version": match.group("version"),
        "file_name": path.name,
        "package_type": "package",
        "install_dir": "site",
        "sha256": digest,
        "imports": imports,
        "depends": _requirements(metadata),
    }


@dataclass
class BrowserPackages:
    """The wheels in ``root``, described once per change of the folder's files."""

    root: Path
    _cache: tuple[tuple[tuple[str, int, int], ...], dict[str, Any]] | None = field(default=None, repr=False)

    def wheel(self, name: str) -> Path | None:
        """The wheel file called ``name``, never a path outside the folder."""
        if "/" in name or "\\" in name or not _WHEEL.match(name):
            return None
        path = self.root / name
        return path if path.is_file() else None

    def lock(self) -> dict[str, Any]:
        """``{"packages": {name: entry}}``; a dependency no wheel here provides is dropped from ``depends``."""
        wheels = sorted(self.root.glob("*.whl")) if self.root.is_dir() else []
        key = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in wheels)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        entries = [e for e in (lock_entry(p) for p in wheels) if e is not None]
        present = {e["name"] for e in entries}
        for entry in entries:
            entry["depends"] = [d for d in entry["depends"] if d in present]
        lock: dict[str, Any] = {"packages": {e["name"]: e for e in entries}}
        self._cache = (key, lock)
        return lock
