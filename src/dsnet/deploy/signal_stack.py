"""Keep the calling thread's alternate signal stack across OpenVINO calls.

OpenVINO's CPU plugin gives every compiled model a fresh alternate signal stack (``sigaltstack``) on
the compiling thread; destroying the model puts back the stack it replaced and unmaps its own. When
two models are destroyed in another order than they were made (garbage collection decides), the
thread is left on an unmapped stack, and the next signal with a Python handler (Ctrl-C, a child
process or DataLoader worker exiting) kills the process with SIGSEGV. Putting the previous stack back
right after each compile makes every later restore land on a live stack. Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["current_signal_stack", "keep_signal_stack"]


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def current_signal_stack() -> tuple[int, int, int] | None:
    """(address, flags, size) of this thread's alternate signal stack; None off Linux."""
    if _LIBC is None:
        return None
    stack = _StackT()
    if _LIBC.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return (stack.ss_sp or 0, stack.ss_flags, stack.ss_size)


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Restore this thread's alternate signal stack (or its absence) on leaving the block."""
    if _LIBC is None:
        yield
        return
    saved = _StackT()
    have = _LIBC.sigaltstack(None, ctypes.byref(saved)) == 0
    try:
        yield
    finally:
        if have:
            saved.ss_flags &= ~1  # SS_ONSTACK is reported, never set; SS_DISABLE (2) is kept
            _LIBC.sigaltstack(ctypes.byref(saved), None)
