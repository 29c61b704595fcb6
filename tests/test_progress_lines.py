"""Long commands say how far they are and how fast they went (issue [2 of 5], item 13): `predict` ends with its
throughput, `eval` with its images per second and shows a bar on a terminal whatever the training config's
`train.progress` says."""

from __future__ import annotations

import re
from pathlib import Path

import dsnet.cli as cli
from dsnet.cli import main

REPO = Path(__file__).resolve().parents[1]
VAL = REPO / "demo" / "camvid-mini" / "images" / "val"
DEMO = REPO / "demo" / "dsnet-head64_1xb8-cpu1.25min_camvid-mini-192x256.yaml"


def test_predict_ends_with_its_throughput(tmp_path, capsys):
    args = ["predict", "dsnet_head64", "--weights", "camvid-cpu60min", "--device", "cpu", str(VAL), "-o"]
    assert main([*args, str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"predicted 13 image\(s\) into .* in [\d.]+ s \([\d.]+ img/s\)$", line), line


def test_eval_says_its_speed_and_shows_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    shown = []
    real = cli.evaluate_weights

    def spy(*args, **kwargs):
        shown.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "evaluate_weights", spy)
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    args = ["eval", str(DEMO), "--weights", "camvid-cpu60min", f"data.root={REPO / 'demo' / 'camvid-mini'}"]
    assert main([*args, "train.progress=false", "-o", str(tmp_path / "val.json")]) == 0
    assert shown == [True]  # train.progress is the training's: a terminal gets the evaluation's bar
    assert re.search(r"images: 13 in [\d.]+ s \([\d.]+ img/s, loading included\)", capsys.readouterr().out)
