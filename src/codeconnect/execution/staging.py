"""What runs read from the host outside ``/usr``, copied at start-up to a folder the server makes for it.

The sandbox runs as an unprivileged uid, and bwrap resolves bind sources as that uid. A checkout or install
folder is often private (a clone under a home directory, or in a ``mktemp -d`` folder, mode 0700): binding
anything from there fails for every run (``bwrap: Can't find source path ...: Permission denied``) although
the server itself reads it fine. So nothing a run needs is bound from where the project happens to live: the
few files it needs (the TypeScript stripper and sucrase) are copied into
``<temp dir>/codeconnect-sandbox-<pid>-<random>/``, owned by the server's user, directories 0755 and files
0644, in a temp dir every user can enter, and removed when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from codeconnect.execution.sandbox import SandboxUnavailable

_PREFIX = "codeconnect-sandbox-"
_OURS = re.compile(rf"^{_PREFIX}(\d+)-")


def _unreachable_ancestor(path: Path) -> Path | None:
    """The first folder from ``/`` down to ``path`` that other users cannot enter, if any."""
    for folder in reversed([path, *path.parents]):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(base: Path) -> None:
    """Remove copies left by servers of ours that were killed before they could remove them."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            match = _OURS.match(entry.name)
            if match and entry.is_dir() and entry.stat().st_uid == os.geteuid() and not _pid_alive(int(match[1])):
                shutil.rmtree(entry, ignore_errors=True)


def _world_readable(root: Path) -> None:
    # Explicit modes: the server's umask (027 or 077 on hardened hosts) must not decide what the sandbox reads.
    root.chmod(0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


class SandboxFiles:
    """A folder of copies the sandbox binds read-only; :meth:`close` removes it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, other_users: bool) -> SandboxFiles:
        """Make the folder; ``other_users``: the sandbox runs as another uid, so every folder above the copy
        must let other users through. Raises :class:`SandboxUnavailable` when no temp dir does."""
        candidates = dict.fromkeys([Path(tempfile.gettempdir()), Path("/tmp")])
        refused: list[str] = []
        for base in candidates:
            blocked = _unreachable_ancestor(base) if other_users else None
            if blocked is not None:
                refused.append(f"{blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):04o})")
                continue
            _sweep(base)
            root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
            root.chmod(0o755)
            return cls(root)
        raise SandboxUnavailable(
            "no temp folder the sandbox's user can enter for the files runs read: "
            + ", ".join(refused)
            + " (set TMPDIR to a folder every user can enter)"
        )

    def add_tree(self, name: str, source: Path) -> Path:
        """Copy ``source`` (symlinks resolved, so the copy needs nothing outside itself) as ``<root>/<name>``."""
        dest = self.root / name
        shutil.copytree(source, dest, symlinks=False, ignore=shutil.ignore_patterns(".bin", "package-lock.json"))
        _world_readable(dest)
        return dest

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
