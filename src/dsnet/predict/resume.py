"""Resuming ``dsnet predict``: which inputs a killed (or extended) run has already written in full.

Every output is written whole or not at all (atomic image writes, videos renamed when complete), so an
input whose outputs all exist needs no second prediction, and one with any output missing is predicted
again from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .sources import InputFile
from .writers import OutputWriter

__all__ = ["ResumePlan", "plan_resume"]


class ResumePlan(NamedTuple):
    """The inputs left as they are (``done``) and the ones to predict (``todo``), in input order."""

    done: list[InputFile]
    todo: list[InputFile]


def plan_resume(inputs: Sequence[InputFile], writer: OutputWriter, resume: bool) -> ResumePlan:
    """With ``resume``, the inputs whose outputs in ``writer``'s folder are all there go to ``done``;
    without it every input is predicted (again)."""
    done = [i for i in inputs if resume and writer.complete(i.rel, i.is_video, i.path.suffix)]
    return ResumePlan(done, [i for i in inputs if i not in done])
