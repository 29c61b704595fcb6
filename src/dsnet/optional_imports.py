"""Optional packages (export runtimes, the server), imported only when asked for, with one clear error when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingBackendError

__all__ = ["import_optional"]


def import_optional(module: str, purpose: str, extra: str = "deploy") -> ModuleType:
    """Import the optional package ``module`` or raise :class:`MissingBackendError` naming the extra
    (``pip install dsnet-seg[extra]``) that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingBackendError(
            f"{purpose} needs the '{module}' package, which is not installed: pip install dsnet-seg[{extra}]"
        ) from e
