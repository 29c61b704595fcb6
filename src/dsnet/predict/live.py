"""``dsnet predict`` on a live source: a camera (``camera:0``) or a stream URL that OpenCV opens (``rtsp://``,
``http://`` ...), written as the same label, colour and overlay outputs as a video file.

A live source has no end the program knows of: it runs until the source ends, ``max_frames`` are done, or
Ctrl-C. Ctrl-C stops it cleanly: the frame in hand is finished and the videos are closed, so what was
written plays. Frames are read as they come; when the model is slower than the source, the capture skips
what it could not keep (OpenCV keeps a short buffer), so the written video plays faster than real time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .predictor import Predictor
from .writers import OutputWriter

__all__ = ["LIVE_SCHEMES", "LiveRun", "LiveSource", "parse_live_source", "predict_live"]

#: URL schemes taken for live streams (anything else is a file, folder or glob)
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_CAMERA = re.compile(r"^camera:(\d+)$")
#: the frame rate written when the source does not say
_DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class LiveSource:
    """What to open (a camera index or a URL) and the name its outputs get."""

    spec: str
    rel: Path

    @property
    def target(self) -> int | str:
        match = _CAMERA.match(self.spec)
        return int(match.group(1)) if match else self.spec


def parse_live_source(arg: str) -> LiveSource | None:
    """The live source ``arg`` names (``camera:N`` or a URL with a stream scheme), else None."""
    match = _CAMERA.match(arg)
    if match:
        return LiveSource(arg, Path(f"camera{match.group(1)}"))
    scheme, sep, rest = arg.partition("://")
    if not sep or scheme.lower() not in LIVE_SCHEMES:
        return None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", rest).strip("_.") or scheme
    return LiveSource(arg, Path(f"{scheme.lower()}_{name[:80]}"))


@dataclass
class LiveRun:
    """What a live run did: frames predicted, seconds, and whether Ctrl-C ended it."""

    source: str
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    outputs: tuple[Path, ...] = ()


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _open(source: LiveSource) -> tuple[cv2.VideoCapture, float]:
    capture = cv2.VideoCapture(source.target)
    if not capture.isOpened():
        capture.release()
        raise DataError(f"{source.spec}: OpenCV could not open this live source")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, float(fps) if fps and 0 < fps < 1000 else _DEFAULT_FPS


def predict_live(
    predictor: Predictor,
    source: LiveSource,
    writer: OutputWriter,
    max_frames: int | None = None,
    progress: bool | None = None,
) -> LiveRun:
    """Predict ``source``'s frames one at a time (the lowest delay) into ``writer``'s videos until the source
    ends, ``max_frames`` are done, or Ctrl-C (then the videos are closed and kept)."""
    capture, fps = _open(source)
    run = LiveRun(source.spec)
    out = None
    start = time.perf_counter()
    try:
        with tqdm(unit="frame", desc=f"live {source.rel}", disable=None if progress is None else not progress) as bar:
            for frame in _frames(capture):
                if out is None:
                    h, w = frame.shape[:2]
                    problem = predictor.input_problem(h, w)
                    if problem is not None:
                        raise DataError(f"{source.spec}: {problem}")
                    out = writer.open_video(source.rel, ".mp4", fps, (w, h))
                out.write(frame, predictor.predict_batch([frame])[0].label)
                run.frames += 1
                bar.update(1)
                if max_frames is not None and run.frames >= max_frames:
                    break
    except KeyboardInterrupt:
        run.interrupted = True  # a clean stop: what was written is kept, whole
    finally:
        capture.release()
        if out is not None:
            run.outputs = tuple(out.close())
    if run.frames == 0 and not run.interrupted:
        raise DataError(f"{source.spec}: no frame came from this live source")
    run.seconds = time.perf_counter() - start
    return run
