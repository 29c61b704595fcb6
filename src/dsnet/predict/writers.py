"""Writing predictions: label PNGs, colour PNGs, overlays and videos, under one output folder.

Layout: ``OUT/labels/<rel>.png`` (8-bit label ids), ``OUT/color/<rel>.png`` (palette colours) and
``OUT/overlay/<rel>.png`` (the image blended with the colours), where ``<rel>`` is the input's
relative name (see :mod:`dsnet.predict.sources`). A video gives ``OUT/color/<rel>.<ext>`` and/or
``OUT/overlay/<rel>.<ext>`` videos, and per-frame label PNGs ``OUT/labels/<rel>/<frame>.png`` only
when asked. Images are written atomically; a folder that already holds files is refused unless
``overwrite`` (which replaces files of the same name and leaves the others alone), and one that another
process is writing into is refused (:func:`locked_output_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from ..data.label_space import LabelSpace
from ..data.labels import colorize
from ..errors import ConfigError, OutputError
from ..fileio import atomic_write, check_output_dir, describe_os_error
from ..locking import LOCK_FILE, FolderLock, holder_of

__all__ = [
    "LABEL_IDS",
    "OutputWriter",
    "VideoOutput",
    "blend",
    "check_output_dir",
    "locked_output_dir",
    "rank_lock_name",
]

LABEL_IDS = ("train", "dataset")
_VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def rank_lock_name(rank: int | str) -> str:
    """The lock file of one torchrun rank in a shared output folder (``"*"``: a glob of them all)."""
    return f"{LOCK_FILE}.rank{rank}"


@contextmanager
def locked_output_dir(out_dir: str | Path, lock_name: str = LOCK_FILE) -> Iterator[Path]:
    """Hold ``out_dir`` for this process while the block runs, as training holds its work dir: two runs
    writing into one folder at once would overwrite each other's outputs. Another process's run is an
    :class:`OutputError` naming it, raised before any work. The lock file goes with the block (a folder
    left empty by a failed command is removed by the command line's :class:`~dsnet.fileio.NewOutputs`)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    lock = FolderLock(out, remove=True, name=lock_name)  # one name per rank when ranks share the folder
    try:
        holder = lock.acquire()
    except OSError as e:
        raise OutputError(f"{out}: cannot write here ({describe_os_error(e)})") from e
    if holder is None:  # a plain run and a torchrun job's ranks take different lock files: check the others'
        others = sorted(out.glob(rank_lock_name("*"))) if lock_name == LOCK_FILE else [out / LOCK_FILE]
        holder = next((h for other in others if (h := holder_of(other)) is not None), None)
        if holder is not None:
            lock.release()
    if holder is not None:
        raise OutputError(
            f"{out}: in use by another process ({holder}) writing its predictions there; "
            "wait for it to finish or choose another output folder"
        )
    try:
        yield out
    finally:
        lock.release()


def blend(image: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * color`` as uint8: a label's colours laid over its image."""
    return cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)


def _write_png(path: Path, array: np.ndarray) -> None:
    bgr = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))


class VideoOutput:
    """The colour and/or overlay videos (and optional frame labels) of one input video."""

    def __init__(self, writer: OutputWriter, rel: Path, suffix: str, fps: float, size: tuple[int, int]) -> None:
        self.writer, self.rel, self.frames = writer, rel, 0
        ext = suffix.lower() if suffix.lower() in _VIDEO_CODECS else ".mp4"
        self.paths: dict[str, Path] = {}
        self._videos: dict[str, cv2.VideoWriter] = {}
        kinds = [k for k, on in (("color", writer.color), ("overlay", writer.overlay)) if on]
        self._partial: dict[str, Path] = {}
        for kind in kinds:
            path = writer.out_dir / kind / rel.with_name(rel.name + ext)
            partial = path.with_name(path.stem + ".partial" + ext)  # renamed when complete: a file there is whole
            path.parent.mkdir(parents=True, exist_ok=True)
            video = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*_VIDEO_CODECS[ext]), fps, size)
            self.paths[kind], self._partial[kind] = path, partial
            if not video.isOpened():
                self.close(remove=True)
                raise OutputError(f"{path}: cannot write a video here (OpenCV could not open a writer)")
            self._videos[kind] = video

    def write(self, frame: np.ndarray, label: np.ndarray) -> None:
        color = colorize(label, self.writer.label_space.palette)
        if "color" in self._videos:
            self._videos["color"].write(cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        if "overlay" in self._videos:
            self._videos["overlay"].write(cv2.cvtColor(blend(frame, color, self.writer.alpha), cv2.COLOR_RGB2BGR))
        if self.writer.video_labels:
            _write_png(self.writer.out_dir / "labels" / self.rel / f"{self.frames:06d}.png", self.writer.ids(label))
        self.frames += 1

    def close(self, remove: bool = False) -> list[Path]:
        """Finish the files (``remove``: delete them, for a video that failed part-way)."""
        for video in self._videos.values():
            video.release()
        for kind, partial in self._partial.items():
            if remove:
                partial.unlink(missing_ok=True)
            elif partial.exists():
                os.replace(partial, self.paths[kind])
        return list(self.paths.values())


class OutputWriter:
    """Writes each prediction's outputs; ``label_ids="dataset"`` writes the dataset's own ids
    (e.g. Cityscapes labelIds for its benchmark server) instead of training ids."""

    def __init__(
        self,
        out_dir: str | Path,
        label_space: LabelSpace,
        *,
        color: bool = False,
        overlay: bool = False,
        alpha: float = 0.5,
        label_ids: str = "train",
        video_labels: bool = False,
    ) -> None:
        if label_ids not in LABEL_IDS:
            raise ConfigError(f"label ids must be one of {', '.join(LABEL_IDS)}, got {label_ids!r}")
        if label_ids == "dataset" and label_space.dataset_ids is None:
            raise ConfigError(f"dataset {label_space.name!r}: no dataset label ids known; use label ids 'train'")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"overlay alpha must be in 0..1, got {alpha}")
        self.out_dir, self.label_space = Path(out_dir), label_space
        self.color, self.overlay, self.alpha = color, overlay, float(alpha)
        self.label_ids, self.video_labels = label_ids, video_labels

    def ids(self, label: np.ndarray) -> np.ndarray:
        """The label map as written: uint8 training ids or dataset ids."""
        label = np.asarray(label).astype(np.uint8, copy=False)
        return self.label_space.to_dataset_ids(label) if self.label_ids == "dataset" else label

    def write_image(self, rel: Path, image: np.ndarray, label: np.ndarray) -> list[Path]:
        """The label PNG, and the colour and overlay PNGs when asked; returns the paths written."""
        paths = [self.out_dir / "labels" / rel.with_name(rel.name + ".png")]
        _write_png(paths[0], self.ids(label))
        if self.color or self.overlay:
            color = colorize(label, self.label_space.palette)
            if self.color:
                paths.append(self.out_dir / "color" / rel.with_name(rel.name + ".png"))
                _write_png(paths[-1], color)
            if self.overlay:
                paths.append(self.out_dir / "overlay" / rel.with_name(rel.name + ".png"))
                _write_png(paths[-1], blend(image, color, self.alpha))
        return paths

    def outputs_of(self, rel: Path, is_video: bool, suffix: str = ".mp4") -> list[Path]:
        """The files an input's prediction writes (a video's per-frame labels aside): what ``--resume``
        checks. Every one is written whole or not at all (atomic writes; videos renamed when complete)."""
        if is_video:
            ext = suffix.lower() if suffix.lower() in _VIDEO_CODECS else ".mp4"
            kinds = [k for k, on in (("color", self.color), ("overlay", self.overlay)) if on]
            return [self.out_dir / kind / rel.with_name(rel.name + ext) for kind in kinds]
        kinds = ["labels", *(k for k, on in (("color", self.color), ("overlay", self.overlay)) if on)]
        return [self.out_dir / kind / rel.with_name(rel.name + ".png") for kind in kinds]

    def complete(self, rel: Path, is_video: bool, suffix: str = ".mp4") -> bool:
        """Whether every output of this input exists (a video with only per-frame labels never counts)."""
        paths = self.outputs_of(rel, is_video, suffix)
        return bool(paths) and all(p.is_file() for p in paths)

    def open_video(self, rel: Path, suffix: str, fps: float, size: tuple[int, int]) -> VideoOutput:
        """Writers for one video (``size`` is (W, H)); ``suffix`` picks the container (.avi or .mp4)."""
        return VideoOutput(self, rel, suffix, fps, size)

    @property
    def writes_video(self) -> bool:
        return self.color or self.overlay or self.video_labels
