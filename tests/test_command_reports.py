"""What long commands say (issue [2 of 5], items 4 and 13): `predict` ends with its throughput, `eval` with its
images per second and shows a bar on a terminal whatever the training config's `train.progress` says; a
training state predicts with its dataset's names, and weights that name no dataset are said to."""

from __future__ import annotations

import re
from pathlib import Path

import dsnet.cli.evaluate as cli_evaluate
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
    real = cli_evaluate.evaluate_weights

    def spy(*args, **kwargs):
        shown.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_evaluate, "evaluate_weights", spy)
    monkeypatch.setattr(cli_evaluate.sys.stderr, "isatty", lambda: True, raising=False)
    args = ["eval", str(DEMO), "--weights", "camvid-cpu60min", f"data.root={REPO / 'demo' / 'camvid-mini'}"]
    assert main([*args, "train.progress=false", "-o", str(tmp_path / "val.json")]) == 0
    assert shown == [True]  # train.progress is the training's: a terminal gets the evaluation's bar
    assert re.search(r"images: 13 in [\d.]+ s \([\d.]+ img/s, loading included\)", capsys.readouterr().out)


def test_a_training_state_gives_its_datasets_names_and_weights_without_any_say_so(tmp_path, capsys):
    """`predict --weights run/last.pth` used class_0..10 although the state's config names CamVid (item 4)."""
    import torch

    import dsnet
    from dsnet.data import describe_dataset

    model = dsnet.create_model("dsnet_head64", num_classes=11)
    state = {"model": model.state_dict(), "config": {"data": {"dataset": "camvid"}}, "model_name": "dsnet_head64"}
    torch.save(state, tmp_path / "last.pth")
    predictor = dsnet.Predictor("dsnet_head64", weights=tmp_path / "last.pth", device="cpu")
    assert predictor.class_names == describe_dataset("camvid").classes
    bare = tmp_path / "bare.pth"
    torch.save(model.state_dict(), bare)
    args = ["predict", "dsnet_head64", "--device", "cpu", str(VAL / "0016E5_07959.jpg")]
    assert main([*args, "--weights", str(bare), "-o", str(tmp_path / "a")]) == 0
    assert "the weights name no dataset: classes class_0..class_10 with generated colours" in capsys.readouterr().out
    assert main([*args, "--weights", str(tmp_path / "last.pth"), "-o", str(tmp_path / "b")]) == 0
    assert "name no dataset" not in capsys.readouterr().out
