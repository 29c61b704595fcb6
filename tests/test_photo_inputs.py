"""Photos and 16-bit images get the same, right answer through every entry point (issue [2 of 5], items 1-2):
a JPEG stored sideways with EXIF Orientation 6 (every phone photo taken upright) is segmented upright and
its labels come back in the displayed orientation; a 16-bit PNG is read by its high byte in `dsnet serve`
as in `dsnet predict` and the Predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsnet
from dsnet.cli import main
from dsnet.data.io import read_image
from dsnet.serve.images import decode_image

MINI = Path(__file__).resolve().parents[1] / "demo" / "camvid-mini" / "images" / "val"
UPRIGHT = MINI / "0016E5_07959.jpg"  # 180 x 240 (H x W)
ORIENTATION = 0x0112


def _sideways_jpeg(upright: Image.Image, path: Path, orientation: int = 6) -> Path:
    """``upright`` stored as a camera stores it: pixels turned, EXIF saying how to turn them back."""
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = upright.transpose(undo[orientation])  # what the camera wrote; EXIF says how to turn it upright
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    stored.save(path, quality=98, exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def predictor() -> dsnet.Predictor:
    return dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    upright = Image.open(UPRIGHT).convert("RGB")
    plain = folder / "upright.jpg"
    upright.save(plain, quality=98)
    return {
        "upright": plain,
        "orientation6": _sideways_jpeg(upright, folder / "orientation6.jpg", 6),
        "orientation8": _sideways_jpeg(upright, folder / "orientation8.jpg", 8),
        "orientation3": _sideways_jpeg(upright, folder / "orientation3.jpg", 3),
    }


@pytest.mark.parametrize("name", ["orientation6", "orientation8", "orientation3"])
def test_an_exif_rotated_photo_is_read_and_segmented_upright(predictor, photos, name):
    stored = Image.open(photos[name])
    raw = (180, 240) if name != "orientation3" else (240, 180)  # sideways: 180 wide, 240 tall; upside down
    assert stored.size == raw
    assert read_image(photos[name]).shape == (raw[1], raw[0], 3)  # training's reader keeps the raw pixel order
    if name == "orientation3":
        assert not np.array_equal(read_image(photos[name]), read_image(photos[name], upright=True))
    upright_rgb = read_image(photos["upright"])
    assert read_image(photos[name], upright=True).shape == upright_rgb.shape == (180, 240, 3)
    reference = predictor(photos["upright"])
    for given in (photos[name], str(photos[name]), Image.open(photos[name])):
        label = predictor(given)
        assert label.shape == (180, 240)  # the displayed orientation
        assert (label == reference).mean() > 0.95  # the upright answer (JPEG re-encoding aside)


def test_dsnet_predict_writes_upright_labels_for_exif_rotated_photos(photos, tmp_path):
    out = tmp_path / "out"
    args = ["predict", "dsnet_head64", "--weights", "camvid-cpu60min", "--device", "cpu", "--threads", "1"]
    assert main([*args, str(photos["orientation6"].parent), "-o", str(out), "--overlay"]) == 0
    upright = np.asarray(Image.open(out / "labels" / "upright.png"))
    for name in ("orientation6", "orientation8", "orientation3"):
        label = np.asarray(Image.open(out / "labels" / f"{name}.png"))
        assert label.shape == upright.shape == (180, 240)
        assert (label == upright).mean() > 0.95
        assert np.asarray(Image.open(out / "overlay" / f"{name}.png")).shape[:2] == (180, 240)


def test_the_server_reads_photos_upright(photos):
    rgb = decode_image(photos["orientation6"].read_bytes(), max_pixels=10**7)
    assert rgb.shape == (180, 240, 3)
    reference = read_image(photos["upright"])
    assert np.abs(rgb.astype(int) - reference.astype(int)).mean() < 6  # the same picture, re-encoded


def _sixteen_bit_grey(path: Path) -> Path:
    grey = np.asarray(Image.open(UPRIGHT).convert("L"), np.uint16) * 257 + 100  # the full 16-bit range
    Image.fromarray(grey.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16") or Image.open(path).mode == "I"
    return path


def test_a_16_bit_png_is_read_by_its_high_byte_everywhere(predictor, tmp_path):
    path = _sixteen_bit_grey(tmp_path / "grey16.png")
    by_predict = read_image(path, upright=True)  # what `dsnet predict` reads
    by_server = decode_image(path.read_bytes(), max_pixels=10**7)
    assert np.array_equal(by_server, by_predict)
    assert 0 < by_server.mean() < 250  # not saturated to white, as PIL's convert("RGB") did
    assert np.array_equal(predictor(Image.open(path)), predictor(path))
