"""Shipped weights by short name: the same name in create_model, load_weights, Predictor and --weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dsnet
from dsnet.data import build_dataset
from dsnet.errors import ConfigError, WeightsNotFoundError
from dsnet.models import pretrained
from dsnet.models.pretrained import PretrainedWeights, get_weights, resolve_weights


@pytest.fixture
def shipped(tmp_path, monkeypatch, synthetic_camvid):
    """A temporary registered name for a small CamVid model saved with its label space and metrics."""
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False).eval()
    info = build_dataset("camvid", synthetic_camvid, "train").label_space
    dsnet.save_weights(
        model.half(),
        tmp_path / "w.safetensors",
        {"model": "dsnet_head64", "metrics": json.dumps({"val_miou": 0.5})},
        label_space=info,
    )
    entry = PretrainedWeights("test-camvid", "dsnet_head64", "w.safetensors", "a test", directory=tmp_path)
    monkeypatch.setitem(pretrained._REGISTRY, entry.name, entry)
    return entry


def test_a_shipped_name_builds_the_model_with_its_class_count(shipped):
    model = dsnet.create_model("dsnet_head64", weights="test-camvid")
    assert model.lastlayer.conv2.weight.shape[0] == 11
    assert shipped.num_classes == 11 and shipped.metrics == {"val_miou": 0.5}
    assert "test-camvid: dsnet_head64, 11 classes" in shipped.summary()
    assert "test-camvid" in dsnet.list_weights("dsnet_head64")
    assert "test-camvid" not in dsnet.list_weights("dsnet_head128")


def test_a_shipped_name_predicts_with_its_label_space(shipped):
    predictor = dsnet.Predictor("dsnet_head64", weights="test-camvid")
    assert predictor.label_space.classes[0] == "Sky"
    out = predictor.predict(np.zeros((48, 64, 3), np.uint8))
    assert out.label.shape == (48, 64)


def test_a_shipped_name_for_another_model_is_an_error(shipped):
    with pytest.raises(ConfigError, match="dsnet_head64's, not dsnet_head128's"):
        dsnet.create_model("dsnet_head128", weights="test-camvid")


def test_an_existing_file_wins_over_a_shipped_name(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test-camvid").write_bytes(b"")
    assert str(resolve_weights("test-camvid")) == "test-camvid"
    assert resolve_weights(tmp_path / "w.safetensors") == tmp_path / "w.safetensors"
    state = {"a": torch.zeros(1)}
    assert resolve_weights(state) is state


def test_an_unknown_name_lists_the_shipped_ones(shipped):
    with pytest.raises(WeightsNotFoundError, match="test-camvd: no shipped weights.*did you mean 'test-camvid'"):
        get_weights("test-camvd")


MISSPELLED = "camvid-cpu60mn"
HINT = "camvid-cpu60mn: no shipped weights of that name (known: "


def test_a_misspelled_shipped_name_suggests_the_right_one_in_python(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="did you mean 'camvid-cpu60min'"):
        dsnet.create_model("dsnet_head64", weights=MISSPELLED)
    with pytest.raises(WeightsNotFoundError, match="did you mean 'camvid-cpu60min'"):
        dsnet.Predictor("dsnet_head64", weights=MISSPELLED)
    monkeypatch.chdir(tmp_path)
    (tmp_path / MISSPELLED).write_bytes(b"")  # a file of that name is the user's file, not a typo
    assert resolve_weights(MISSPELLED) == MISSPELLED
    assert resolve_weights("runs/x/camvid-cpu60mn") == "runs/x/camvid-cpu60mn"  # a path: the caller's message
    assert resolve_weights("nothing-like-it") == "nothing-like-it"


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "dsnet_head64", "IMAGES", "-o", "OUT"],
        ["export", "dsnet_head64", "--format", "onnx", "--size", "64", "96", "-o", "OUT.onnx"],
        ["bench", "dsnet_head64", "--size", "32", "64", "--seconds", "0.05"],
    ],
    ids=["predict", "export", "bench"],
)
def test_a_misspelled_shipped_name_suggests_the_right_one_in_every_command(args, tmp_path, capsys):
    from dsnet.cli import main

    images = Path(__file__).resolve().parents[1] / "demo" / "camvid-mini" / "images" / "val"
    args = [str(images) if a == "IMAGES" else str(tmp_path / a) if a.startswith("OUT") else a for a in args]
    assert main([*args, "--weights", MISSPELLED]) == 2
    err = capsys.readouterr().err
    assert HINT in err and "did you mean 'camvid-cpu60min'?" in err and len(err.strip().splitlines()) == 1


def test_a_missing_shipped_file_names_it(tmp_path, monkeypatch):
    entry = PretrainedWeights("gone", "dsnet_head64", "gone.safetensors", directory=tmp_path)
    monkeypatch.setitem(pretrained._REGISTRY, "gone", entry)
    with pytest.raises(WeightsNotFoundError, match="gone: shipped weights file .*gone.safetensors missing"):
        dsnet.create_model("dsnet_head64", weights="gone")


def test_dsnet_weights_lists_the_shipped_weights(shipped, capsys):
    from dsnet.cli import main

    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "test-camvid: dsnet_head64, 11 classes (a test); val_miou 0.50" in out
    assert str(shipped.path) in out
    assert main(["weights", "--model", "dsnet_head128"]) == 0
    assert "no shipped weights for dsnet_head128" in capsys.readouterr().out


def test_weights_carry_their_training_size_and_the_predictor_scales_to_it(tmp_path):
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False).eval()
    meta = {"model": "dsnet_head64", "input_long_side": "32"}
    path = dsnet.save_weights(model, tmp_path / "w.safetensors", meta)
    predictor = dsnet.Predictor("dsnet_head64", weights=path, device="cpu")
    assert predictor.input_long_side == 32
    assert predictor.options_for(48, 64).scales == (0.5,) and predictor.options_for(16, 32).scales == (1.0,)
    assert predictor(np.zeros((48, 64, 3), np.uint8)).shape == (48, 64)  # labels at the input's size
    own = dsnet.Predictor("dsnet_head64", weights=path, device="cpu", options=dsnet.InferenceOptions())
    assert own.input_long_side is None and own.options_for(48, 64).scales == (1.0,)  # explicit options win
    bad = dsnet.save_weights(model, tmp_path / "bad.safetensors", {"model": "dsnet_head64", "input_long_side": "x"})
    with pytest.raises(ConfigError, match="metadata input_long_side='x' is not a size in 16..16384 pixels"):
        dsnet.Predictor("dsnet_head64", weights=bad, device="cpu")
