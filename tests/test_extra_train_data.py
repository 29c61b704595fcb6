"""Training on extra datasets in the main one's classes (data.extra_train): the class maps, the mixture's
samples and labels, its augmentation streams and class statistics, and the config keys that name a mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsnet.data import CAMVID_CLASSES, CITYSCAPES_CLASSES, TrainTransform, build_dataset, class_pixel_counts
from dsnet.data.class_maps import CLASS_MAPS, class_map_lut
from dsnet.data.label_space import LabelSpace
from dsnet.data.mixture import ExtraPart, MixedDataset
from dsnet.engine.build import build_datasets
from dsnet.engine.config import ConfigError, load_config
from dsnet.engine.config_checks import validate_config

from .helpers import write_tiny_config


def _space(name, classes):
    classes = tuple(classes)
    return LabelSpace(name, classes, tuple((i, i, i) for i in range(len(classes))))


CITYSCAPES = _space("cityscapes", CITYSCAPES_CLASSES)
CAMVID = _space("camvid", CAMVID_CLASSES)


# --- class maps ------------------------------------------------------------------------------------
def test_cityscapes_to_camvid_names_every_class_and_groups_as_segnet():
    lut = class_map_lut(CITYSCAPES, CAMVID, "cityscapes-to-camvid")
    camvid = {name: i for i, name in enumerate(CAMVID_CLASSES)}
    city = {name: i for i, name in enumerate(CITYSCAPES_CLASSES)}
    assert lut[city["wall"]] == lut[city["building"]] == camvid["Building"]
    assert lut[city["truck"]] == lut[city["bus"]] == lut[city["car"]] == camvid["Car"]
    assert lut[city["rider"]] == lut[city["bicycle"]] == lut[city["motorcycle"]] == camvid["Bicyclist"]
    assert lut[city["traffic light"]] == lut[city["traffic sign"]] == camvid["SignSymbol"]
    assert lut[city["terrain"]] == 255 and lut[255] == 255
    assert set(lut[: len(CITYSCAPES_CLASSES)]) - {255} == set(range(len(CAMVID_CLASSES)))  # every CamVid class fed
    assert set(CLASS_MAPS["cityscapes-to-camvid"]) == set(CITYSCAPES_CLASSES)


def test_same_class_names_need_no_map_and_follow_the_target_order():
    reordered = _space("other", reversed(CAMVID_CLASSES))
    lut = class_map_lut(reordered, CAMVID, None)
    assert [CAMVID_CLASSES[lut[i]] for i in range(len(CAMVID_CLASSES))] == list(reversed(CAMVID_CLASSES))


@pytest.mark.parametrize(
    ("class_map", "message"),
    [
        (None, "different classes: give a class map"),
        ({"road": "Road"}, "does not say where cityscapes's 'sidewalk'"),
        ({**CLASS_MAPS["cityscapes-to-camvid"], "lane": "Road"}, "names 'lane', not classes of cityscapes"),
        ({**CLASS_MAPS["cityscapes-to-camvid"], "road": "Street"}, "names 'Street', not classes of camvid"),
        ("kitti-to-camvid", "unknown class map 'kitti-to-camvid'"),
    ],
)
def test_a_class_map_that_would_lose_or_invent_a_class_is_refused(class_map, message):
    with pytest.raises(ValueError, match=message):
        class_map_lut(CITYSCAPES, CAMVID, class_map)


# --- the mixture -----------------------------------------------------------------------------------
def test_the_mixture_serves_the_extras_relabelled_and_repeated(synthetic_camvid, synthetic_bdd100k):
    main = build_dataset("camvid", synthetic_camvid, "train")
    extra = build_dataset("bdd100k", synthetic_bdd100k, "train")
    mixed = MixedDataset(main, [ExtraPart(extra, "cityscapes-to-camvid", repeat=2)])
    assert len(mixed) == len(main) + 2 * len(extra)
    assert mixed.counts() == {"camvid:train": len(main), "bdd100k:train": 2 * len(extra)}
    assert mixed.label_space == main.label_space
    lut = class_map_lut(extra.label_space, main.label_space, "cityscapes-to-camvid")
    for k in range(len(extra)):
        raw = extra.load_pair(k)[1]
        for copy in range(2):
            image, label = mixed.load_pair(len(main) + copy * len(extra) + k)
            np.testing.assert_array_equal(label, lut[raw])
            np.testing.assert_array_equal(image, extra.load_pair(k)[0])
    np.testing.assert_array_equal(mixed.load_pair(0)[1], main.load_pair(0)[1])
    # the class statistics count what training sees: the extras relabelled, each copy once
    pixels, _ = class_pixel_counts(mixed)
    expected = class_pixel_counts(main)[0].copy()
    for k in range(len(extra)):
        expected += 2 * np.bincount(lut[extra.load_pair(k)[1]].ravel(), minlength=256)[: main.num_classes]
    np.testing.assert_array_equal(pixels, expected)


def test_repeated_copies_are_augmented_apart_and_each_sample_is_reproducible(synthetic_camvid, synthetic_bdd100k):
    transform = TrainTransform(crop_size=(32, 48), base_size=96, scale_range=(0.5, 2.0), scale_step=0.25)
    main = build_dataset("camvid", synthetic_camvid, "train")
    extra = build_dataset("bdd100k", synthetic_bdd100k, "train")
    mixed = MixedDataset(main, [ExtraPart(extra, "cityscapes-to-camvid", repeat=2)], transform, seed=7)
    first, second = len(main), len(main) + len(extra)
    a, b = mixed[(first, 0)], mixed[(second, 0)]
    assert not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]))
    again = mixed[(first, 0)]
    assert torch.equal(a[0], again[0]) and torch.equal(a[1], again[1])


def test_a_dataset_given_twice_is_refused(synthetic_camvid):
    main = build_dataset("camvid", synthetic_camvid, "train")
    with pytest.raises(ValueError, match="in two parts of the mixture"):
        MixedDataset(main, [ExtraPart(build_dataset("camvid", synthetic_camvid, "train"))])


# --- the config keys -------------------------------------------------------------------------------
def _extra(root, **keys):
    entry = {"dataset": "bdd100k", "root": str(root), "class_map": "cityscapes-to-camvid", **keys}
    return "data.extra_train=[{" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}]"


def test_a_config_trains_on_the_mixture_and_validates_on_the_main_dataset(
    tmp_path, synthetic_camvid, synthetic_bdd100k
):
    path = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=2, val_interval=2)
    cfg = validate_config(load_config(path, [_extra(synthetic_bdd100k, repeat=3)]))
    datasets = build_datasets(cfg)
    assert isinstance(datasets["train"], MixedDataset) and len(datasets["train"]) == 8 + 3 * 3
    assert datasets["train"].transform is not None and datasets["train"].main.transform is None
    assert type(datasets["val"]).__name__ == "CamVidDataset"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"class_map": "kitti-to-camvid"}, r"data.extra_train\[0\].class_map='kitti-to-camvid'.*unknown class map"),
        ({"repeat": 0}, r"data.extra_train\[0\].repeat=0 must be >= 1"),
        ({"dataset": "kitti"}, r"data.extra_train\[0\].dataset='kitti' must be one of"),
    ],
)
def test_a_bad_extra_names_its_key(tmp_path, synthetic_camvid, synthetic_bdd100k, keys, message):
    path = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=2, val_interval=2)
    with pytest.raises(ConfigError, match=message):
        validate_config(load_config(path, [_extra(synthetic_bdd100k, **keys)]))


def test_an_extra_whose_classes_do_not_map_names_its_key(tmp_path, synthetic_camvid, synthetic_bdd100k):
    path = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=2, val_interval=2)
    cfg = validate_config(load_config(path, [_extra(synthetic_bdd100k, class_map="null")]))
    with pytest.raises(ConfigError, match=r"data.extra_train\[0\]: .*different classes: give a class map"):
        build_datasets(cfg)
