"""Predictor and ``dsnet predict``: any input form and size, batching, sliding windows, label spaces
from weights metadata, and the command's outputs, naming, video, overwrite and bad-input rules."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import dsnet
from dsnet.cli import main
from dsnet.data import ADE20K_CLASSES, CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_LABEL_TO_TRAIN, colorize, normalize
from dsnet.deploy import LogitsFn
from dsnet.errors import ConfigError
from dsnet.predict import (
    Predictor,
    blend,
    discover_inputs,
    known_label_spaces,
    label_space,
    locked_output_dir,
    to_rgb,
)

from .tolerances import assert_close_to_scale, assert_labels_agree, forward_rel, scale_of, softmax_abs, sum_rel

MODEL = "dsnet_head64"


def _calibrated_model(num_classes: int) -> torch.nn.Module:
    """A random model whose BatchNorm statistics were measured on a few inputs: logits of a few units
    (fresh ones reach hundreds, where float noise of 1e-6 moves probabilities visibly)."""
    torch.manual_seed(0)
    model = dsnet.create_model(MODEL, num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cityscapes-style checkpoint with the metadata training writes."""
    model = _calibrated_model(19)
    path = tmp_path_factory.mktemp("weights") / "best.safetensors"
    meta = {"model": MODEL, "num_classes": "19", "dataset": "cityscapes", "iteration": "10"}
    return dsnet.save_weights(model, path, metadata=meta)


@pytest.fixture(scope="module")
def predictor(weights: Path) -> Predictor:
    return Predictor(MODEL, weights=weights, device="cpu", batch_size=4)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth blobs plus noise: a model output with some structure, not one class everywhere."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(big.astype(np.int16) + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)


def _logits(model: torch.nn.Module, image: np.ndarray) -> torch.Tensor:
    """The model's logits for one image, padded bottom/right to a multiple of 8 (0 = the mean colour) and
    cropped back: what the Predictor computes, in a batch of one, called directly."""
    h, w = image.shape[:2]
    x = torch.from_numpy(normalize(image)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return model(F.pad(x, (0, -w % 8, 0, -h % 8)))[0, :, :h, :w]


def _logit_tol(model: torch.nn.Module, logits: torch.Tensor) -> float:
    """How far one logit of two float32 runs of ``model`` (other batch size or kernel) may differ."""
    return 2 * forward_rel(model) * scale_of(logits)


def _count_forwards(model: torch.nn.Module) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    model.register_forward_hook(lambda _m, args, _out: shapes.append(tuple(args[0].shape)))
    return shapes


# ---------------------------------------------------------------------------------------- Predictor


def test_arrays_paths_and_pil_images_give_identical_labels(predictor: Predictor, tmp_path: Path) -> None:
    image = _image(45, 61)
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path)
    from_array = predictor(image)
    assert from_array.shape == (45, 61) and from_array.dtype == np.uint8
    assert np.array_equal(predictor(path), from_array)
    assert np.array_equal(predictor(str(path)), from_array)
    assert np.array_equal(predictor(Image.open(path)), from_array)
    assert len(np.unique(from_array)) > 1  # a real prediction, not a constant


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_png_decodes_alike_from_its_path_its_pil_image_and_its_array(
    predictor: Predictor, tmp_path: Path, channels: int
) -> None:
    rng = np.random.default_rng(channels)
    rgb16 = (cv2.resize(_image(40, 56, seed=3), (56, 40)).astype(np.uint16) << 8) + rng.integers(
        0, 256, (40, 56, 3), dtype=np.uint16
    )  # the high byte carries the picture, the low byte noise: PIL's clipping to 255 would lose it all
    pixels = rgb16[:, :, 0] if channels == 1 else rgb16
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), pixels if channels == 1 else pixels[:, :, ::-1])  # OpenCV writes BGR
    with Image.open(path) as pil:
        pil.load()
    expected = (np.repeat(pixels[:, :, None], 3, axis=2) if channels == 1 else pixels) >> 8
    from_path, from_pil = to_rgb(path), to_rgb(pil)
    assert np.array_equal(from_path, expected) and np.array_equal(from_pil, expected)
    assert np.array_equal(to_rgb(expected.astype(np.uint16) << 8 | 0xFF), expected)  # a uint16 array: >> 8 too
    label = predictor(path)
    assert np.array_equal(predictor(pil), label) and len(np.unique(label)) > 1


@pytest.mark.parametrize("size", [(45, 61), (100, 150)])
def test_odd_sizes_equal_the_padded_run_cropped_back(predictor: Predictor, size: tuple[int, int]) -> None:
    h, w = size
    image = _image(h, w, seed=h)
    result = predictor.predict(image, return_probs=True)
    logits = _logits(predictor.runner, image)
    expected = logits.softmax(dim=0).numpy()
    assert result.label.shape == (h, w) and result.probs is not None and result.probs.shape == (19, h, w)
    tol = _logit_tol(predictor.runner, logits)
    assert_close_to_scale(result.probs, expected, rel=softmax_abs(tol), scale=1.0, what=f"probabilities {size}")
    assert_labels_agree(result.label, expected.argmax(0), logits, tol, what=f"labels {size}")


def test_probabilities_sum_to_one(predictor: Predictor) -> None:
    probs = predictor.predict(_image(33, 40), return_probs=True).probs
    assert probs is not None and probs.dtype == np.float32
    # 19 probabilities, each rounded by its exp and division, then summed: a float32 sum of 2 x 19 terms
    assert_close_to_scale(probs.sum(axis=0), np.ones(probs.shape[1:]), rel=sum_rel(2 * 19), what="sum of probabilities")
    assert probs.min() >= 0


def test_batching_gives_the_one_by_one_result(weights: Path) -> None:
    sizes = [(40, 48)] * 5 + [(24, 32)] + [(40, 48)] * 2
    images = [_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    single = Predictor(MODEL, weights=weights, device="cpu", batch_size=1)
    batched = Predictor(MODEL, weights=weights, device="cpu", batch_size=3)
    calls = _count_forwards(batched.runner)
    one = [p.probs for p in single.predict_many(images, return_probs=True)]
    many = [p.probs for p in batched.predict_many(images, return_probs=True)]
    assert [c[0] for c in calls] == [3, 2, 1, 2]  # same-size runs in order, at most 3 per pass
    for i, (a, b, (h, w)) in enumerate(zip(one, many, sizes)):
        assert a is not None and b is not None and b.shape == (19, h, w)
        # another batch size runs other kernels (other summation orders): equal up to float32 rounding
        tol = softmax_abs(_logit_tol(single.runner, _logits(single.runner, images[i])))
        assert_close_to_scale(b, a, rel=tol, scale=1.0, what=f"probabilities of image {i}")
        assert_labels_agree(b.argmax(0), a.argmax(0), a, tol, what=f"labels of image {i}")


def test_large_images_use_sliding_windows(weights: Path) -> None:
    p = Predictor(MODEL, weights=weights, device="cpu", large_image_pixels=40 * 40, slide_crop=(32, 32))
    calls = _count_forwards(p.runner)
    assert p.options_for(40, 40).mode == "whole" and p.options_for(45, 61).mode == "slide"
    label = p(_image(45, 61))
    assert label.shape == (45, 61)
    assert len(calls) > 1 and all(s[2] <= 32 and s[3] <= 32 for s in calls)


def test_a_callable_backend_plugs_in_and_unknown_names_are_refused(predictor: Predictor) -> None:
    torch_model = predictor.runner

    def numpy_backend(batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.shape[2] % 8 == 0 and batch.shape[3] % 8 == 0
        with torch.no_grad():
            return torch_model(torch.from_numpy(batch)).numpy()

    assert isinstance(numpy_backend, LogitsFn)
    other = Predictor(MODEL, device="cpu", num_classes=19, backend=numpy_backend)
    image = _image(45, 61)
    assert np.array_equal(other(image), predictor(image))
    with pytest.raises(ConfigError, match="backend .tensorrt. is not available"):
        Predictor(MODEL, device="cpu", backend="tensorrt")


def test_class_names_and_palette_come_from_the_weights_metadata(tmp_path: Path, predictor: Predictor) -> None:
    assert predictor.class_names[:2] == ("road", "sidewalk") and predictor.palette[0] == (128, 64, 128)
    path = tmp_path / "camvid.safetensors"
    dsnet.save_weights(
        dsnet.create_model(MODEL, num_classes=11), path, metadata={"dataset": "camvid", "num_classes": "11"}
    )
    p = Predictor(MODEL, weights=path, device="cpu")  # num_classes from the metadata, too
    assert p.class_names == CAMVID_CLASSES and p.palette == CAMVID_PALETTE
    assert np.array_equal(p.colorize(np.array([[3]])), np.array([[CAMVID_PALETTE[3]]], np.uint8))
    with pytest.raises(ConfigError, match="trained for model 'dsnet_head64'"):
        Predictor("dsnet_head128", weights=predictor_weights(tmp_path), device="cpu")


def predictor_weights(tmp_path: Path) -> Path:
    return dsnet.save_weights(dsnet.create_model(MODEL, num_classes=19), tmp_path / "m.safetensors", {"model": MODEL})


def test_class_names_from_a_dataset_name_or_generated() -> None:
    p = Predictor(MODEL, device="cpu", dataset="ade20k")
    assert p.class_names == ADE20K_CLASSES and p.runner.num_classes == 150
    space = label_space(None, 5)
    assert len(space.palette) == 5 and len(set(space.palette)) == 5
    with pytest.raises(ConfigError, match="has 19 classes, but the model has 11"):
        label_space("cityscapes", 11)
    with pytest.raises(ConfigError, match="unknown dataset 'mars'"):
        label_space("mars", None)


def test_dataset_ids_invert_the_training_maps() -> None:
    spaces = known_label_spaces()
    city = spaces["cityscapes"].to_dataset_ids(np.array([[0, 18, 255]], np.uint8))
    assert city.tolist() == [[7, 33, 255]]
    for raw, train in CITYSCAPES_LABEL_TO_TRAIN.items():
        assert spaces["cityscapes"].dataset_ids is not None and spaces["cityscapes"].dataset_ids[train] == raw
    assert spaces["ade20k"].to_dataset_ids(np.array([0, 149], np.uint8)).tolist() == [1, 150]


# ---------------------------------------------------------------------------------------- command line


def _tree(root: Path) -> dict[str, np.ndarray]:
    """Nested folders with a repeated file name and mixed sizes; returns relative name -> image."""
    files = {"a/x.png": (40, 56), "b/x.png": (45, 61), "b/c/y.jpg": (24, 32), "x.png": (40, 56)}
    images = {}
    for i, (rel, (h, w)) in enumerate(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image = _image(h, w, seed=i)
        Image.fromarray(image).save(path, quality=95)
        images[rel] = np.asarray(Image.open(path).convert("RGB"))
    return images


def test_cli_mirrors_folders_without_collisions(weights: Path, tmp_path: Path, predictor: Predictor) -> None:
    images = _tree(tmp_path / "in")
    out = tmp_path / "out"
    args = ["predict", MODEL, str(tmp_path / "in"), "--weights", str(weights), "-o", str(out)]
    assert main([*args, "--color", "--overlay", "--alpha", "0.4"]) == 0
    for rel, image in images.items():
        stem = rel.rsplit(".", 1)[0]
        label = cv2.imread(str(out / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.shape == image.shape[:2]
        # the command batches same-size images (other kernels than one at a time): labels agree but at near ties
        logits = _logits(predictor.runner, image)
        assert_labels_agree(label, predictor(image), logits, _logit_tol(predictor.runner, logits), what=rel)
        color = cv2.cvtColor(cv2.imread(str(out / "color" / f"{stem}.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(color, colorize(label, predictor.palette))
        overlay = cv2.cvtColor(cv2.imread(str(out / "overlay" / f"{stem}.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(overlay, blend(image, color, 0.4))
    assert len(list((out / "labels").rglob("*.png"))) == len(images)


def test_cli_writes_cityscapes_label_ids(weights: Path, tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    train_out, ids_out = tmp_path / "train", tmp_path / "ids"
    base = ["predict", MODEL, str(tmp_path / "in" / "b"), "--weights", str(weights)]
    assert main([*base, "-o", str(train_out)]) == 0
    assert main([*base, "-o", str(ids_out), "--label-ids", "dataset"]) == 0
    train = cv2.imread(str(train_out / "labels" / "x.png"), cv2.IMREAD_UNCHANGED)
    ids = cv2.imread(str(ids_out / "labels" / "x.png"), cv2.IMREAD_UNCHANGED)
    inverse = {t: raw for raw, t in CITYSCAPES_LABEL_TO_TRAIN.items()}
    for t in np.unique(train):
        assert set(np.unique(ids[train == t])) == {inverse[int(t)]}


def test_cli_names_files_that_differ_only_by_suffix_apart(tmp_path: Path) -> None:
    for name in ("p.png", "p.jpg", "q.png"):
        Image.fromarray(_image(16, 16)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image: globs and folders pass it over")
    rels = sorted(str(i.rel) for i in discover_inputs([str(tmp_path / "*.*")]))
    assert rels == ["p_jpg", "p_png", "q"]


def test_output_names_are_unique_whatever_the_input_names(weights: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    names = ("p.png", "p.jpg", "p_png.png", "p_jpg.jpeg", "x_y.png", "x.y.png", "x.y.jpg", "x_y_png.bmp")
    images = {name: _image(16, 24, seed=k) for k, name in enumerate(names)}
    (tmp_path / "in").mkdir()
    for name, image in images.items():
        assert cv2.imwrite(str(tmp_path / "in" / name), image)
    rels = [str(i.rel) for i in discover_inputs([str(tmp_path / "in")])]
    assert len(set(rels)) == len(names)
    out = tmp_path / "out"
    assert main(["predict", MODEL, str(tmp_path / "in"), "--weights", str(weights), "-o", str(out)]) == 0
    assert f"predicted {len(names)} image(s)" in capsys.readouterr().out
    assert len(list((out / "labels").iterdir())) == len(names)  # one label file per input, none overwritten


def test_a_second_run_into_a_folder_in_use_is_refused_before_any_work(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(16, 24)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["predict", MODEL, str(tmp_path / "a.png"), "--weights", str(weights), "-o", str(out)]
    with locked_output_dir(out):  # another run (here: this process through another handle) writes there
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{out}: in use by another process (pid {os.getpid()}" in err
        assert not (out / "labels").exists()
    assert not any(out.iterdir())  # the lock file goes with the lock
    assert main(args) == 0 and [p.name for p in (out / "labels").iterdir()] == ["a.png"]
    assert sorted(p.name for p in out.iterdir()) == ["labels"]


def test_inputs_inside_the_output_folder_are_named_as_left_out(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(_image(16, 24)).save(out / "a.png")
    assert main(["predict", MODEL, str(out), "--weights", str(weights), "-o", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 image/video file(s) inside it were left out" in err
    assert f"output folder {out.resolve()}" in err
    Image.fromarray(_image(16, 24)).save(tmp_path / "b.png")
    with caplog.at_level(logging.WARNING, logger="dsnet"):
        found = discover_inputs([str(tmp_path)], exclude=out)
    assert [f.path.name for f in found] == ["b.png"]  # the others run; the left-out one is still named
    assert f"1 image/video file(s) inside the output folder {out.resolve()} were left out" in caplog.text


def _write_video(path: Path, frames: int, size: tuple[int, int] = (48, 64)) -> None:
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_image(h, w, seed=i))
    writer.release()


def _frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_cli_video_in_video_out(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clips" / "drive.avi"
    video.parent.mkdir()
    _write_video(video, 5)
    out = tmp_path / "out"
    base = ["predict", MODEL, str(video), "--weights", str(weights), "-o", str(out)]
    assert main(base) == 2  # nothing to write for a video
    assert "needs --color, --overlay or --video-labels" in capsys.readouterr().err
    assert main([*base, "--overlay", "--overwrite"]) == 0
    assert _frames(out / "overlay" / "drive.avi") == 5
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["overlay/drive.avi"]


def test_cli_refuses_to_overwrite_an_earlier_run(weights: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    Image.fromarray(_image(16, 24)).save(tmp_path / "a.png")
    args = ["predict", MODEL, str(tmp_path / "a.png"), "--weights", str(weights), "-o", str(tmp_path / "out")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds 1 file(s)" in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0


def test_cli_skips_and_reports_bad_files(weights: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    Image.fromarray(_image(16, 24)).save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["predict", MODEL, str(tmp_path / "in"), "--weights", str(weights), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "broken.png: unreadable or corrupt image" in captured.err
    assert "1 input(s) skipped" in captured.out
    assert [p.name for p in (out / "labels").iterdir()] == ["good.png"]


@pytest.mark.parametrize("arg, message", [("missing.png", "no such file or folder"), ("*.tif", "matches no file")])
def test_cli_bad_arguments_stop_before_any_work(weights: Path, tmp_path: Path, capsys, arg: str, message: str) -> None:  # type: ignore[no-untyped-def]
    Image.fromarray(_image(16, 24)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["predict", MODEL, str(tmp_path / "a.png"), str(tmp_path / arg), "--weights", str(weights), "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and arg in err and message in err
    assert not out.exists()
