"""benchmarks/camvid_test_check.py: the maintainers' check of the shipped CamVid models on a test split. The
project has no test split, so the demo's CamVid frames stand in for one (what is tested is the check's
plumbing and arithmetic, not a score)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .helpers import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "camvid_test_check.py"
DEMO = REPO / "demo" / "camvid-mini"


@pytest.fixture(scope="module")
def checker():
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def camvid_with_test(tmp_path_factory) -> Path:
    """A CamVid root whose test split is four of the demo's frames (list file and folders as CamVid's)."""
    root = tmp_path_factory.mktemp("camvid_test")
    lines = []
    for line in (DEMO / "val.txt").read_text().splitlines()[:4]:
        image, label = line.split()
        for rel in (image, label):
            dest = root / rel.replace("/val/", "/test/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEMO / rel, dest)
        lines.append(f"{image.replace('/val/', '/test/')} {label.replace('/val/', '/test/')}")
    (root / "test.txt").write_text("\n".join(lines) + "\n")
    return root


def test_compare_sets_each_recorded_figure_against_test(checker):
    row = checker.compare(52.0, {"heldout_0006R0_miou_flip": 39.12, "heldout_mean_miou_flip": 49.0})
    assert row["meets_goal"] is False
    assert row["recorded_minus_test"] == {"heldout_0006R0_miou_flip": -12.88, "heldout_mean_miou_flip": -3.0}
    assert row["within_tolerance"] == {"heldout_0006R0_miou_flip": False, "heldout_mean_miou_flip": True}
    assert checker.compare(55.0, {})["meets_goal"] is True


def test_recorded_figures_are_the_flip_ones(checker):
    figures = checker.recorded_figures({"val_miou": 59.39, "val_miou_flip": 61.01, "heldout_mean_miou_flip": 43.21})
    assert figures == {"heldout_mean_miou_flip": 43.21, "val_miou_flip": 61.01}


def test_every_shipped_camvid_model_is_checked_by_default(checker):
    names = checker.camvid_weights()
    assert "camvid-cpu60min" in names and "camvid-cpu60min-photometric-bdd100k" in names


def test_a_check_evaluates_writes_and_keeps_earlier_files(checker, camvid_with_test, tmp_path, capsys):
    out = tmp_path / "check"
    assert (
        checker.main(
            [
                "--camvid-root",
                str(camvid_with_test),
                "--weights",
                "camvid-cpu60min-photometric-bdd100k",
                "--out",
                str(out),
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    row = summary["weights"]["camvid-cpu60min-photometric-bdd100k"]
    assert row["num_images"] == 4 and len(row["iou"]) == len(summary["class_names"]) == 11
    evaluation = json.loads((out / "camvid-cpu60min-photometric-bdd100k.json").read_text())
    assert evaluation["split"] == "test" and evaluation["eval"]["flip"] is True  # the recipe's protocol
    assert row["test_miou_flip"] == round(100 * evaluation["miou"], 2)
    assert set(row["recorded"]) == {"heldout_0006R0_miou_flip", "heldout_0001TP_miou_flip", "heldout_mean_miou_flip"}
    for key, value in row["recorded"].items():
        assert row["recorded_minus_test"][key] == round(value - row["test_miou_flip"], 2)
    printed = capsys.readouterr().out
    assert "| camvid-cpu60min-photometric-bdd100k | 4 |" in printed and (out / "summary.md").is_file()
    # a second check into the same folder is refused and leaves the first one's files as they were
    before = (out / "summary.json").read_text()
    assert checker.main(["--camvid-root", str(camvid_with_test), "--out", str(out)]) == 2
    assert (out / "summary.json").read_text() == before
    assert "exists" in capsys.readouterr().err


def test_a_root_without_a_test_split_is_one_line_naming_it(checker, tmp_path, capsys):
    empty = tmp_path / "camvid_no_test"
    empty.mkdir()
    assert checker.main(["--camvid-root", str(empty), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(empty) in err and "test" in err
    assert not (tmp_path / "out").exists()
