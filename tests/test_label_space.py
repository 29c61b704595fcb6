"""One label space from the dataset to the weights to every output: each dataset's description round-trips
through saved weights into ``Predictor``; the class count comes from the weights in every command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open

import dsnet
from dsnet.cli import main
from dsnet.data import LABEL_SPACE_KEY, LabelSpace, describe_dataset, list_datasets
from dsnet.engine.config import load_config
from dsnet.engine.evaluate_run import evaluate_weights
from dsnet.engine.trainer import Trainer
from dsnet.errors import CheckpointError, ConfigError
from dsnet.predict import Predictor

from .helpers import write_tiny_config

MODEL = "dsnet_head64"

FOLDER_CLASSES = ["water", "reed", "boat"]
FOLDER_PALETTE = [[0, 0, 255], [0, 160, 0], [200, 120, 40]]


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset with its own class names, colours and mask value for 'ignore' (only its YAML counts)."""
    root = tmp_path_factory.mktemp("lake")
    config = {"name": "lake", "classes": FOLDER_CLASSES, "palette": FOLDER_PALETTE, "ignore_index": 100}
    (root / "dataset.yaml").write_text(yaml.safe_dump(config))
    return root


# every registered dataset, CamVid in both class orders, and a folder dataset with its own names
CASES = [*[(name, {}) for name in list_datasets()], ("camvid", {"class_order": "dsnet"})]


def _describe(name: str, options: dict[str, str], folder_root: Path) -> LabelSpace:
    info = describe_dataset(name, folder_root if name == "folder" else None, **options)
    assert info is not None
    return info


def _save(path: Path, num_classes: int, **kwargs: object) -> Path:
    return dsnet.save_weights(dsnet.create_model(MODEL, num_classes=num_classes), path, **kwargs)  # type: ignore[arg-type]


def _predictor(weights: Path, **kwargs: object) -> Predictor:
    return Predictor(MODEL, weights=weights, device="cpu", deploy_form=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "options"), CASES, ids=["-".join([n, *o.values()]) for n, o in CASES])
def test_every_dataset_label_space_round_trips_through_weights(
    name: str, options: dict[str, str], folder_root: Path, tmp_path: Path
) -> None:
    info = _describe(name, options, folder_root)
    path = _save(tmp_path / "best.safetensors", info.num_classes, metadata={"model": MODEL}, label_space=info)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["num_classes"] == str(info.num_classes) and meta["model"] == MODEL
    assert json.loads(meta[LABEL_SPACE_KEY])["classes"] == list(info.classes)

    p = _predictor(path)
    assert p.label_space == info  # every field: name, classes, palette, ignore index, dataset ids, class order
    assert p.class_names == info.classes and p.palette == info.palette
    assert p.label_space.ignore_index == 255 and p.runner.num_classes == info.num_classes
    assert p.label_space.dataset_ids is not None
    train = np.arange(info.num_classes, dtype=np.uint8)
    assert p.label_space.to_dataset_ids(train).tolist() == list(info.dataset_ids or ())
    assert p.colorize(train[None])[0].tolist() == [list(c) for c in info.palette]


def test_the_descriptions_say_what_each_dataset_means(folder_root: Path) -> None:
    """The ids and names that the round trip carries are the datasets' own."""
    segnet, authors = describe_dataset("camvid"), describe_dataset("camvid", class_order="dsnet")
    assert segnet is not None and authors is not None and describe_dataset("camvid-dsnet") == authors
    assert authors.classes[0] == "Bicyclist" and authors.dataset_ids is not None and authors.dataset_ids[0] == 10
    for k, name in enumerate(authors.classes):  # the same class keeps its colour and SegNet id in either order
        j = segnet.classes.index(name)
        assert authors.palette[k] == segnet.palette[j] and authors.dataset_ids[k] == j
    assert authors.to_dataset_ids(np.array([255], np.uint8)).tolist() == [11]  # SegNet's void
    ade = describe_dataset("ade20k")
    assert ade is not None and ade.to_dataset_ids(np.array([0, 149, 255], np.uint8)).tolist() == [1, 150, 0]
    lake = describe_dataset("folder", folder_root)
    assert lake is not None and lake.name == "lake" and lake.classes == tuple(FOLDER_CLASSES)
    assert lake.to_dataset_ids(np.array([2, 255], np.uint8)).tolist() == [2, 100]  # the YAML's ignore value
    assert describe_dataset("folder") is None  # its names live in its YAML
    with pytest.raises(ConfigError, match="unknown dataset 'mars'"):
        describe_dataset("mars")


def test_a_camvid_model_in_the_authors_order_is_drawn_with_its_names(tmp_path: Path) -> None:
    """Old weights name only their dataset; --dataset (an alias of the registry) or new metadata fix that."""
    old = _save(tmp_path / "old.safetensors", 11, metadata={"model": MODEL, "dataset": "camvid", "num_classes": "11"})
    assert _predictor(old).class_names[0] == "Sky"  # SegNet order: the old default
    assert _predictor(old, dataset="camvid-dsnet").class_names[0] == "Bicyclist"
    info = describe_dataset("camvid", class_order="dsnet")
    assert info is not None
    new = _save(tmp_path / "new.safetensors", 11, metadata={"dataset": "camvid"}, label_space=info)
    assert _predictor(new).label_space == info


def test_bad_label_space_metadata_names_the_file_and_key(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "w.safetensors", 11, metadata={LABEL_SPACE_KEY: '{"name": "x", "classes": 3, "palette": []}'}
    )
    with pytest.raises(CheckpointError, match=rf"w.safetensors: metadata {LABEL_SPACE_KEY}: .*classes"):
        _predictor(path)
    info = describe_dataset("cityscapes")
    with pytest.raises(ConfigError, match="the label space has 19 classes but the model's classifier 11"):
        _save(tmp_path / "v.safetensors", 11, label_space=info)


@pytest.fixture(scope="module")
def bare_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11-class weights without metadata (as the authors' files come)."""
    path = tmp_path_factory.mktemp("bare") / "camvid.pth"
    torch.save(dsnet.create_model(MODEL, num_classes=11).state_dict(), path)
    return path


def test_predict_takes_the_class_count_from_weights_without_metadata(bare_weights: Path, tmp_path: Path) -> None:
    p = _predictor(bare_weights)
    assert p.runner.num_classes == 11 and p.class_names == tuple(f"class_{k}" for k in range(11))
    safetensors = _save(tmp_path / "bare.safetensors", 11)  # no metadata: the count from the header's shapes
    assert _predictor(safetensors).label_space.num_classes == 11
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "a.png")
    args = ["predict", MODEL, str(tmp_path / "a.png"), "--weights", str(bare_weights), "-o", str(tmp_path / "out")]
    assert main(args) == 0
    assert (tmp_path / "out" / "labels" / "a.png").is_file()


def test_a_class_count_that_contradicts_the_weights_is_an_error(
    bare_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="the weights have 11 classes, but --num-classes is 19"):
        _predictor(bare_weights, num_classes=19)
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["predict", MODEL, str(tmp_path / "a.png"), "--weights", str(bare_weights), "-o", str(out)]
    assert main([*args, "--num-classes", "19"]) == 2
    export = ["export", MODEL, "--weights", str(bare_weights), "--format", "torch", "--size", "64", "64"]
    assert main([*export, "--num-classes", "19", "-o", str(tmp_path / "m.pt2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("the weights have 11 classes, but --num-classes is 19" in line for line in err)
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.slow
def test_export_takes_the_class_count_from_the_weights(bare_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt2"
    args = ["export", MODEL, "--weights", str(bare_weights), "--format", "torch", "--size", "64", "64", "-o", str(out)]
    assert main([*args, "--no-check"]) == 0
    program = torch.export.load(str(out))
    assert program.module()(torch.zeros(1, 3, 64, 64)).shape[1] == 11


def test_training_writes_the_whole_label_space_into_its_weights(synthetic_camvid: Path, tmp_path: Path) -> None:
    """A CamVid run in the authors' class order: best/final weights carry it, predict and eval read them back."""
    config = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=1, val_interval=1)
    overrides = [f"train.work_dir={tmp_path / 'run'}", "train.max_val_samples=1", "data.options={class_order: dsnet}"]
    cfg = load_config(config, overrides)
    Trainer(cfg).run()
    expected = describe_dataset("camvid", class_order="dsnet")
    for name in ("best.safetensors", "final.safetensors"):
        with safe_open(str(tmp_path / "run" / name), framework="pt") as f:
            meta = f.metadata()
        assert LabelSpace.from_json(meta[LABEL_SPACE_KEY]) == expected
        assert meta["dataset"] == "camvid" and meta["num_classes"] == "11" and meta["model"] == MODEL
    p = _predictor(tmp_path / "run" / "best.safetensors")
    assert p.label_space == expected and p.class_names[0] == "Bicyclist"
    # eval takes the class count from the config: one that contradicts the weights is one clear line
    wrong = load_config(config, [*overrides, "model.num_classes=19"])
    message = r"best.safetensors: the weights have 11 classes, but model.num_classes is 19"
    with pytest.raises(ConfigError, match=message):
        evaluate_weights(wrong, tmp_path / "run" / "best.safetensors", out=tmp_path / "eval.json", device="cpu")
