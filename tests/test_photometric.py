"""Photometric augmentation (light and camera changes): each strength does what it says, labels never move."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsnet.data.photometric import PHOTOMETRIC_PRESETS, Photometric, photometric_from
from dsnet.data.transforms import TrainTransform
from dsnet.engine.config import load_config
from dsnet.engine.config_checks import validate_config
from dsnet.errors import ConfigError


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(20, 236, (40, 56, 3), dtype=np.uint8)


def _changed(p: Photometric, image: np.ndarray, seed: int = 3) -> np.ndarray:
    return p(image, np.random.default_rng(seed))


def test_all_strengths_zero_leave_the_image_alone():
    image = _image()
    assert np.array_equal(_changed(Photometric(), image), image)
    assert not Photometric().active and PHOTOMETRIC_PRESETS["streets"].active


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue", "gamma", "noise"])
def test_each_strength_changes_the_image(name):
    image = _image()
    value = {"noise": 8.0, "hue": 0.2}.get(name, 0.5)
    out = _changed(Photometric(**{name: value}), image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out.astype(int) - image).mean() > 0.5


def test_hue_and_saturation_leave_grey_pixels_grey():
    grey = np.repeat(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(8, axis=0)
    out = _changed(Photometric(hue=0.3, saturation=0.5), grey)
    assert np.abs(out.astype(int) - grey).max() <= 1


def test_gamma_keeps_black_and_white_and_the_order_of_grey_levels():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    for seed in range(5):
        out = _changed(Photometric(gamma=0.5), ramp, seed)[0, :, 0].astype(int)
        assert out[0] == 0 and out[-1] == 255 and (np.diff(out) >= 0).all()


def test_blur_always_on_smooths_and_never_on_does_nothing():
    image = _image()
    blurred = _changed(Photometric(blur=1.0), image)
    assert np.abs(np.diff(blurred.astype(int), axis=1)).mean() < np.abs(np.diff(image.astype(int), axis=1)).mean()
    assert np.array_equal(_changed(Photometric(blur=0.0), image), image)


def test_the_same_rng_gives_the_same_change_and_the_draws_do_not_depend_on_the_strengths():
    image = _image()
    strong = PHOTOMETRIC_PRESETS["streets"]
    assert np.array_equal(_changed(strong, image, 5), _changed(strong, image, 5))
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    strong(image, a)
    Photometric(brightness=0.1)(image, b)
    assert a.random() == b.random()  # one strength changed, the random stream after it did not


def test_train_transform_moves_no_label_and_draws_after_the_geometry():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (48, 64), dtype=np.uint8)
    plain = TrainTransform((32, 32), 64)(image, label, np.random.default_rng(7))
    changed = TrainTransform((32, 32), 64, photometric=PHOTOMETRIC_PRESETS["streets"])(
        image, label, np.random.default_rng(7)
    )
    assert torch.equal(plain[1], changed[1])
    assert not torch.equal(plain[0], changed[0])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sunny", "unknown photometric preset 'sunny'"),
        ({"blurr": 0.1}, r"unknown photometric key\(s\) \['blurr'\]"),
        ({"hue": 0.9}, "hue must be in"),
        ({"gamma": 1.0}, "gamma must be in"),
        ({"blur": 2}, "blur must be a probability"),
        (3, "preset name, a mapping or null"),
    ],
)
def test_bad_settings_name_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        photometric_from(value)


def test_the_config_key_is_checked_before_a_run_starts(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: {name: dsnet_head64, num_classes: 11}\ndata: {dataset: camvid, root: /nowhere}\n")
    assert validate_config(load_config(config, ["data.photometric=streets"])).data.photometric == "streets"
    assert photometric_from({"gamma": 0.2}) == Photometric(gamma=0.2)
    with pytest.raises(ConfigError, match="data.photometric.*unknown photometric preset"):
        validate_config(load_config(config, ["data.photometric=sunny"]))
