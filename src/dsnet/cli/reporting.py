"""What every ``dsnet`` command says besides its results: the logging it sets up and its one-line errors.

The library logs and raises; only the command line turns that into handlers, log files and stderr lines.
Under torchrun only the main process writes log files.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from ..engine.observe import setup_logging
from ..errors import DSNetError
from ..torchrun import is_main_process

__all__ = ["configure_logging", "report_error"]


def configure_logging(log_file: Path | None) -> None:
    """The command's log handlers: ``log_file`` too on the main process (never on the other ranks)."""
    main = is_main_process()
    setup_logging(log_file if main else None, main)


def report_error(command: str, error: BaseException, debug: bool) -> None:
    """One line on stderr (a traceback with --debug), also written to the run's log file."""
    message = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and not isinstance(error, DSNetError) and error.filename:
        message = f"{error.filename}: {error.strerror or message}"
    line = f"dsnet {command}: error: {message}"
    if debug:
        traceback.print_exception(error)
    print(line, file=sys.stderr)
    logger = logging.getLogger("dsnet")
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logger.makeRecord("dsnet", logging.ERROR, __file__, 0, line, None, None))
