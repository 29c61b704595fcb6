"""File I/O shared by every layer: atomic writes, safe torch reads and early checks that outputs
can be written (a leaf module: imports nothing of dsnet but its errors)."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, OutputError, WeightsNotFoundError

__all__ = [
    "DISPOSABLE_FILES",
    "LOCK_FILE",
    "TEMP_SUFFIX",
    "NewOutputs",
    "atomic_write",
    "check_output_dir",
    "check_output_files",
    "check_writable",
    "describe_export_file",
    "describe_os_error",
    "read_torch_file",
    "refuse_existing",
    "remove_stale_temp_files",
]

#: The lock file that marks a work dir or output folder in use (see :mod:`dsnet.locking`).
LOCK_FILE = ".dsnet.lock"
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
        tmp = _new_temp_file(path)
        mode = os.stat(tmp).st_mode & 0o777  # 0o666 less the umask
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({describe_os_error(e)})") from e
    try:
        write(tmp)
        os.chmod(tmp, mode)  # some writers replace the file with a private one (safetensors: 0600)
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


def _new_temp_file(path: Path) -> str:
    """An empty, new file beside ``path`` created with mode 0o666 less the umask, as ``open`` would
    (``tempfile.mkstemp`` makes 0600 files, and the rename keeps the mode)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return str(tmp)
        except FileExistsError:
            continue


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed :func:`atomic_write` left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


#: the short-lived file check_writable writes (another process's probe is not "an earlier run's file")
_PROBE_PREFIX = ".dsnet-write-check."


def _ours(name: str) -> bool:
    """A lock or write probe of a dsnet process, not an output."""
    return name.startswith(LOCK_FILE) or name.startswith(_PROBE_PREFIX)


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that a file can be written there, before a long job.

    Raises :class:`OutputError` naming the folder and the cause (read-only, permission, full disk).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=_PROBE_PREFIX, suffix=TEMP_SUFFIX)
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
    """``torch.load(weights_only=True)`` with errors that tell apart a missing file, one of dsnet's own
    exports given where a checkpoint belongs, bytes that are not a torch file at all, and a real pickle
    that holds code (refused, never executed)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: {what} not found")
    export = describe_export_file(path)
    if export is not None:
        raise CheckpointError(f"{path}: {export}")
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


_NEEDS_CHECKPOINT = "this option needs the checkpoint it was exported from (.safetensors, .pth)"
_RUNS_IT = f"dsnet predict runs it (predict MODEL INPUT --weights FILE); {_NEEDS_CHECKPOINT}"


def describe_export_file(path: str | os.PathLike) -> str | None:
    """What a file written by ``dsnet export`` is and which command takes it, or None for any other file.

    Recognised by content, the suffix only where the format has no signature: an ONNX model (.onnx),
    an OpenVINO IR (.xml, and the .bin beside it) and a torch.export program (a zip with an
    ``archive_format`` entry, .pt2).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    suffix = path.suffix.lower()
    if head.lstrip().startswith(b"<?xml") and b"<net " in head:
        return f"an OpenVINO IR model (dsnet export --format openvino), not a checkpoint: {_RUNS_IT}"
    if suffix == ".bin" and path.with_suffix(".xml").is_file():
        return (
            f"the weights of the OpenVINO IR {path.with_suffix('.xml').name}, not a checkpoint: dsnet predict runs the "
            f".xml; {_NEEDS_CHECKPOINT}"
        )
    if suffix == ".onnx" or (head[:1] == b"\x08" and b"\x12\x07pytorch" in head[:16]):
        return f"an ONNX model (dsnet export --format onnx), not a checkpoint: {_RUNS_IT}"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                program = any(n == "archive_format" or n.endswith("/archive_format") for n in z.namelist())
        except (zipfile.BadZipFile, OSError):
            program = False
        if program:
            return (
                "a torch.export program (dsnet export --format torch), not a checkpoint: load it in Python with "
                "torch.export.load; dsnet predict runs .onnx and OpenVINO .xml exports; " + _NEEDS_CHECKPOINT
            )
    return None


def _unpickler_detail(text: str, error: BaseException | None = None) -> str:
    """The one informative line of torch's long weights-only message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    specific = next((ln for ln in lines if ln.startswith("Unsupported") or "GLOBAL" in ln), None)
    if specific:
        return specific[:300]
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}"[:300] if error is not None else first[:300]


def check_output_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Create ``out_dir``, refusing one that holds files of an earlier run unless ``overwrite``, and
    check that it can be written: before any work."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; name an output folder")
    if out.is_dir() and not overwrite:
        count = sum(1 for p in out.rglob("*") if p.is_file() and not _ours(p.name))  # locks and probes aside
        if count:
            raise OutputError(
                f"{out}: already holds {count} file(s), e.g. from an earlier run; "
                "pass --overwrite to write over them, or choose another output folder"
            )
    return check_writable(out)


def refuse_existing(files: Sequence[str | os.PathLike], overwrite: bool) -> list[Path]:
    """``files`` as paths; unless ``overwrite``, an :class:`OutputError` naming those that exist.
    A folder where a file is to be written is refused in any case."""
    paths = [Path(f) for f in files]
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise OutputError(f"{', '.join(folders)}: is a folder; name the output file")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(
            f"{', '.join(existing)}: already exists; choose another output or pass --overwrite (overwrite=True)"
        )
    return paths


def check_output_files(files: Sequence[str | os.PathLike], overwrite: bool) -> list[Path]:
    """The existence rule of output files (:func:`refuse_existing`) and a write check of their folders
    (created if needed): both before any work."""
    paths = refuse_existing(files, overwrite)
    for folder in dict.fromkeys(p.parent for p in paths):
        check_writable(folder)
    return paths


#: Files a failed command may leave in a folder it created, which alone make it no result worth keeping.
#: A run's log (train.log, ablate.log) is not one of them: it records the error that stopped the run.
DISPOSABLE_FILES = (LOCK_FILE, "config.yaml")


class NewOutputs:
    """Output folders a command is about to create, removed again when it fails before writing a result.

    :meth:`watch` notes the outermost missing folder of a path; :meth:`remove_unused` deletes each such
    folder if it holds nothing but empty folders, temporary files and :data:`DISPOSABLE_FILES` (a lock,
    a config), and leaves it whole otherwise (a run's log with its error, an interrupted run's checkpoints).
    """

    def __init__(self) -> None:
        self._roots: list[Path] = []

    def watch(self, path: str | os.PathLike, *, file: bool = False) -> None:
        """Note the folder ``path`` (or, with ``file``, the folder of the file ``path``) if it is missing."""
        folder = Path(path).absolute()
        folder = folder.parent if file else folder
        top = None
        while not folder.exists() and folder != folder.parent:
            top, folder = folder, folder.parent
        if top is not None and top not in self._roots:
            self._roots.append(top)

    def remove_unused(self, disposable: Iterable[str] = DISPOSABLE_FILES) -> list[Path]:
        """Remove the watched folders that hold no result; returns the removed ones."""
        names = set(disposable)
        removed = []
        for root in self._roots:
            if not root.is_dir():
                continue
            files = [p for p in root.rglob("*") if not p.is_dir()]
            if all(p.name in names or p.name.endswith(TEMP_SUFFIX) for p in files):
                shutil.rmtree(root, ignore_errors=True)
                removed.append(root)
        return removed
