"""What runs read from the host outside ``/usr``, copied at start-up to a folder the server makes for it.

The sandbox runs as an unprivileged uid, and bwrap resolves bind sources as that uid. A checkout or install
folder is often private (a clone under a home directory, or in a ``mktemp -d`` folder, mode 0700): binding
anything from there fails for every run (``bwrap: Can't find source path ...: Permission denied``) although
the server itself reads it fine. So nothing a run needs is bound from where the project happens to live: the
few files it needs (the TypeScript stripper and sucrase) are copied into
``<temp dir>/codeconnect-sandbox-<pid>-<random>/``, owned by the server's user, directories 0755 and files
0644, in a temp dir every user can enter, and removed when the server stops.

A server killed before it could remove its folder leaves it behind; the next server to start removes it. Whether
a folder's server still runs is told by a lock the server holds on the folder for as long as it runs (``flock``:
the kernel drops it when the process dies), not by its process id: servers in containers that share a temp dir
have their own process ids, and a live server's id can be free in another's namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
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


# A folder younger than this is left alone even when unlocked: it may be one another server has just made and
# not locked yet.
_SWEEP_MIN_AGE_SECONDS = 60.0


def _lock(folder: Path, blocking: bool) -> int | None:
    """An exclusive lock on ``folder``, held by the returned descriptor; None when another process holds it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _sweep(base: Path) -> None:
    """Remove copies left by servers of ours that were killed before they could remove them."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if not _OURS.match(entry.name):
                continue
            with contextlib.suppress(OSError):
                info = entry.lstat()
                if (
                    not stat.S_ISDIR(info.st_mode)
                    or info.st_uid != os.geteuid()
                    or time.time() - info.st_mtime < _SWEEP_MIN_AGE_SECONDS
                ):
                    continue
                fd = _lock(entry, blocking=False)
                if fd is None:
                    continue  # its server runs
                try:
                    shutil.rmtree(entry, ignore_errors=True)
                finally:
                    os.close(fd)


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

    def __init__(self, root: Path, lock: int) -> None:
        self.root = root
        self._lock = lock  # held while the server runs: see the module's docstring

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
            lock = _lock(root, blocking=True)
            assert lock is not None  # a blocking lock is taken or raises
            return cls(root, lock)
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
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
