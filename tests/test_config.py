"""Config files: strict keys and types, overrides, and names that say what they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dsnet
from dsnet.engine.build import build_datasets
from dsnet.engine.config import Config, ConfigError, apply_overrides, config_to_dict, load_config
from dsnet.engine.config_checks import validate_config
from dsnet.engine.pretrain import load_pretrain_config

ALL_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
CONFIGS = [p for p in ALL_CONFIGS if "imagenet" not in p.stem]  # segmentation runs
PRETRAIN_CONFIGS = [p for p in ALL_CONFIGS if "imagenet" in p.stem]  # `dsnet pretrain` recipes
# the run's length: thousands of iterations (`-87k_`), or minutes of wall time on a CPU (`-cpu60min_`),
# then the recipe's own tags where one recipe has variants (`-cpu60min-photometric_`, `-photometric-bdd100k_`)
NAME = re.compile(
    r"dsnet-(?P<model>head64|head128|head256|base)_(?P<gpus>\d+)xb(?P<batch>\d+)-"
    r"(?:(?P<iters>[\d.]+)k|cpu(?P<minutes>[\d.]+)min)(?P<tags>(?:-[a-z0-9]+)*)"
    r"_(?P<dataset>[a-z0-9]+)-(?P<h>\d+)x(?P<w>\d+)"
)


def test_there_is_a_config_for_every_run_of_the_authors() -> None:
    runs = {(m["model"], m["dataset"]) for m in (NAME.fullmatch(p.stem) for p in CONFIGS) if m}
    expected = {
        ("head128", "cityscapes"),
        ("base", "cityscapes"),
        ("head256", "ade20k"),
        ("base", "ade20k"),
        ("head64", "bdd100k"),
        ("base", "bdd100k"),
        ("base", "camvid"),
    }
    assert expected <= runs


PRETRAIN_NAME = re.compile(
    r"dsnet-(?P<model>(?:base-)?imagenet)_(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<epochs>\d+)e_imagenet-(?P<size>\d+)"
)


def test_every_config_is_a_segmentation_or_a_pretraining_run() -> None:
    assert len(CONFIGS) >= 7 and len(PRETRAIN_CONFIGS) >= 2
    assert set(CONFIGS) | set(PRETRAIN_CONFIGS) == set(ALL_CONFIGS)


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=[p.stem for p in PRETRAIN_CONFIGS])
def test_pretrain_config_loads_and_its_name_matches_its_content(path: Path) -> None:
    cfg = load_pretrain_config(path)
    m = PRETRAIN_NAME.fullmatch(path.stem)
    assert m, f"{path.name} does not follow dsnet-[base-]imagenet_<gpus>xb<batch>-<epochs>e_imagenet-<size>"
    assert cfg.model.name == "dsnet_" + m["model"].replace("-", "_")
    assert cfg.model.name in dsnet.list_models(task="classification")
    assert cfg.data.batch_size == int(m["batch"])
    assert cfg.train.epochs == int(m["epochs"])
    assert cfg.data.crop_size == int(m["size"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_its_name_matches_its_content(path: Path) -> None:
    cfg = load_config(path)
    m = NAME.fullmatch(path.stem)
    assert m, f"{path.name} does not follow dsnet-<model>_<gpus>xb<batch>-<iters>k|cpu<minutes>min_<dataset>-<H>x<W>"
    assert cfg.model.name == f"dsnet_{m['model']}"
    assert cfg.model.name in dsnet.list_models()
    assert cfg.data.batch_size == int(m["batch"])
    assert cfg.data.dataset == m["dataset"]
    assert cfg.data.crop_size == [int(m["h"]), int(m["w"])]
    if m["minutes"]:
        assert cfg.train.minutes == float(m["minutes"])
    else:
        assert abs(cfg.train.iters / 1000 - float(m["iters"])) / float(m["iters"]) < 0.03
    assert cfg.name == path.stem
    tags = m["tags"].split("-")[1:]
    assert ("photometric" in tags) == (cfg.data.photometric == "streets")
    assert {t for t in tags if t != "photometric"} == {e.dataset for e in cfg.data.extra_train}


def test_unknown_keys_are_named_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key 'optim\.learning_rate'"):
        load_config(path)
    path.write_text("optim:\n  weight_decai: 0.1\n")
    with pytest.raises(ConfigError, match=r"did you mean 'optim\.weight_decay'"):
        load_config(path)
    path.write_text("trian:\n  iters: 3\n")
    with pytest.raises(ConfigError, match="'trian'.*did you mean 'train'"):
        load_config(path)


def test_wrong_types_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    for text, pattern in [
        ("train:\n  iters: many\n", r"train\.iters: expected an integer"),
        ("train:\n  iters: 1.5\n", r"train\.iters: expected an integer"),
        ("data:\n  crop_size: [512, x]\n", r"data\.crop_size\[1\]: expected an integer"),
        ("optim:\n  amp: fp8\n", r"optim\.amp: expected one of \['auto', 'none', 'bf16', 'fp16'\]"),
        ("model:\n  sync_bn: 1\n", r"model\.sync_bn: expected true/false"),
        ("data: 3\n", r"data: expected a mapping"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=pattern):
            load_config(path)


def test_ints_are_accepted_as_floats_and_defaults_fill_in(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1\n")
    cfg = load_config(path)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.loss.weights == [0.6, 0.2, 0.2] and cfg.loss.ohem_min_kept == 131072


def test_overrides() -> None:
    cfg = apply_overrides(Config(), ["optim.lr=1e-3", "data.crop_size=[64, 96]", "model.pretrained=null", "name=x"])
    assert cfg.optim.lr == 1e-3 and cfg.data.crop_size == [64, 96] and cfg.model.pretrained is None
    assert cfg.name == "x"
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        apply_overrides(Config(), ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides(Config(), ["optim.lr"])
    with pytest.raises(ConfigError, match="train.iters: expected an integer"):
        apply_overrides(Config(), ["train.iters=abc"])


def test_round_trip_through_dict() -> None:
    cfg = apply_overrides(Config(), ["eval.scales=[0.75, 1.0, 1.25]", "eval.flip=true"])
    assert apply_overrides(cfg, []) == cfg
    assert config_to_dict(cfg)["eval"]["scales"] == [0.75, 1.0, 1.25]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_the_demo_config_and_its_shipped_data_need_nothing_outside_the_repository() -> None:
    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "demo" / "dsnet-head64_1xb8-cpu1.25min_camvid-mini-192x256.yaml")
    cfg.data.root = str(repo / cfg.data.root)
    validate_config(cfg)
    datasets = build_datasets(cfg)
    assert (len(datasets["train"]), len(datasets["val"])) == (37, 13)
    assert f"-cpu{cfg.train.minutes:g}min_" in cfg.name  # bounded by time: the same few minutes on every CPU
    assert (repo / "demo" / "camvid-mini" / "LICENSE.md").is_file()
