"""benchmarks/ship_weights.py: the scores it writes into shipped weights from held-out runs (one or several
sequences), read from the runs' own files; nothing is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .helpers import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ship_weights.py"


@pytest.fixture(scope="module")
def ship():
    return load_script(SCRIPT)


def _run(root: Path, split: str, flip_miou: float, noflip_miou: float | None) -> Path:
    """A finished held-out run as `dsnet train` and `dsnet eval -o` leave it: config, summary, no-flip eval."""
    run = root / split
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"val_split": split}, "eval": {"flip": True}}))
    (run / "summary.json").write_text(json.dumps({"final": {"miou": flip_miou}}))
    if noflip_miou is not None:
        (run / "eval_noflip.json").write_text(json.dumps({"miou": noflip_miou}))
    return run


def test_one_heldout_run_keeps_the_plain_names(ship, tmp_path):
    metrics, splits = ship._heldout_metrics([_run(tmp_path, "held-out-0006R0", 0.3667, 0.3599)])
    assert metrics == {"heldout_miou": 35.99, "heldout_miou_flip": 36.67}
    assert splits == ["held-out-0006R0"]


def test_several_heldout_runs_are_named_by_sequence_with_their_mean(ship, tmp_path):
    runs = [_run(tmp_path, "held-out-0006R0", 0.40, 0.38), _run(tmp_path, "held-out-0001TP", 0.20, None)]
    metrics, splits = ship._heldout_metrics(runs)
    assert splits == ["held-out-0006R0", "held-out-0001TP"]
    assert metrics["heldout_0006R0_miou_flip"] == 40.0 and metrics["heldout_0001TP_miou_flip"] == 20.0
    assert metrics["heldout_mean_miou_flip"] == 30.0
    # the no-flip mean would rest on one sequence only: it is left out rather than mislabelled
    assert metrics["heldout_0006R0_miou"] == 38.0 and "heldout_mean_miou" not in metrics


def test_two_runs_on_one_split_are_refused(ship, tmp_path):
    first = _run(tmp_path, "held-out-0006R0", 0.4, 0.4)
    second = tmp_path / "again"
    second.mkdir()
    for name in ("config.yaml", "summary.json"):
        (second / name).write_text((first / name).read_text())
    with pytest.raises(SystemExit, match="same split"):
        ship._heldout_metrics([first, second])


def test_weights_trained_with_extra_data_name_it_and_carry_its_licence(ship):
    extra = {"dataset": "bdd100k", "root": "x", "split": "train", "class_map": "cityscapes-to-camvid", "repeat": 4}
    config = {"data": {"train_split": "trainval", "extra_train": [extra, {**extra, "split": "val"}]}}
    assert ship._trained_on(config) == "trainval + bdd100k:train x4 + bdd100k:val x4"
    licence = ship._data_licence(config)
    assert "CC BY-NC 4.0" in licence and licence.count("BDD100K (") == 1 and "BDD100K_DATA_LICENSE.rst" in licence
    plain = {"data": {"train_split": "trainval"}}
    assert ship._trained_on(plain) == "trainval" and ship._data_licence(plain) == ship.DATA_LICENCE


def test_an_extra_dataset_without_a_recorded_licence_stops_the_shipping(ship):
    config = {"data": {"train_split": "trainval", "extra_train": [{"dataset": "ade20k", "root": "x"}]}}
    with pytest.raises(SystemExit, match="no licence recorded for ade20k"):
        ship._data_licence(config)


def test_a_datasets_licence_text_goes_beside_weights_written_outside_the_package(ship, tmp_path):
    config = {
        "data": {"extra_train": [{"dataset": "bdd100k", "split": "train"}, {"dataset": "bdd100k", "split": "val"}]}
    }
    copied = ship._copy_licence_texts(config, tmp_path)
    assert copied == [tmp_path / "BDD100K_DATA_LICENSE.rst"]
    assert copied[0].read_bytes() == (ship.WEIGHTS_DIR / "BDD100K_DATA_LICENSE.rst").read_bytes()
    assert ship._copy_licence_texts(config, tmp_path) == []  # already there, same text: left alone
    assert ship._copy_licence_texts({"data": {}}, tmp_path / "none") == []  # CamVid alone: no extra text
