"""INT8: calibration images (dsnet.data.calibration) and OpenVINO + NNCF quantization (dsnet.deploy.quantize).

The quantization tests export and calibrate a tiny model (about 15-30 s each on 2 cores), so they are
marked ``slow``; the calibration-set and argument tests stay fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dsnet
from dsnet.cli import main
from dsnet.data.calibration import CalibrationSet, cover_and_crop, find_images
from dsnet.data.transforms import normalize
from dsnet.deploy.signal_stack import keep_signal_stack
from dsnet.errors import DataError

from .test_deploy_transforms import randomize_batchnorm

SIZE = (64, 96)


def _write_images(folder: Path, count: int, shape: tuple[int, int] = (90, 120)) -> list[Path]:
    """Smooth random images (blurred noise), more like photos than white noise."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        noise = np.random.default_rng(i).random((shape[0] // 6, shape[1] // 6, 3))
        image = cv2.resize((noise * 255).astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        path = folder / f"img{i:02d}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------
# calibration images


@pytest.mark.parametrize("shape", [(90, 120), (120, 90), (40, 50), (64, 96), (300, 96)])
def test_cover_and_crop_gives_the_size_and_keeps_the_aspect_ratio(shape: tuple[int, int]) -> None:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1), np.zeros_like(yy)], -1).astype(np.uint8)
    out = cover_and_crop(image, SIZE)
    assert out.shape == (*SIZE, 3)
    # a centred crop of an aspect-preserving resize: the horizontal and vertical ramps stay centred
    assert abs(float(out[:, :, 1].mean()) - 127.5) < 8 and abs(float(out[:, :, 0].mean()) - 127.5) < 8
    scale = max(SIZE[0] / h, SIZE[1] / w)
    assert out[:, :, 1].max() - out[:, :, 1].min() <= 255 * SIZE[1] / (w * scale) + 8  # not squeezed


def test_find_images_from_folder_glob_and_list(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "a" / "b", 3)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".hidden.jpg").write_bytes(b"")
    assert find_images(tmp_path / "a") == sorted(paths)
    assert find_images(str(tmp_path / "a" / "**" / "*.jpg")) == sorted(paths)
    listing = tmp_path / "list.txt"
    listing.write_text("a/b/img01.jpg\n\n" + str(paths[0]) + "\n")
    assert find_images(listing) == [paths[1], paths[0]]


def test_find_images_errors_name_the_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images found"):
        find_images(tmp_path / "empty")
    with pytest.raises(DataError, match="missing: no such file or folder"):
        find_images(tmp_path / "missing")
    listing = tmp_path / "list.txt"
    listing.write_text("nope.jpg\n")
    with pytest.raises(DataError, match="list.txt: 1 listed image"):
        find_images(listing)


def test_calibration_set_is_a_seeded_subset_normalised_like_training(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "imgs", 6)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    first = CalibrationSet(tmp_path / "imgs", SIZE, count=3, mean=mean, std=std, seed=1)
    again = CalibrationSet(tmp_path / "imgs", SIZE, count=3, mean=mean, std=std, seed=1)
    other = CalibrationSet(tmp_path / "imgs", SIZE, count=3, mean=mean, std=std, seed=2)
    assert len(first) == 3 and first.files == again.files and set(first.files) <= set(paths)
    assert first.files != other.files
    batches = list(first)
    assert len(batches) == 3 and all(b.shape == (1, 3, *SIZE) and b.dtype == np.float32 for b in batches)
    expected = normalize(cover_and_crop(dsnet.data.read_image(first.files[0]), SIZE), mean, std).transpose(2, 0, 1)
    np.testing.assert_array_equal(batches[0][0], expected)
    assert [b.tobytes() for b in first] == [b.tobytes() for b in batches]  # iterable again, same data
    assert len(CalibrationSet(paths, SIZE, count=10)) == 6
    with pytest.raises(DataError, match="count 0"):
        CalibrationSet(paths, SIZE, count=0)


# ---------------------------------------------------------------------------------------------------
# quantization


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(dsnet.create_model("dsnet_head64", num_classes=5)).eval()


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    _write_images(folder, 4)
    return folder


def _export_int8(weights: Path, calib: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``dsnet export --int8`` end to end, in a child process as a user runs it."""
    argv = [sys.executable, "-m", "dsnet", "export", "dsnet_head64", "--weights", str(weights), "--num-classes", "5"]
    argv += ["--format", "openvino", "--size", *map(str, SIZE), "--int8", "--calib", str(calib), "-o", str(out)]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_int8_export_is_quantized_and_agrees_with_eager(
    model: torch.nn.Module, calib_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("nncf")
    ov = pytest.importorskip("openvino")
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "int8" / "m.xml"
    run = _export_int8(weights, calib_dir, out, "--dynamic", "--calib-count", "4")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "calibrating on 4 images" in run.stdout and "openvino int8" in run.stdout
    agreement = float(re.search(r"([\d.]+)% of pixels keep their class", run.stdout).group(1))  # type: ignore[union-attr]
    assert out.is_file() and out.with_suffix(".bin").is_file()
    quantized = ov.Core().read_model(str(out))
    fq = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    assert f"{fq} FakeQuantize ops" in run.stdout and fq > 50  # the convolutions' inputs and weights
    # a random network's logits are nearly flat, so INT8 rounding flips some arg-maxes (chance: 20 %)
    assert agreement > 75

    # dynamic: runs at a size not divisible by 16, close to eager PyTorch there too, and not identical
    with keep_signal_stack():
        compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = next(iter(CalibrationSet(calib_dir, (72, 104), count=1)))
    got = np.asarray(compiled(x)[0])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape == (1, 5, 72, 104)
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.75
    assert 1e-3 < np.abs(got - ref).max() / np.abs(ref).max() < 0.4

    again = _export_int8(weights, calib_dir, out)  # exists: refused without --overwrite, before any work
    assert again.returncode == 2 and "exists" in again.stderr


OTHER_VARIANTS = [name for name in dsnet.list_models(task="segmentation") if name != "dsnet_head64"]

_QUANTIZE_EACH = """
import json, sys
import dsnet
from dsnet.data.calibration import CalibrationSet
from dsnet.deploy.quantize import quantize_openvino
calib, out = sys.argv[1], sys.argv[2]
for name, weights in zip(sys.argv[3::2], sys.argv[4::2]):
    model = dsnet.create_model(name, num_classes=5, weights=weights).eval()
    info = dsnet.get_model_info(name)
    images = CalibrationSet(calib, (32, 48), count=2, mean=info.mean, std=info.std)
    r = quantize_openvino(model, images, (32, 48), out=f"{out}/{name}.xml", check_images=2)
    print(json.dumps({"name": name, "fq": r.fake_quantize_ops, "agree": r.label_agreement, "error": r.relative_error}))
"""


@pytest.fixture(scope="module")
def quantized_variants(calib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every other variant quantized by the library in child processes, at the smallest size every variant
    runs (32x48) on 2 calibration images: the export (TorchScript tracing, single-threaded Python) and NNCF's
    graph work dominate, so two children share the variants and run at once, one per core of a 2-core CI
    machine. dsnet_head64's test above covers the full size, a dynamic export and the CLI."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("int8_variants")
    groups: list[list[str]] = [[], []]  # the first (dsnet_base, the largest) alone, the others together
    for i, name in enumerate(OTHER_VARIANTS):
        torch.manual_seed(0)
        model = randomize_batchnorm(dsnet.create_model(name, num_classes=5)).eval()
        groups[min(i, 1)] += [name, str(dsnet.save_weights(model, folder / f"{name}.safetensors"))]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _QUANTIZE_EACH, str(calib_dir), str(folder), *group],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in groups
        if group
    ]
    rows = []
    for child in children:
        out, err = child.communicate(timeout=900)
        assert child.returncode == 0, err[-2000:]
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {row["name"]: row for row in rows}


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_VARIANTS)
def test_int8_of_every_variant_stays_close_to_eager(quantized_variants: dict[str, dict], name: str) -> None:
    row = quantized_variants[name]
    assert row["fq"] > 50
    assert row["agree"] > 0.75  # random weights: flat logits, so some arg-maxes flip (chance: 20 %)
    assert 1e-3 < row["error"] < 0.4  # relative to the logit scale: quantized, yet close


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "onnx", "--int8", "--calib", "CALIB"], "--format openvino --int8 --calib"),
        (["--format", "openvino", "--int8"], "--format openvino --int8 --calib"),
        (["--format", "openvino", "--int8", "--calib", "MISSING"], "MISSING: no such file or folder"),
    ],
)
def test_export_int8_cli_errors_before_any_work(
    extra: list[str], message: str, calib_dir: Path, tmp_path: Path, capsys
) -> None:
    suffix = ".onnx" if "onnx" in extra else ".xml"
    extra = [str(calib_dir) if a == "CALIB" else str(tmp_path / a) if a == "MISSING" else a for a in extra]
    argv = ["export", "dsnet_head64", "--weights", str(tmp_path / "never-read.pth"), "--size", "64", "96"]
    assert main([*argv, *extra, "-o", str(tmp_path / f"m{suffix}")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("m*"))


def test_int8_needs_nothing_at_import() -> None:
    """Importing dsnet, its deploy and bench packages must not import the optional quantizer."""
    code = "import sys, dsnet, dsnet.deploy, dsnet.bench, dsnet.cli; print('nncf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
