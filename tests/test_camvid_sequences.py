"""CamVid's sequence-held-out splits: one sequence of train + val to validate on, the others to train on."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsnet.data import build_dataset
from dsnet.errors import DataError

from .conftest import shared_path
from .synthetic import write_camvid_like


def _names(dataset) -> set[str]:
    return {Path(image).name for image, _ in dataset.samples}


def test_held_out_and_without_split_train_and_val_by_sequence(tmp_path: Path) -> None:
    root = write_camvid_like(tmp_path, {"train": 5, "val": 3})  # file names start with their "sequence"
    held_out, rest = build_dataset("camvid", root, "held-out-val"), build_dataset("camvid", root, "without-val")
    assert _names(held_out) == {f"val_{i:03d}.png" for i in range(3)}
    assert _names(rest) == {f"train_{i:03d}.png" for i in range(5)}
    assert held_out[0][1].shape[-2:] == (72, 96)  # images and labels load as in any split
    with pytest.raises(DataError, match="no frames of sequence 'Seq05VD' in train \\+ val \\(sequences: train, val\\)"):
        build_dataset("camvid", root, "held-out-Seq05VD")
    with pytest.raises(ValueError, match="valid splits: train, val, test, trainval, held-out-SEQ, without-SEQ"):
        build_dataset("camvid", root, "heldout-val")


def test_the_real_sequences_partition_train_and_val() -> None:
    root = shared_path("data", "camvid")
    everything = _names(build_dataset("camvid", root, "train")) | _names(build_dataset("camvid", root, "val"))
    counts = {}
    for sequence in ("0001TP", "0006R0", "0016E5"):
        held_out = _names(build_dataset("camvid", root, f"held-out-{sequence}"))
        rest = _names(build_dataset("camvid", root, f"without-{sequence}"))
        assert held_out.isdisjoint(rest) and held_out | rest == everything
        assert all(name.startswith(sequence) for name in held_out)
        counts[sequence] = len(held_out)
    assert counts == {"0001TP": 62, "0006R0": 101, "0016E5": 305}
