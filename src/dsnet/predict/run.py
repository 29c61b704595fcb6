"""Predicting a list of files into an output folder (what ``dsnet predict`` does).

Bad-input policy: a file that cannot be read (corrupt image, video with no decodable frame), or
whose size the backend cannot run (an export's size limits: see :meth:`Predictor.input_problem`), is
skipped and reported in :attr:`RunSummary.skipped`, and the run goes on; the caller decides the exit
status. Problems with the outputs (full disk, read-only folder) stop the run. Images are read in
input order and consecutive ones of one size are batched; videos stream frame by frame. Reading runs
a few images ahead and writing a few behind, in background threads (:mod:`dsnet.predict.pipeline`),
so the main thread waits only for the forward pass; outputs keep the input order. A failed write
stops the run with the file named.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.io import read_image
from ..errors import ConfigError, DataError
from .pipeline import ReadAhead, WriteBehind
from .predictor import Predictor
from .sources import InputFile, read_video, video_frame_count
from .writers import OutputWriter

__all__ = ["RunSummary", "describe", "predict_files"]


@dataclass
class RunSummary:
    """What a run did: images and videos written, frames predicted, and the inputs skipped (one
    message each, naming the file)."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    skipped: list[str] = field(default_factory=list)
    #: wall time of the run (reading, predicting, writing)
    seconds: float = 0.0


def _frame_total(videos: Sequence[InputFile]) -> int:
    return sum(video_frame_count(item.path) for item in videos)  # unreadable ones count 0: reported later


def _read(items: Sequence[InputFile]) -> Iterator[tuple[InputFile, np.ndarray | DataError]]:
    """Each item with its decoded image, or the DataError that says why it could not be read."""
    for item in items:
        try:
            yield item, read_image(item.path, upright=True)  # as the photo is shown: EXIF orientation
        except DataError as e:
            yield item, e


def _size_problem(predictor: Predictor, item: InputFile, rgb: np.ndarray) -> str | None:
    """Why this image's size cannot run on the predictor's backend (a runtime's limits), naming the file."""
    problem = predictor.input_problem(*rgb.shape[:2])
    return f"{item.path}: {problem}" if problem is not None else None


def _predict_images(
    predictor: Predictor, items: Sequence[InputFile], writer: OutputWriter, summary: RunSummary, bar: tqdm
) -> None:
    queue: deque[tuple[InputFile, np.ndarray]] = deque()
    depth = 2 * predictor.batch_size + 2

    def written(item: InputFile, rgb: np.ndarray, label: np.ndarray) -> None:
        writer.write_image(item.rel, rgb, label)
        summary.images += 1
        bar.update(1)

    with ReadAhead(_read(items), depth) as reader, WriteBehind(depth) as behind:

        def images() -> Iterator[np.ndarray]:
            for item, rgb in reader:
                problem = str(rgb) if isinstance(rgb, DataError) else _size_problem(predictor, item, rgb)
                if problem is not None:
                    summary.skipped.append(problem)
                    bar.update(1)
                    continue
                queue.append((item, rgb))
                yield rgb

        for pred in predictor.predict_many(images()):
            item, rgb = queue.popleft()
            behind.submit(written, item, rgb, pred.label)
        behind.finish()


def _predict_video(predictor: Predictor, item: InputFile, writer: OutputWriter, summary: RunSummary, bar: tqdm) -> None:
    try:
        fps, frames = read_video(item.path)
        first = next(frames)
    except (DataError, StopIteration) as e:
        summary.skipped.append(str(e) if isinstance(e, DataError) else f"{item.path}: video has no frames")
        return
    problem = _size_problem(predictor, item, first)
    if problem is not None:
        summary.skipped.append(problem)
        return
    h, w = first.shape[:2]
    out = writer.open_video(item.rel, item.path.suffix, fps, (w, h))
    queue: deque[np.ndarray] = deque()
    depth = 2 * predictor.batch_size + 2

    def written(frame: np.ndarray, label: np.ndarray) -> None:
        out.write(frame, label)
        bar.update(1)

    try:
        with ReadAhead(_chain(first, frames), depth) as reader, WriteBehind(depth) as behind:

            def stream() -> Iterator[np.ndarray]:
                for frame in reader:
                    queue.append(frame)
                    yield frame

            for pred in predictor.predict_many(stream()):
                behind.submit(written, queue.popleft(), pred.label)
            behind.finish()
    except DataError as e:
        out.close(remove=True)
        summary.skipped.append(str(e))
        return
    except BaseException:
        out.close(remove=True)
        raise
    out.close()
    summary.videos += 1
    summary.frames += out.frames


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def predict_files(
    predictor: Predictor, inputs: Sequence[InputFile], writer: OutputWriter, progress: bool | None = None
) -> RunSummary:
    """Predict every input into ``writer``'s folder; ``progress=None`` shows a bar on a terminal only."""
    videos = [i for i in inputs if i.is_video]
    if videos and not writer.writes_video:
        raise ConfigError(f"{videos[0].path}: a video needs --color, --overlay or --video-labels to write anything")
    images = [i for i in inputs if not i.is_video]
    summary = RunSummary()
    total = len(images) + _frame_total(videos)
    start = time.perf_counter()
    with tqdm(total=total, unit="img", desc="predict", disable=None if progress is None else not progress) as bar:
        if images:
            _predict_images(predictor, images, writer, summary, bar)
        for item in videos:
            _predict_video(predictor, item, writer, summary, bar)
    summary.seconds = time.perf_counter() - start
    return summary


def describe(summary: RunSummary, out_dir: Path) -> str:
    """One line for the command line: what was written where."""
    parts = [f"{summary.images} image(s)"]
    if summary.videos:
        parts.append(f"{summary.videos} video(s) ({summary.frames} frames)")
    skipped = f"; {len(summary.skipped)} input(s) skipped" if summary.skipped else ""
    done = summary.images + summary.frames
    rate = f" in {summary.seconds:.1f} s ({done / summary.seconds:.2f} img/s)" if done and summary.seconds > 0 else ""
    return f"predicted {', '.join(parts)} into {out_dir}{rate}{skipped}"
