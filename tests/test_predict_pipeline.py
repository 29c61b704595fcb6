"""The read-ahead / write-behind threads of ``dsnet predict``: order, errors surfacing in the caller,
a failed write naming its file, and a prompt stop on Ctrl-C."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsnet
from dsnet.cli import main
from dsnet.errors import OutputError
from dsnet.predict import Predictor
from dsnet.predict.pipeline import ReadAhead, WriteBehind

from .test_predict import MODEL, _calibrated_model, _image


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dsnet-")]


def test_read_ahead_keeps_order_and_raises_the_sources_error_where_it_happened() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise ValueError("item 5 is broken")

    got = []
    with ReadAhead(source(), depth=2) as reader, pytest.raises(ValueError, match="item 5 is broken"):
        for x in reader:
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stops_an_endless_source_promptly() -> None:
    released = threading.Event()

    def endless() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            released.set()  # the generator's cleanup runs (a video capture would be released)

    start = time.perf_counter()
    with ReadAhead(endless(), depth=3) as reader:
        assert next(iter(reader)) == 0
    assert time.perf_counter() - start < 2 and released.wait(2)
    assert "dsnet-read" not in _threads()


def test_write_behind_runs_in_order_and_surfaces_the_first_failure() -> None:
    done: list[int] = []
    with WriteBehind(depth=2) as behind:
        for k in range(6):
            behind.submit(done.append, k)
        behind.finish()
    assert done == list(range(6))

    def fail(k: int) -> None:
        if k == 2:
            raise OutputError(f"out/{k}.png: cannot write (disk full)")
        done.append(k)

    done.clear()
    with pytest.raises(OutputError, match="out/2.png: cannot write"), WriteBehind(depth=1) as behind:
        for k in range(50):
            behind.submit(fail, k)
            time.sleep(0.001)
        behind.finish()
    assert done == [0, 1]  # nothing after the failure runs
    assert "dsnet-write" not in _threads()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline") / "w.safetensors"
    return dsnet.save_weights(_calibrated_model(19), path, metadata={"model": MODEL, "num_classes": "19"})


def _folder(root: Path, count: int) -> Path:
    root.mkdir()
    for k in range(count):
        Image.fromarray(_image(24, 32, seed=k)).save(root / f"{k:02d}.png")
    return root


def test_a_failed_write_stops_the_run_naming_the_file(weights: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = _folder(tmp_path / "in", 6)
    out = tmp_path / "out"
    (out / "labels" / "03.png").mkdir(parents=True)  # a folder where the label file goes: the write fails
    args = ["predict", MODEL, str(folder), "--weights", str(weights), "-o", str(out), "--overwrite"]
    assert main([*args, "--batch-size", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "03.png: cannot write" in err
    assert sorted(p.name for p in (out / "labels").glob("*.png") if p.is_file()) == ["00.png", "01.png", "02.png"]
    assert not _threads()


def test_ctrl_c_during_prediction_stops_the_threads(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path / "in", 8)
    calls = {"n": 0}
    original = Predictor.predict_batch

    def interrupted(self: Predictor, images: list[np.ndarray], return_probs: bool = False) -> list:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, images, return_probs)

    monkeypatch.setattr(Predictor, "predict_batch", interrupted)
    start = time.perf_counter()
    args = ["predict", MODEL, str(folder), "--weights", str(weights), "-o", str(tmp_path / "out"), "--batch-size", "2"]
    assert main(args) == 130
    assert time.perf_counter() - start < 30 and "interrupted" in capsys.readouterr().err
    assert not _threads()
