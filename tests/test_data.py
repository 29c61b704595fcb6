"""Data layer: loaders on the real samples in ../shared/data, bad-data errors, transforms, determinism."""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dsnet.data import (
    ADE20K_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_PALETTE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ADE20KDataset,
    BDD100KDataset,
    CamVidDataset,
    CityscapesDataset,
    DataError,
    EvalTransform,
    FolderConfig,
    FolderDataset,
    TrainTransform,
    build_dataset,
    colorize,
    denormalize,
    list_datasets,
    load_folder_config,
    normalize,
    read_image,
    worker_init_fn,
)
from dsnet.data.camvid import CAMVID32_COLORS
from dsnet.data.labels import generate_palette

from .conftest import shared_path
from .tolerances import assert_close_to_scale, elementwise_rel

NEG_MEAN_OVER_STD = -np.asarray(IMAGENET_MEAN, np.float32) / np.asarray(IMAGENET_STD, np.float32)


def _check_sample(image: np.ndarray, label: np.ndarray, num_classes: int) -> None:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert label.dtype == np.uint8 and label.shape == image.shape[:2]
    values = set(np.unique(label).tolist())
    assert values <= set(range(num_classes)) | {255}, values


def _all_samples_ok(ds) -> None:
    for i in range(len(ds)):
        image, label = ds.load_pair(i)
        _check_sample(image, label, ds.num_classes)
    image, label = ds[0]
    assert isinstance(image, np.ndarray) and isinstance(label, np.ndarray)


def _save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


# --------------------------------------------------------------------------------------------------
# real data


def test_cityscapes_real_matches_shipped_train_ids():
    root = shared_path("data", "cityscapes", "cityscapes")
    ds = CityscapesDataset(root, "val")
    assert len(ds) == 1 and ds.num_classes == 19 and ds.label_space.ignore_index == 255
    assert ds.label_space.palette == CITYSCAPES_PALETTE
    _all_samples_ok(ds)
    _, label = ds.load_pair(0)
    label_ids = np.array(Image.open(ds.samples[0][1]))
    shipped = np.array(Image.open(str(ds.samples[0][1]).replace("_labelIds", "_labelTrainIds")))
    # The two shipped files were downscaled separately, so 77 of 32768 pixels disagree, all of them on a
    # class boundary. Away from boundaries the mapping must reproduce the shipped trainIds exactly.
    kernel = np.ones((3, 3), np.uint8)
    boundary = np.zeros(label.shape, bool)
    for m in (label_ids, shipped):
        boundary |= cv2.dilate(m, kernel) != cv2.erode(m, kernel)
    np.testing.assert_array_equal(label[~boundary], shipped[~boundary])
    assert (label != shipped).mean() < 0.005
    for v in np.unique(label_ids):  # and per labelId, the majority shipped trainId is ours
        ours = int(label[label_ids == v][0])
        assert np.bincount(shipped[label_ids == v], minlength=256).argmax() == ours, v
    assert ds.verify() == []


def test_ade20k_real_reduce_zero_label():
    root = shared_path("data", "ade20k")
    ds = ADE20KDataset(root, "validation")
    assert len(ds) == 3 and ds.num_classes == 150
    assert ds.label_space.classes == ADE20K_CLASSES  # the shipped objectInfo150.csv agrees with the built-in names
    assert len(set(ds.label_space.palette)) == 150
    _all_samples_ok(ds)
    for i in range(len(ds)):
        raw = np.array(Image.open(ds.samples[i][1]))
        _, label = ds.load_pair(i)
        np.testing.assert_array_equal(label, np.where(raw == 0, 255, raw.astype(np.int64) - 1))
    assert len(ADE20KDataset(root / "ADEChallengeData2016", "val")) == 3  # alias, root = the folder itself


def test_bdd100k_real_masks_equal_colormaps(tmp_path):
    root = shared_path("data", "bdd100k", "bdd100k")
    for split, n in (("train", 16), ("val", 8)):
        masks = BDD100KDataset(root, split, label_source="masks")
        cmaps = BDD100KDataset(root, split, label_source="colormaps")
        assert len(masks) == len(cmaps) == n
        for i in range(n):
            image, a = masks.load_pair(i)
            _, b = cmaps.load_pair(i)
            _check_sample(image, a, 19)
            np.testing.assert_array_equal(a, b)
    # an RGB (not palette) colormap is decoded by exact Cityscapes colour
    img_src, lbl_src = masks.samples[0]
    rgb = np.array(Image.open(cmaps.samples[0][1]).convert("RGB"))
    (tmp_path / "images/10k/val").mkdir(parents=True)
    shutil.copy(img_src, tmp_path / "images/10k/val" / img_src.name)
    _save_png(tmp_path / "labels/sem_seg/colormaps/val" / lbl_src.name, rgb)
    rgb_ds = BDD100KDataset(tmp_path, "val", label_source="colormaps")
    np.testing.assert_array_equal(rgb_ds.load_pair(0)[1], masks.load_pair(0)[1])


def test_camvid_real_all_samples():
    root = shared_path("data", "camvid")
    for split, n in (("train", 367), ("val", 101), ("trainval", 468)):
        ds = CamVidDataset(root, split)
        assert len(ds) == n and ds.num_classes == 11
    ds = CamVidDataset(root, "trainval")
    _all_samples_ok(ds)
    raw = np.array(Image.open(ds.samples[0][1]))
    np.testing.assert_array_equal(ds.load_pair(0)[1], np.where(raw == 11, 255, raw))


def _camvid_color_copy(tmp_path: Path, n: int = 3) -> tuple[CamVidDataset, Path]:
    """A colour-coded CamVid (authors' layout) built from real SegNet index labels and the palette."""
    src = CamVidDataset(shared_path("data", "camvid"), "val")
    lines = []
    for i in range(n):
        img, lbl = src.samples[i]
        label = src.load_pair(i)[1]
        (tmp_path / "images").mkdir(exist_ok=True)
        shutil.copy(img, tmp_path / "images" / img.name)
        _save_png(tmp_path / "labels" / f"{img.stem}_L.png", colorize(label, CAMVID_PALETTE))
        lines.append(f"images/{img.name} labels/{img.stem}_L.png")
    (tmp_path / "val.lst").write_text("\n".join(lines) + "\n")
    return src, tmp_path


def test_camvid_color_and_index_encodings_agree(tmp_path):
    src, root = _camvid_color_copy(tmp_path)
    for encoding in ("auto", "color"):
        ds = CamVidDataset(root, "val", encoding=encoding)
        assert len(ds) == 3
        for i in range(3):
            np.testing.assert_array_equal(ds.load_pair(i)[1], src.load_pair(i)[1])
    with pytest.raises(DataError, match="_L.png"):
        CamVidDataset(root, "val", encoding="index").load_pair(0)
    # colour labels as written by the 32-class release: merged groups map to their class
    label = src.load_pair(0)[1]
    rgb = colorize(label, CAMVID_PALETTE)
    road = label == 3
    assert road.any()
    rgb[road] = CAMVID32_COLORS["LaneMkgsDriv"]
    rgb[:4, :4] = (1, 2, 3)  # an unknown colour -> ignore
    _save_png(root / "labels" / f"{src.samples[0][0].stem}_L.png", rgb)
    expected = label.copy()
    expected[:4, :4] = 255
    np.testing.assert_array_equal(CamVidDataset(root, "val").load_pair(0)[1], expected)
    strict = CamVidDataset(root, "val", merge_32_classes=False).load_pair(0)[1]
    assert (strict[road & (expected != 255)] == 255).all()


def test_camvid_palette_png_labels(tmp_path):
    src, root = _camvid_color_copy(tmp_path, n=1)
    label = src.load_pair(0)[1]
    lbl_path = root / "labels" / f"{src.samples[0][0].stem}_L.png"
    # colour-coded palette PNG whose indices are NOT class ids (shuffled palette): decoded by colour
    perm = np.random.default_rng(0).permutation(12)
    colors = np.array([*CAMVID_PALETTE, (0, 0, 0)], np.uint8)
    index = np.where(label == 255, 11, label)
    pal_img = Image.fromarray(np.argsort(perm)[index].astype(np.uint8), "P")
    pal_img.putpalette(colors[perm].ravel().tolist())
    pal_img.save(lbl_path)
    np.testing.assert_array_equal(CamVidDataset(root, "val").load_pair(0)[1], label)
    # SegNet ids saved as a palette PNG with SegNet's own LUT (meta/camvid11.png) as palette: same labels
    lut = np.array(Image.open(shared_path("data", "camvid", "meta", "camvid11.png")).convert("RGB"))[0]
    pal_img = Image.fromarray(index.astype(np.uint8), "P")
    pal_img.putpalette(lut.ravel().tolist())
    pal_img.save(lbl_path)
    np.testing.assert_array_equal(CamVidDataset(root, "val").load_pair(0)[1], label)
    np.testing.assert_array_equal(CamVidDataset(root, "val", encoding="index").load_pair(0)[1], label)


def test_datasets_pickle():
    import pickle

    ds = _camvid_train()
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers under the 'spawn' start method
    assert torch.equal(clone[3][0], ds[3][0])
    bdd = BDD100KDataset(shared_path("data", "bdd100k", "bdd100k"), "val", label_source="colormaps")
    assert len(pickle.loads(pickle.dumps(bdd))) == 8


def test_camvid_dsnet_class_order():
    root = shared_path("data", "camvid")
    segnet = CamVidDataset(root, "val")
    dsnet = CamVidDataset(root, "val", class_order="dsnet")
    assert dsnet.label_space.classes == (
        "Bicyclist", "Building", "Car", "Pole", "Fence", "Pedestrian",
        "Road", "Sidewalk", "SignSymbol", "Sky", "Tree",
    )  # fmt: skip
    a, b = segnet.load_pair(5)[1], dsnet.load_pair(5)[1]
    for k, name in enumerate(dsnet.label_space.classes):
        np.testing.assert_array_equal(b == k, a == segnet.label_space.classes.index(name))
        assert dsnet.label_space.palette[k] == segnet.label_space.palette[segnet.label_space.classes.index(name)]
    np.testing.assert_array_equal(a == 255, b == 255)


# --------------------------------------------------------------------------------------------------
# user folders and YAML


def _make_folder(root: Path, n: int = 3, size=(24, 32), classes=("bg", "cat", "dog"), split: str | None = None, **cfg):
    rng = np.random.default_rng(0)
    sub = (lambda d: root / d / split) if split else (lambda d: root / d)
    for i in range(n):
        image = rng.integers(0, 256, (*size, 3), np.uint8)
        label = rng.integers(0, len(classes), size, np.uint8)
        label[0, 0] = 255
        _save_png(sub("images") / f"s{i}.png", image)
        _save_png(sub("masks") / f"s{i}.png", label)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": list(classes), **cfg}))
    return root


def test_folder_dataset(tmp_path):
    root = _make_folder(tmp_path, name="pets", palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    ds = FolderDataset(root)
    assert len(ds) == 3 and ds.num_classes == 3 and ds.label_space.name == "pets"
    assert ds.label_space.classes == ("bg", "cat", "dog") and ds.label_space.palette[1] == (255, 0, 0)
    _all_samples_ok(ds)
    assert len(FolderDataset(root / "dataset.yaml")) == 3
    assert len(build_dataset("folder", root)) == 3

    # splits as subfolders; custom ignore value mapped to 255; default palette
    root2 = _make_folder(tmp_path / "b", split="train", splits=["train", "val"], ignore_index=9)
    mask = root2 / "masks/train/s0.png"
    m = np.array(Image.open(mask))
    m[m == 255] = 9
    _save_png(mask, m)
    ds2 = FolderDataset(root2, "train")
    assert ds2.load_pair(0)[1][0, 0] == 255 and ds2.label_space.palette == generate_palette(3)
    with pytest.raises(ValueError, match="valid splits: train, val"):
        FolderDataset(root2, "test")
    with pytest.raises(ValueError, match="split is required"):
        FolderDataset(root2)

    # colour masks decoded with the palette; unknown colours are errors unless listed in ignore_colors
    root3 = _make_folder(tmp_path / "c", palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], ignore_colors=[[9, 9, 9]])
    index = np.array(Image.open(root3 / "masks/s1.png"))
    rgb = colorize(index, [(0, 0, 0), (255, 0, 0), (0, 255, 0)], ignore_color=(9, 9, 9))
    _save_png(root3 / "masks/s1.png", rgb)
    np.testing.assert_array_equal(FolderDataset(root3).load_pair(1)[1], index)
    rgb[5, 5] = (7, 7, 7)
    _save_png(root3 / "masks/s1.png", rgb)
    with pytest.raises(DataError, match=r"s1\.png.*\(7, 7, 7\)"):
        FolderDataset(root3).load_pair(1)


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"classes": ["a"], "colours": []}, "unknown config key 'colours'"),
        ({"palette": [[0, 0, 0]]}, "classes: required"),
        ({"classes": "ab"}, "classes: expected a list"),
        ({"classes": ["a", "a"]}, "classes: duplicate names"),
        ({"classes": ["a", ""]}, "classes[1]: expected a non-empty name"),
        ({"classes": ["a", "b"], "palette": [[0, 0, 0]]}, "palette: 1 colours but there are 2 classes"),
        ({"classes": ["a"], "palette": [[0, 0, 300]]}, "palette[0]: expected [r, g, b]"),
        ({"classes": ["a"], "palette": [[0, 0]]}, "palette[0]: expected [r, g, b]"),
        ({"classes": ["a"], "palette": [["x", 0, 0]]}, "palette: expected"),
        ({"classes": ["a", "b"], "ignore_index": 1}, "ignore_index: 1 collides with class id 1"),
        ({"classes": ["a"], "ignore_index": "x"}, "ignore_index: expected an integer"),
        ({"classes": ["a"], "ignore_index": 300}, "ignore_index: expected an integer 0..255"),
        ({"classes": ["a"], "mask_encoding": "rgb"}, "mask_encoding: expected one of"),
        ({"classes": ["a"], "mask_encoding": "color"}, "mask_encoding: 'color' needs a 'palette'"),
        ({"classes": ["a"], "palette": [[1, 1, 1]], "ignore_colors": [[1, 1, 1]]}, "ignore_colors: contains a class"),
        ({"classes": ["a"], "splits": "train"}, "splits: expected"),
        ({"classes": ["a"], "splits": ["t", "t"]}, "splits: duplicate names"),
        ({"classes": ["a"], "image_dir": ""}, "image_dir: expected a non-empty folder name"),
        ({"classes": ["a"], "name": 3}, "name: expected"),
        (["a", "b"], "expected a mapping"),
    ],
)
def test_folder_yaml_errors(tmp_path, cfg, key):
    """Typed parsing (dsnet.typed) and the semantic checks fail alike: DataError "<yaml>: <key>: <problem>"."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataError) as info:
        FolderDataset(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'dataset.yaml'}: {key}"), str(info.value)


def test_folder_config_is_typed(tmp_path):
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump({"classes": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}))
    cfg = load_folder_config(tmp_path / "dataset.yaml")
    assert cfg == FolderConfig(
        classes=("a", "b"), name=tmp_path.name, palette=((1, 2, 3), (4, 5, 6)), splits=None, ignore_colors=()
    )
    assert (
        cfg.mask_encoding == "auto" and cfg.ignore_index == 255 and (cfg.image_dir, cfg.mask_dir) == ("images", "masks")
    )


def test_folder_yaml_missing_and_invalid(tmp_path):
    with pytest.raises(DataError, match="dataset.yaml: dataset config not found"):
        FolderDataset(tmp_path)
    (tmp_path / "dataset.yaml").write_text("classes: [a, b\n")
    with pytest.raises(DataError, match="cannot parse YAML"):
        FolderDataset(tmp_path)


# --------------------------------------------------------------------------------------------------
# bad data


def test_bad_data_errors_name_the_file(tmp_path):
    root = _make_folder(tmp_path)
    ds = FolderDataset(root)
    # corrupt image
    (root / "images/s0.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"images[/\\]s0\.png: unreadable or corrupt image"):
        ds.load_pair(0)
    # corrupt (truncated) label
    data = (root / "masks/s1.png").read_bytes()
    (root / "masks/s1.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"masks[/\\]s1\.png: unreadable or corrupt label"):
        ds.load_pair(1)
    # size mismatch
    _save_png(root / "masks/s2.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match=r"masks[/\\]s2\.png: label size 10x10 \(WxH\) does not match image .*s2\.png"):
        ds.load_pair(2)
    # out-of-range values are reported
    _save_png(root / "masks/s2.png", np.full((24, 32), 7, np.uint8))
    msg = r"masks[/\\]s2\.png: label values \[7\] are outside the valid values 0\.\.2, 255"
    with pytest.raises(DataError, match=msg):
        ds.load_pair(2)
    problems = ds.verify()
    assert [i for i, _ in problems] == [0, 1, 2] and "s0.png" in problems[0][1]


def test_missing_pairs_and_empty(tmp_path):
    root = _make_folder(tmp_path)
    (root / "masks/s1.png").unlink()
    with pytest.raises(DataError, match=r"images[/\\]s1\.png: image without label"):
        FolderDataset(root)
    assert len(FolderDataset(root, on_bad_sample="skip")) == 2
    (root / "images/s1.png").unlink()
    _save_png(root / "masks/extra.png", np.zeros((24, 32), np.uint8))
    with pytest.raises(DataError, match=r"masks[/\\]extra\.png: label without image"):
        FolderDataset(root)
    for f in (root / "images").iterdir():
        f.unlink()
    for f in (root / "masks").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="empty dataset"):
        FolderDataset(root)


def test_missing_pair_real_layouts(tmp_path):
    ade = tmp_path / "ADEChallengeData2016"
    shutil.copytree(shared_path("data", "ade20k", "ADEChallengeData2016"), ade)
    (ade / "annotations/validation/ADE_val_00000002.png").unlink()
    with pytest.raises(DataError, match=r"ADE_val_00000002\.jpg: image without label"):
        ADE20KDataset(tmp_path, "validation")
    camvid = tmp_path / "camvid"
    (camvid / "images").mkdir(parents=True)
    (camvid / "train.txt").write_text("images/a.png labels/a.png\n")
    with pytest.raises(DataError, match=r"a\.png: image file not found \(listed in .*train\.txt:1"):
        CamVidDataset(camvid, "train")
    # out-of-range value in a real ADE annotation (151 is no class)
    ann = ade / "annotations/validation/ADE_val_00000001.png"
    raw = np.array(Image.open(ann))
    raw[0, :3] = (151, 200, 151)
    _save_png(ann, raw)
    ds = ADE20KDataset(tmp_path, "validation", on_bad_sample="skip")
    with pytest.raises(DataError, match=r"ADE_val_00000001\.png: label values \[151, 200\]"):
        ds.load_pair(0)


def test_skip_mode_warns_and_returns_next_valid(tmp_path, caplog):
    root = _make_folder(tmp_path, n=4)
    (root / "images/s1.png").write_bytes(b"garbage")
    ds = FolderDataset(root, on_bad_sample="skip", transform=TrainTransform((16, 16), 32))
    with caplog.at_level(logging.WARNING, logger="dsnet.data.base"):
        image, label = ds[1]
    assert "s1.png" in caplog.text and "corrupt" in caplog.text
    # served sample 2 (next valid), with sample 1's augmentation stream: deterministic
    image2, label2 = ds.transform(*ds.load_pair(2), ds.rng(1))
    assert torch.equal(image, image2) and torch.equal(label, label2)
    assert torch.equal(ds[1][0], image)
    strict = FolderDataset(root)
    with pytest.raises(DataError, match="s1.png"):
        strict[1]


# --------------------------------------------------------------------------------------------------
# registry


def test_registry(tmp_path):
    assert list_datasets() == ["ade20k", "bdd100k", "camvid", "cityscapes", "folder"]
    with pytest.raises(ValueError, match="valid names: ade20k, bdd100k, camvid, cityscapes, folder"):
        build_dataset("kitti", tmp_path, "train")
    with pytest.raises(TypeError, match="'label_sorce'"):
        build_dataset("bdd100k", tmp_path, "train", label_sorce="masks")
    with pytest.raises(ValueError, match="unknown split 'tain'"):
        build_dataset("cityscapes", tmp_path, "tain")
    ds = build_dataset("camvid", shared_path("data", "camvid"), "val", encoding="index", seed=3)
    assert isinstance(ds, CamVidDataset) and ds.seed == 3 and len(ds) == 101
    ds = build_dataset("bdd100k", shared_path("data", "bdd100k"), "val", label_source="colormaps")
    assert len(ds) == 8


# --------------------------------------------------------------------------------------------------
# transforms


@pytest.fixture(scope="module")
def camvid_pair():
    ds = CamVidDataset(shared_path("data", "camvid"), "val")
    return ds.load_pair(3)


def test_train_transform_sizes_and_label_values(camvid_pair):
    image, label = camvid_pair
    tf = TrainTransform((64, 96), base_size=120, scale_range=(0.4, 2.0))
    original = set(np.unique(label).tolist()) | {255}
    for seed in range(20):
        x, y = tf(image, label, np.random.default_rng(seed))
        assert x.dtype == torch.float32 and x.shape == (3, 64, 96)
        assert y.dtype == torch.int64 and y.shape == (64, 96)
        assert set(torch.unique(y).tolist()) <= original


def test_train_transform_scales():
    tf = TrainTransform((8, 8), base_size=100)
    scales = {round(tf.sample_scale(np.random.default_rng(s)), 6) for s in range(400)}
    assert scales == {round(0.4 + k / 10, 6) for k in range(14)}  # the reference's 0.4 + randint(0, 13) / 10
    cont = TrainTransform((8, 8), base_size=100, scale_range=(0.5, 2.0), scale_step=None)
    draws = [cont.sample_scale(np.random.default_rng(s)) for s in range(50)]
    assert all(0.5 <= s <= 2.0 for s in draws) and len(set(draws)) == 50
    assert tf.target_size(360, 480, 1.5) == (113, 150)  # long side = round(100 * 1.5)
    assert tf.target_size(480, 360, 0.4) == (40, 30)
    ade = TrainTransform((8, 8), base_size=512, short_side=512)
    assert ade.target_size(300, 400, 1.0) == (384, 512)


def test_train_transform_padding_is_ignore():
    image = np.full((20, 30, 3), 200, np.uint8)
    label = np.ones((20, 30), np.uint8)
    tf = TrainTransform((64, 64), base_size=30, scale_range=(1.0, 1.0), flip=False)
    x, y = tf(image, label, np.random.default_rng(0))
    assert x.shape == (3, 64, 64)
    assert (y[:20, :30] == 1).all() and (y[20:] == 255).all() and (y[:, 30:] == 255).all()
    pad = x[:, 20:, :].reshape(3, -1)
    expected = np.repeat(NEG_MEAN_OVER_STD[:, None], pad.shape[1], 1)
    assert_close_to_scale(pad, expected, rel=elementwise_rel(3), what="padding")  # (0 - mean) / std in float32
    np.testing.assert_array_equal(denormalize(x)[:20, :30], image)


def test_train_transform_flip_consistency():
    h, w = 40, 50
    label = (np.arange(w)[None, :] // 5).repeat(h, 0).astype(np.uint8)  # 10 vertical stripes
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = label * 20
    image[..., 1] = np.arange(w)[None, :] * 5  # column index: tells flipped from not flipped
    tf = TrainTransform((32, 40), base_size=50, multi_scale=False)
    flips = set()
    for seed in range(16):
        x, y = tf(image, label, np.random.default_rng(seed))
        back = denormalize(x)
        np.testing.assert_array_equal(back[..., 0], y.numpy() * 20)
        cols = back[0, :, 1].astype(int)
        flips.add(bool(cols[0] > cols[-1]))
    assert flips == {True, False}


def test_eval_transform(camvid_pair):
    """No padding (inference pads to the model's multiple): same size in, same size out, normalised."""
    image, label = camvid_pair[0][:355, :470], camvid_pair[1][:355, :470]
    tf = EvalTransform()
    x, y = tf(image, label)
    assert x.shape == (3, 355, 470) and y.shape == (355, 470)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal(y.numpy(), label)
    np.testing.assert_array_equal(denormalize(x), image)

    ade = EvalTransform(short_side=128)
    x, y = ade(image, label)
    assert x.shape == (3, 128, 169) and y.shape == label.shape  # 470*128/355 = 169.5 -> 169; label kept as is
    assert ade.input_size(355, 470) == (128, 169)
    np.testing.assert_array_equal(y.numpy(), label)
    expected = cv2.resize(image, (169, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(denormalize(x), expected)


def test_normalize_roundtrip():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    x = normalize(image)
    assert x.dtype == np.float32
    # /255, -mean, /std in float32 (or folded into one multiply-add) against float64
    assert_close_to_scale(x, (image / 255.0 - IMAGENET_MEAN) / IMAGENET_STD, rel=elementwise_rel(4), what="normalize")
    np.testing.assert_array_equal(denormalize(torch.from_numpy(x.transpose(2, 0, 1))), image)
    np.testing.assert_array_equal(denormalize(x.transpose(2, 0, 1)[None])[0], image)


def test_read_image_grayscale_to_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (3, 4, 3) and (rgb == gray[..., None]).all()
    with pytest.raises(DataError, match="image file not found"):
        read_image(tmp_path / "missing.png")


# --------------------------------------------------------------------------------------------------
# determinism


def _camvid_train(seed=0):
    tf = TrainTransform((48, 64), base_size=80, scale_range=(0.4, 2.0))
    return CamVidDataset(shared_path("data", "camvid"), "val", transform=tf, seed=seed)


def test_determinism_seed_epoch_index():
    ds = _camvid_train()
    a = ds[7]
    b = _camvid_train()[7]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ds.set_epoch(1)
    c = ds[7]
    assert not torch.equal(a[0], c[0])
    assert torch.equal(ds[(7, 0)][0], a[0])  # explicit (index, epoch) key
    assert not torch.equal(_camvid_train(seed=1)[7][0], a[0])
    # different epochs give different crops/scales for the same image
    crops = {tuple(ds[(0, e)][0][:, ::8, ::8].flatten()[:50].tolist()) for e in range(6)}
    assert len(crops) > 1


def test_determinism_independent_of_workers():
    ds = torch.utils.data.Subset(_camvid_train(), range(6))
    ds.dataset.set_epoch(2)

    def batches(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers)
        return [(x.clone(), y.clone()) for x, y in loader]

    single, multi = batches(0), batches(2)
    for (x0, y0), (x1, y1) in zip(single, multi, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


# --------------------------------------------------------------------------------------------------
# regression: index labels saved as RGB grey; colour labels with no class colour


def _grey_rgb_copy(src: Path, dst: Path) -> Path:
    """Copy a CamVid-layout dataset, re-saving every label as an RGB PNG with R = G = B = the id."""
    shutil.copytree(src, dst)
    for label in (dst / "labels").rglob("*.png"):
        ids = np.array(Image.open(label))
        assert ids.ndim == 2
        _save_png(label, np.repeat(ids[..., None], 3, axis=2))
    return dst


@pytest.mark.parametrize("class_order", ["segnet", "dsnet"])
def test_camvid_rgb_grey_index_labels_decode_as_ids(synthetic_camvid, tmp_path, class_order):
    grey = _grey_rgb_copy(synthetic_camvid, tmp_path / "grey")
    assert Image.open(next((grey / "labels" / "val").glob("*.png"))).mode == "RGB"
    for encoding in ("auto", "index"):
        ref = CamVidDataset(synthetic_camvid, "val", class_order=class_order)
        ds = CamVidDataset(grey, "val", encoding=encoding, class_order=class_order)
        for i in range(len(ds)):
            label = ds.load_pair(i)[1]
            np.testing.assert_array_equal(label, ref.load_pair(i)[1])
            assert (label != 255).any()
    # encoding="color" is taken at its word: grey pixels are no CamVid class colours -> a clear error
    with pytest.raises(DataError, match=r"val_000\.png: no pixel has a class colour.*index label saved as RGB"):
        CamVidDataset(grey, "val", encoding="color").load_pair(0)


def test_camvid_grey_class_colours_stay_colours(tmp_path):
    """Sky (128, 128, 128) and Void (0, 0, 0) are grey CamVid colours: such a label is colour-coded."""
    (tmp_path / "images").mkdir()
    _save_png(tmp_path / "images/a.png", np.zeros((8, 8, 3), np.uint8))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = CAMVID_PALETTE[0]
    _save_png(tmp_path / "labels/a_L.png", rgb)
    (tmp_path / "val.txt").write_text("images/a.png labels/a_L.png\n")
    label = CamVidDataset(tmp_path, "val").load_pair(0)[1]
    assert (label[:4] == 0).all() and (label[4:] == 255).all()


def test_folder_rgb_grey_masks_decode_as_ids(tmp_path):
    palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    for name, cfg in (("plain", {}), ("palette", {"palette": palette}), ("ignore9", {"ignore_index": 9})):
        root = _make_folder(tmp_path / name, **cfg)
        masks = sorted((root / "masks").glob("*.png"))
        for mask in masks if name == "ignore9" else ():
            ids = np.array(Image.open(mask))
            _save_png(mask, np.where(ids == 255, 9, ids).astype(np.uint8))
        ref = [FolderDataset(root).load_pair(i)[1] for i in range(3)]
        assert all((r == 255).any() for r in ref)
        for mask in masks:
            _save_png(mask, np.repeat(np.array(Image.open(mask))[..., None], 3, axis=2))
        ds = FolderDataset(root)
        for i in range(3):
            np.testing.assert_array_equal(ds.load_pair(i)[1], ref[i])
    # a grey mask whose values are not mask values is not an index mask: with no palette, a clear error
    _save_png(root / "masks/s0.png", np.full((24, 32, 3), 77, np.uint8))
    with pytest.raises(DataError, match=r"s0\.png: colour mask but .*dataset\.yaml has no 'palette'"):
        FolderDataset(root).load_pair(0)


def test_bdd100k_rgb_grey_mask_decodes_as_train_ids(tmp_path):
    root = shared_path("data", "bdd100k", "bdd100k")
    masks = BDD100KDataset(root, "val")
    img_src, lbl_src = masks.samples[0]
    (tmp_path / "images/10k/val").mkdir(parents=True)
    shutil.copy(img_src, tmp_path / "images/10k/val" / img_src.name)
    ids = np.array(Image.open(lbl_src))
    _save_png(tmp_path / "labels/sem_seg/colormaps/val" / lbl_src.name, np.repeat(ids[..., None], 3, axis=2))
    grey = BDD100KDataset(tmp_path, "val", label_source="colormaps")
    np.testing.assert_array_equal(grey.load_pair(0)[1], masks.load_pair(0)[1])


def test_color_label_without_any_class_colour_is_an_error(synthetic_camvid, tmp_path):
    root = shutil.copytree(synthetic_camvid, tmp_path / "camvid")
    bad = root / "labels/val/val_001.png"
    rgb = np.zeros((72, 96, 3), np.uint8)
    rgb[..., 0] = np.arange(96)[None, :] % 7 + 1  # 7 unknown colours, none of them a CamVid colour
    rgb[..., 2] = 200
    _save_png(bad, rgb)
    ds = CamVidDataset(root, "val")
    found = r"\[\(1, 0, 200\), \(2, 0, 200\), \(3, 0, 200\), \(4, 0, 200\), \(5, 0, 200\), \.\.\.\]"
    msg = rf"val_001\.png: no pixel has a class colour; colours found: {found}"
    with pytest.raises(DataError, match=msg):
        ds.load_pair(1)
    assert [i for i, _ in ds.verify()] == [1]
    # folder dataset: unknown colours are already an error; only ignore colours -> no class at all
    root = _make_folder(tmp_path / "f", palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], ignore_colors=[[9, 9, 9]])
    _save_png(root / "masks/s2.png", np.full((24, 32, 3), 9, np.uint8))
    with pytest.raises(DataError, match=r"s2\.png: no pixel has a class colour; colours found: \[\(9, 9, 9\)\]"):
        FolderDataset(root).load_pair(2)


# --------------------------------------------------------------------------------------------------
# load_sample, pairing, workers


def test_load_sample_never_substitutes(tmp_path):
    root = _make_folder(tmp_path, n=4)
    (root / "images/s1.png").write_bytes(b"garbage")
    ds = FolderDataset(root, on_bad_sample="skip", transform=EvalTransform())
    with pytest.raises(DataError, match=r"s1\.png: unreadable or corrupt image"):
        ds.load_sample(1)
    x, y = ds.load_sample(-1)  # negative indices as in ds[-1]
    assert torch.equal(x, ds[3][0]) and torch.equal(y, ds[3][1])
    assert torch.equal(ds[1][0], ds.load_sample(2)[0])  # __getitem__ keeps substituting (training)
    with pytest.raises(DataError, match=r"s1\.png"):
        ds.load_sample(1)  # ... load_sample still refuses, even once the sample is known to be bad
    with pytest.raises(IndexError):
        ds.load_sample(4)
    raw = FolderDataset(root)
    image, label = raw.load_sample(0)
    assert isinstance(image, np.ndarray) and image.shape == (24, 32, 3) and label.shape == (24, 32)


def test_cityscapes_unpaired_file_names_expected_label(tmp_path):
    src = shared_path("data", "cityscapes", "cityscapes")
    shutil.copytree(src / "leftImg8bit", tmp_path / "leftImg8bit")
    (tmp_path / "gtFine" / "val" / "frankfurt").mkdir(parents=True)
    with pytest.raises(DataError, match=r"_leftImg8bit\.png: image without label \(expected .*gtFine.val.frankfurt."):
        CityscapesDataset(tmp_path, "val")
    with pytest.raises(DataError, match="empty dataset"):
        CityscapesDataset(tmp_path, "val", on_bad_sample="skip")


def test_pair_folders_rejects_ambiguous_names(tmp_path):
    root = _make_folder(tmp_path)
    _save_png(root / "images/s0.jpg", np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"s0\.(png|jpg): two files in .*images map to the same sample name 's0'"):
        FolderDataset(root)


def _worker_state(_: int) -> tuple[bool, bool, int, int, bool]:
    return (
        signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        signal.getsignal(signal.SIGTERM) == signal.SIG_IGN,
        torch.get_num_threads(),
        cv2.getNumThreads(),
        cv2.ocl.useOpenCL(),
    )


def test_worker_init_fn_in_a_loader_worker():
    loader = torch.utils.data.DataLoader(_ListDataset(), num_workers=1, worker_init_fn=worker_init_fn, batch_size=None)
    sigint, sigterm, torch_threads, cv_threads, opencl = next(iter(loader))
    assert sigint and sigterm and torch_threads == 1 and cv_threads in (0, 1) and not opencl
    assert signal.getsignal(signal.SIGINT) != signal.SIG_IGN  # the main process is untouched


class _ListDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int):
        return _worker_state(i)
