"""The ``dsnet`` command line: parses arguments, calls the Python API and prints; nothing else.

``main`` (the console script ``dsnet`` and ``python -m dsnet``) and ``build_parser`` live in
:mod:`dsnet.cli.command`; the flags several commands share are declared once in :mod:`dsnet.cli.flags`;
each other module registers and runs one group of commands.
"""

from .command import build_parser, main

__all__ = ["build_parser", "main"]
