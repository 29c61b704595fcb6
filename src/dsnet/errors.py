"""The exceptions dsnet raises on bad input: one base class, so callers (and the CLI) catch one type.

Each subclass also derives from the built-in type that code written before it expected
(``ValueError`` for configs and data, ``RuntimeError`` for checkpoints, ``OSError`` for outputs).
Messages start with the file, key or value at fault.
"""

from __future__ import annotations

__all__ = [
    "DSNetError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "CheckpointMismatchError",
    "WeightsNotFoundError",
    "OutputError",
    "WorkDirError",
    "ExportError",
    "MissingBackendError",
]


class DSNetError(Exception):
    """Base class of every error dsnet raises about user input, files or settings."""


class ConfigError(DSNetError, ValueError):
    """A configuration file, override or setting is invalid; the message names the key."""


class DataError(DSNetError, ValueError):
    """A problem with data on disk; the message starts with the offending file or folder."""


class CheckpointError(DSNetError, RuntimeError):
    """A checkpoint could not be read or does not fit the model."""


class CheckpointMismatchError(CheckpointError):
    """Keys of a checkpoint do not match the model after mapping."""

    def __init__(
        self,
        message: str,
        missing: list[str],
        unexpected: list[str],
        shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatch = shape_mismatch


class WeightsNotFoundError(CheckpointError, FileNotFoundError):
    """A weights file (checkpoint or export) given by path does not exist; the message names the path."""


class OutputError(DSNetError, OSError):
    """An output (file or folder) cannot be written; the message names the path and the cause."""


class WorkDirError(DSNetError, RuntimeError):
    """A run's work dir is in use, holds another run, or has nothing to resume from."""


class ExportError(DSNetError, RuntimeError):
    """A model cannot be exported in the requested format or size; the message names the format or value."""


class MissingBackendError(ExportError, ImportError):
    """An optional export/runtime package (onnx, onnxscript, onnxruntime, openvino) is not installed."""
