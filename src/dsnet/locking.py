"""One process at a time in a folder: an exclusive ``fcntl.flock`` on a lock file inside it (a small
module on top of fileio, shared by training's work dirs and ``dsnet predict``'s output folders).

The OS releases the lock when its holder dies, so a killed run never leaves a folder locked. The file
holds its holder's pid and host, for the message that refuses a second process. ``remove=True``
deletes the lock file on release (for output folders, which should hold only outputs); a process that
opened the file just before it went checks after locking that it still holds the file at that path,
and starts again if not, so two processes never both think they hold one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .fileio import LOCK_FILE

__all__ = ["LOCK_FILE", "FolderLock", "holder_of"]


class FolderLock:
    """The lock of ``folder`` (created if needed): :meth:`acquire`, then :meth:`release`."""

    def __init__(self, folder: str | os.PathLike, *, remove: bool = False, name: str = LOCK_FILE) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.remove = remove
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> str | None:
        """Take the folder: None when it is now this process's, else its holder ("pid N on HOST")."""
        if self._fd is not None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                return holder
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode())
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        if self.remove:
            with contextlib.suppress(OSError):  # the folder went away or is read-only: the lock goes anyway
                self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def holder_of(path: str | os.PathLike) -> str | None:
    """Who holds the lock file ``path`` ("pid N on HOST"), or None when nobody does. A lock file that nobody
    holds was left by a killed process (``kill -9`` gives it no time to remove it): it is removed here."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: probes of one file do not block each other
        except OSError:
            return os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()  # stale: its holder died
        return None
    finally:
        os.close(fd)
