"""File I/O shared by every layer: atomic writes, safe torch reads and early checks that outputs
can be written (a leaf module: imports nothing of dsnet but its errors)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, OutputError
from .locking import LOCK_FILE

__all__ = [
    "TEMP_SUFFIX",
    "atomic_write",
    "check_output_dir",
    "check_writable",
    "describe_os_error",
    "read_torch_file",
    "remove_stale_temp_files",
]

#: Suffix of the temporary files :func:`atomic_write` writes next to their destination.
TEMP_SUFFIX = ".tmp"
# below this many free bytes after a failed write, the disk is reported as full
_FULL_DISK_BYTES = 1 << 20


def describe_os_error(error: BaseException) -> str:
    """A short cause for an I/O failure, including the ones torch reports as RuntimeError."""
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno)
    text = str(error)
    # torch.save reports a full disk as "[enforce fail at inline_container.cc:...] unexpected pos ..."
    if "inline_container" in text or "unexpected pos" in text or "PytorchStreamWriter" in text:
        return "write failed (disk full?)"
    return text.splitlines()[0] if text else type(error).__name__


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader never sees a half-written file. On failure the temporary file is removed and an
    :class:`OutputError` names ``path`` and the cause (full disk, read-only folder, ...).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({describe_os_error(e)})") from e
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        free = _free_bytes(path.parent)  # before the partial file goes: a full disk shows as ~0 free
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) or (isinstance(e, RuntimeError) and not isinstance(e, OutputError)):
            cause = describe_os_error(e)
            if not isinstance(e, OSError) and free is not None and free < _FULL_DISK_BYTES:
                cause = f"{os.strerror(errno.ENOSPC)}: {free // 1024} KiB free"
            raise OutputError(f"{path}: cannot write ({cause})") from e
        raise
    return path


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed :func:`atomic_write` left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that a file can be written there, before a long job.

    Raises :class:`OutputError` naming the folder and the cause (read-only, permission, full disk).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dsnet-write-check.", suffix=TEMP_SUFFIX)
        try:
            os.write(fd, b"0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write here ({describe_os_error(e)})") from e
    return folder


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with errors that tell apart a missing file, bytes that
    are not a torch file at all, and a real pickle that holds code (refused, never executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, zip errors, EOFError ...
        text = str(e)
        if "unsupported global" in text.lower():
            raise CheckpointError(
                f"{path}: refusing to load, the file contains pickled Python objects other than tensors "
                f"and plain containers (loading it would execute code). Re-save it as a plain state dict. "
                f"Details: {_unpickler_detail(text)}"
            ) from e
        raise CheckpointError(f"{path}: not a readable PyTorch {what} ({_unpickler_detail(text, e)})") from e


def _unpickler_detail(text: str, error: BaseException | None = None) -> str:
    """The one informative line of torch's long weights-only message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    specific = next((ln for ln in lines if ln.startswith("Unsupported") or "GLOBAL" in ln), None)
    if specific:
        return specific[:300]
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}"[:300] if error is not None else first[:300]


def check_output_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Create ``out_dir``, refusing one that holds files of an earlier run unless ``overwrite``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and not overwrite:
        count = sum(1 for p in out.rglob("*") if p.is_file() and p.name != LOCK_FILE)  # not a run's lock
        if count:
            raise OutputError(
                f"{out}: already holds {count} file(s), e.g. from an earlier run; "
                "pass --overwrite to write over them, or choose another output folder"
            )
    return check_writable(out)
