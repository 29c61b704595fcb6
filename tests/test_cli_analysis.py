"""`dsnet rf`, `dsnet erf` and `dsnet atrous-padding` on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dsnet
from dsnet.cli import main


def test_rf_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rf", "dsnet_head64", "--size", "64", "64", "--depth", "1", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["layer3_"]["rf"] == [159, 159] and rows["layer3_"]["branch"] == "spatial"
    assert "layer3.0" not in rows  # depth 1 only
    assert main(["rf", "dsnet_head64", "--size", "64", "64", "--within", "layer3.0", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert "layer3.0.conv_list.2" in out and "1,5,9,13" in out


def test_atrous_padding_prints_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["atrous-padding", "dsnet_head64", "--size", "224", "224", "--size", "1024", "2048"]
    assert main([*args, "--plot-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "22.4%" in out and "3.9%" in out and "d2x3+d3x3+d15x10" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "atrous_padding_dsnet_head64.png",
        "atrous_padding_table1.png",
    ]
    assert main([*args, "--plot-dir", str(tmp_path)]) == 2  # plots are not overwritten silently
    assert "--overwrite" in capsys.readouterr().err


def test_erf_writes_maps_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "erf"
    args = ["erf", "dsnet_head64", "--weights", "-", "-", "--num-images", "1", "--size", "32", "32", "-o", str(out)]
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "erf_compare.png" in names and "erf.json" in names and len([n for n in names if n.endswith(".npy")]) == 2
    meta = json.loads((out / "erf.json").read_text())
    assert [set(r["ratios"]) for r in meta["runs"]] == [{"0.2", "0.3", "0.5", "0.99"}] * 2
    assert main(args) == 2 and "already holds" in capsys.readouterr().err
    bad = ["erf", "dsnet_head64", "dsnet_head128", "--weights", "a", "b", "c", "-o", str(tmp_path / "x")]
    assert main(bad) == 2 and "one per model" in capsys.readouterr().err


def test_erf_takes_the_class_count_from_the_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trained weights of another class count than 19 load (initialised runs of the model get the same
    count), and a checkpoint that does not fit stops the command before it writes anything."""
    weights = tmp_path / "w11.pth"
    torch.save(dsnet.create_model("dsnet_head64", num_classes=11).state_dict(), weights)
    out = tmp_path / "erf"
    args = ["erf", "dsnet_head64", "--weights", "-", str(weights), "--num-images", "1", "--size", "32", "32"]
    assert main([*args, "-o", str(out)]) == 0
    assert len(list(out.glob("*.npy"))) == 2
    wrong = tmp_path / "w128.pth"
    torch.save(dsnet.create_model("dsnet_head128", num_classes=11).state_dict(), wrong)
    bad = ["erf", "dsnet_head64", "--weights", "-", str(wrong), "--num-images", "1", "--size", "32", "32"]
    assert main([*bad, "-o", str(tmp_path / "bad")]) == 2
    assert "fits dsnet_head128" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
