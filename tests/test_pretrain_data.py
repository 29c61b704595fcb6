"""ImageNet data: labels from the fixed index, grayscale/CMYK loading, transforms, top-k counts, schedules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dsnet.data.classify_transforms import ClassifyEvalTransform, ClassifyTrainTransform, random_resized_crop_box
from dsnet.data.imagenet import ImageNetFolder, imagenet_classes
from dsnet.engine.pretrain import evaluate_classifier, topk_correct
from dsnet.engine.schedule import cosine_lr, step_lr
from dsnet.errors import DataError

from .conftest import shared_path
from .tolerances import assert_close_to_scale, elementwise_rel, sum_rel


def write_imagenet_like(root: Path, wnids: list[str], per_class: int = 2, size: tuple[int, int] = (48, 40)) -> Path:
    """Class folders of JPEGs: class k is a solid colour with noise (k-th image of each class grayscale/CMYK)."""
    rng = np.random.default_rng(0)
    for k, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        colour = np.array([(k * 97) % 256, (k * 57 + 80) % 256, (k * 31 + 160) % 256])
        for i in range(per_class):
            arr = np.clip(colour + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / wnid / f"{wnid}_{i}.JPEG", quality=95)
    return root


def test_class_index_is_the_standard_one() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert (classes[0].wnid, classes[0].name) == ("n01440764", "tench")
    assert (classes[999].wnid, classes[999].name) == ("n15075141", "toilet_tissue")


def test_labels_come_from_the_index_not_from_the_folders_present() -> None:
    root = shared_path("data", "imagenet-sample", "imagefolder")
    ds = ImageNetFolder(root, "")
    assert len(ds) == 100
    # the sample holds every 10th class: its labels are 0, 10, 20, ... (not 0..99)
    assert sorted({label for _, label in ds.samples}) == list(range(0, 1000, 10))
    gray = [p for p, _ in ds.samples if Image.open(p).mode == "L"]
    assert gray, "the sample has a grayscale JPEG"
    image, _ = ds[ds.samples.index(next(s for s in ds.samples if s[0] == gray[0]))]
    assert image.mode == "RGB"


def test_grayscale_and_cmyk_jpegs_load_as_rgb(tmp_path: Path) -> None:
    root = write_imagenet_like(tmp_path / "in", ["n01440764", "n01443537"], per_class=1)
    Image.new("L", (40, 30), 77).save(root / "n01440764" / "gray.JPEG")
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(root / "n01443537" / "cmyk.jpg")
    ds = ImageNetFolder(root, "", ClassifyEvalTransform(32, 1.0))
    assert len(ds) == 4 and [label for _, label in ds.samples] == [0, 0, 1, 1]
    for i in range(len(ds)):
        x, _ = ds[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    raw = ImageNetFolder(root, "")
    cmyk = raw[[p for p, _ in raw.samples].index(str(root / "n01443537" / "cmyk.jpg"))][0]
    r, g, b = cmyk.getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red


def test_unknown_folder_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    root = write_imagenet_like(tmp_path / "in", ["n01440764"], per_class=1)
    (root / "cats").mkdir()
    with pytest.raises(DataError, match=r"cats: folder name is not an ImageNet-1k wnid"):
        ImageNetFolder(root, "")
    (root / "cats").rmdir()
    (root / "n01440764" / "broken.JPEG").write_bytes(b"not a jpeg")
    ds = ImageNetFolder(root, "")
    with pytest.raises(DataError, match="broken.JPEG: unreadable"):
        [ds[i] for i in range(len(ds))]
    skipping = ImageNetFolder(root, "", on_bad_sample="skip")
    assert all(skipping[i][0].mode == "RGB" for i in range(len(skipping)))


def test_random_resized_crop_box_stays_inside_and_is_reproducible() -> None:
    for seed in range(200):
        left, top, w, h = random_resized_crop_box(500, 375, np.random.default_rng(seed))
        assert left >= 0 and left + w <= 500 and top >= 0 and top + h <= 375
        if (w, h) != (500, 375):
            assert 0.08 * 500 * 375 * 0.9 <= w * h <= 500 * 375 and 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    # a very thin image can never fit the aspect range: the fallback is the centred crop of ratio 4/3
    assert random_resized_crop_box(400, 20, np.random.default_rng(0), scale=(0.9, 1.0)) == (186, 0, 27, 20)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    tf = ClassifyTrainTransform(32, trivial_augment=True)
    a, b = tf(image, np.random.default_rng(5)), tf(image, np.random.default_rng(5))
    assert torch.equal(a, b) and a.shape == (3, 32, 32)


def test_eval_transform_is_resize_then_centre_crop() -> None:
    arr = np.random.default_rng(2).integers(0, 255, (375, 500, 3), dtype=np.uint8)
    x = ClassifyEvalTransform(224)(Image.fromarray(arr))
    # by hand: the short side 375 -> round(224 / 0.875) = 256, so 500 -> 341; the centre crop starts at (58, 16)
    resized = np.asarray(Image.fromarray(arr).resize((341, 256), Image.Resampling.BILINEAR), np.float32)
    crop = resized[16:240, 58:282] / 255.0
    expected = (crop - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    # /255, -mean, /std in float32 against float64: a few roundings of the output's scale
    assert_close_to_scale(x.permute(1, 2, 0), expected, rel=elementwise_rel(4), what="normalised crop")


def test_topk_counts_by_hand() -> None:
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [2, 5, 0, 1, 3, 4]])
    # labels 0, 0, 2: row 0 top-1; rows 1 and 2 put their label last (6th): misses
    assert topk_correct(logits, torch.tensor([0, 0, 2])) == [1, 1]
    # labels 1, 1, 0: ranked 2nd, 5th and 4th: no top-1, three top-5
    assert topk_correct(logits, torch.tensor([1, 1, 0])) == [0, 3]


class _Lookup(torch.nn.Module):
    """A 'classifier' whose logits for image i are row i of a table (i is written in the image)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0, 0, 0].long()]


def test_evaluation_numbers_against_a_hand_count() -> None:
    n, classes = 10, 8
    labels = [3] * n
    table = torch.zeros(n, classes)
    ranks = [0, 0, 0, 2, 4, 4, 4, 5, 6, 7]  # where label 3 ranks for image i: 3 top-1 and 7 top-5 hits by hand
    for i, r in enumerate(ranks):
        order = [c for c in range(classes) if c != 3]
        order.insert(r, 3)
        table[i, order] = torch.arange(classes, 0, -1, dtype=torch.float32)
    data = [(torch.full((3, 8, 8), float(i)), labels[i]) for i in range(n)]
    m = evaluate_classifier(_Lookup(table), data, batch_size=3)
    assert m is not None and (m.top1, m.top5, m.num_images) == (0.3, 0.7, 10)
    expected_loss = torch.nn.functional.cross_entropy(table, torch.tensor(labels)).item()
    # float32 log-softmax over 8 classes, then a mean over 10 images in batches of 3 (another order)
    assert math.isclose(m.loss, expected_loss, rel_tol=sum_rel(8 + 10))
    assert evaluate_classifier(_Lookup(table), data, batch_size=3, max_samples=4).num_images == 4  # type: ignore[union-attr]


def test_schedules_by_hand() -> None:
    assert cosine_lr(0.4, 0, 100) == 0.4 and math.isclose(cosine_lr(0.4, 50, 100), 0.2)
    assert cosine_lr(0.4, 100, 100) == 0.0
    assert math.isclose(cosine_lr(0.4, 5, 100, warmup_iters=10, warmup_ratio=0.0), 0.2)  # half-way up
    assert math.isclose(cosine_lr(0.4, 55, 100, warmup_iters=10), 0.2)  # half-way down what is left
    assert [step_lr(0.1, it, [30, 60, 90]) for it in (0, 29, 30, 60, 95)] == pytest.approx([0.1, 0.1, 0.01, 1e-3, 1e-4])
