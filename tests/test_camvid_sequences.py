"""CamVid's sequence-held-out splits: some sequences of train + val (or a later half) to validate on, the rest to
train on."""

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


def test_parts_join_with_plus_and_late_takes_the_later_half_by_frame_number(tmp_path: Path) -> None:
    root = write_camvid_like(tmp_path, {"train": 5, "val": 3})
    held_out = build_dataset("camvid", root, "held-out-val+train-late")
    rest = build_dataset("camvid", root, "without-val+train-late")
    late = {f"train_{i:03d}.png" for i in (2, 3, 4)}  # the later half of 5 frames, the middle one included
    assert _names(held_out) == {f"val_{i:03d}.png" for i in range(3)} | late
    assert _names(rest) == {"train_000.png", "train_001.png"}
    assert _names(build_dataset("camvid", root, "held-out-train-late")) == late
    with pytest.raises(DataError, match="no frames of sequence 'Seq05VD'"):
        build_dataset("camvid", root, "held-out-val+Seq05VD-late")
    with pytest.raises(ValueError, match="valid splits: .*held-out-SEQ"):
        build_dataset("camvid", root, "held-out-val+")


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


def test_the_test_like_split_is_an_unseen_street_and_the_later_half_of_a_seen_one() -> None:
    """held-out-0006R0+0001TP-late mirrors test's make-up: a street in no training frame, and frames that
    continue a sequence whose earlier frames are trained on."""
    root = shared_path("data", "camvid")
    everything = _names(build_dataset("camvid", root, "trainval"))
    held_out = _names(build_dataset("camvid", root, "held-out-0006R0+0001TP-late"))
    rest = _names(build_dataset("camvid", root, "without-0006R0+0001TP-late"))
    assert held_out.isdisjoint(rest) and held_out | rest == everything
    seen = sorted(name for name in rest if name.startswith("0001TP"))
    continued = sorted(name for name in held_out if name.startswith("0001TP"))
    assert len(seen) == len(continued) == 31 and seen[-1] < continued[0]
    assert len(held_out) - len(continued) == 101 and not any(name.startswith("0006R0") for name in rest)
