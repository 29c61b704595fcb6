"""The CamVid models shipped with the package (`camvid-cpu60min`, its `-photometric` and
`-photometric-bdd100k` siblings): files, metadata and predictions.

These read the real file under ``src/dsnet/models/weights/``; nothing here needs ``../shared``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors import safe_open

import dsnet
from dsnet.data import describe_dataset
from dsnet.models.pretrained import get_weights

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "demo" / "camvid-mini"
#: every CamVid model shipped; each test runs on each
SHIPPED = ("camvid-cpu60min", "camvid-cpu60min-photometric", "camvid-cpu60min-photometric-bdd100k")


@pytest.fixture(scope="module", params=SHIPPED)
def entry(request):
    return get_weights(request.param)


def test_the_file_is_fp16_and_under_15_mb(entry):
    assert entry.path.stat().st_size < 15e6
    with safe_open(str(entry.path), framework="pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    assert "F32" not in dtypes and "F16" in dtypes


def test_the_metadata_carries_label_space_recipe_scores_and_licence(entry):
    meta = entry.metadata
    assert entry.model == meta["model"] == "dsnet_head64"
    assert entry.num_classes == 11
    space = json.loads(meta["label_space"])
    assert space["classes"] == list(describe_dataset("camvid").classes)
    assert "CC BY-NC 4.0" in meta["data_licence"]
    assert meta["trained_on"].split(" + ")[0] == "trainval" and meta["amp"] in ("bf16", "none")
    extras = {part.split(":")[0] for part in meta["trained_on"].split(" + ")[1:]}  # data.extra_train, if any
    recipe_data = yaml.safe_load((REPO / meta["recipe"]).read_text())["data"]
    assert extras == {extra["dataset"] for extra in recipe_data.get("extra_train") or []}
    if "bdd100k" in extras:  # BDD100K's licence must go with every copy: named in the header, its text beside
        assert "BDD100K" in meta["data_licence"] and "Regents of the University of California" in meta["data_licence"]
        licence = entry.path.parent / "BDD100K_DATA_LICENSE.rst"
        assert "not-for-profit purposes" in licence.read_text()
    else:
        assert "BDD100K" not in meta["data_licence"]
    # a score on images the weights never saw: val from the recipe trained on train alone, or whole CamVid
    # sequences the recipe was trained without (heldout_split names them; one score per sequence)
    metrics = entry.metrics
    heldout = sorted(k for k in metrics if k.startswith("heldout_") and k.endswith("_miou_flip"))
    assert {"val_miou", "val_miou_flip"} <= set(metrics) or heldout
    assert all(0 < value < 100 for value in metrics.values())
    if heldout:
        splits = meta["heldout_split"].split(",")
        assert set(splits) <= {"held-out-0001TP", "held-out-0006R0", "held-out-0016E5"}
        named = {f"heldout_{s.removeprefix('held-out-')}_miou_flip" for s in splits}
        if len(splits) == 1:
            assert heldout == ["heldout_miou_flip"]
        else:
            assert named <= set(heldout) and "heldout_mean_miou_flip" in metrics
    recipe = REPO / meta["recipe"]
    config = yaml.safe_load(recipe.read_text())  # the recipe is shipped beside it, under configs/
    assert config["model"]["name"] == "dsnet_head64" and config["train"]["minutes"] == 60
    assert Path(meta["recipe"]).stem == meta["config"]  # the run was made from that very file
    assert int(meta["iterations"]) > 0 and float(meta["wall_minutes"]) <= 60.5
    assert meta["cpu_flags"]  # the iterations an hour holds depend on the CPU


def test_create_model_by_name_loads_every_tensor(entry):
    model = dsnet.create_model("dsnet_head64", weights=entry.name)
    assert model.lastlayer.conv2.weight.shape[0] == 11


def test_it_segments_the_demo_images(entry):
    """Labels agree with CamVid's on the shipped demo images (part of its train+val training data, so
    this checks that the file works, not how well the model generalises: that is the val figure)."""
    predictor = dsnet.Predictor("dsnet_head64", weights=entry.name, device="cpu")
    assert predictor.class_names[:3] == ("Sky", "Building", "Pole")
    right = counted = 0
    for line in (MINI / "val.txt").read_text().split("\n")[:4]:
        image, label = line.split()
        truth = np.asarray(Image.open(MINI / label))
        predicted = predictor(str(MINI / image))
        assert predicted.shape == truth.shape
        valid = truth < 11
        right += int((predicted[valid] == truth[valid]).sum())
        counted += int(valid.sum())
    assert right / counted > 0.8
