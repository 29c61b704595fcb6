"""Checkpoint loading in every accepted form, strict errors, and the way back to the authors' layout."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import dsnet
from dsnet.models import CheckpointError, CheckpointMismatchError, load_weights, normalize_state_dict

from .expected import IMAGENET_ENCODER_MATCHING_KEYS

NAME = "dsnet_head64"


def _random_state(name: str = NAME, num_classes: int = 19, aux_heads: bool = True) -> OrderedDict:
    """A state dict whose every entry differs from a fresh model's, in the authors' layout."""
    model = dsnet.create_model(name, num_classes=num_classes, aux_heads=aux_heads)
    gen = torch.Generator().manual_seed(1)
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        sd[k] = (
            torch.randint(0, 7, v.shape, generator=gen)
            if v.dtype == torch.int64
            else torch.randn(v.shape, generator=gen)
        )
    return sd


def _assert_loaded(model: torch.nn.Module, sd: dict, keys: list[str] | None = None) -> None:
    own = model.state_dict()
    for k in keys or list(sd):
        torch.testing.assert_close(own[k], sd[k], rtol=0, atol=0, msg=k)


def _authors_forms(sd: OrderedDict) -> dict[str, dict]:
    full = OrderedDict(("model." + k, v) for k, v in sd.items())
    full["sem_loss.criterion.weight"] = torch.ones(19)
    full["ce_loss.criterion.weight"] = torch.ones(19)
    ddp = OrderedDict(("module." + k, v) for k, v in full.items())
    return {
        "bare": dict(sd),
        "state_dict": {"state_dict": dict(sd)},
        "fullmodel": {"epoch": 3, "best_mIoU": 0.5, "state_dict": full, "optimizer": {"state": {}}},
        "fullmodel_ddp": {"state_dict": ddp},
        "ddp_bare": OrderedDict(("module." + k, v) for k, v in sd.items()),
        "fullmodel_no_wrapper": full,
    }


@pytest.mark.parametrize(
    "form", ["bare", "state_dict", "fullmodel", "fullmodel_ddp", "ddp_bare", "fullmodel_no_wrapper"]
)
@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "file"])
def test_authors_checkpoint_forms_load(form: str, on_disk: bool, tmp_path: Path) -> None:
    sd = _random_state()
    obj = _authors_forms(sd)[form]
    weights: object = obj
    if on_disk:
        weights = tmp_path / "checkpoint.pth.tar"
        torch.save(obj, weights)
    model = dsnet.create_model(NAME, weights=weights)  # type: ignore[arg-type]
    _assert_loaded(model, sd)


def test_checkpoint_without_aux_heads_loads_and_says_so() -> None:
    sd = OrderedDict((k, v) for k, v in _random_state().items() if not k.startswith("seghead_"))
    model = dsnet.create_model(NAME)
    with pytest.warns(UserWarning, match=r"seghead_p\.\* \(13\), seghead_d\.\* \(13\)"):
        report = load_weights(model, sd)
    assert report.kind == "full-without-aux"
    _assert_loaded(model, sd)


def test_aux_keys_are_ignored_by_an_inference_model() -> None:
    sd = _random_state()
    model = dsnet.create_model(NAME, aux_heads=False)
    report = load_weights(model, sd)
    assert len(report.ignored) == 26 and not report.left_at_init
    _assert_loaded(model, {k: v for k, v in sd.items() if not k.startswith("seghead_")})


def test_imagenet_encoder_checkpoint_reports_keys_left_at_init() -> None:
    sd = _random_state()
    encoder = OrderedDict(
        (k, v) for k, v in sd.items() if not k.startswith(("spp.", "layer1_a.", "up8.", "lastlayer.", "seghead_"))
    )
    # the authors' ImageNet files also carry their classifier, which has no place in DSNet
    encoder["classifier.fc.weight"] = torch.randn(1000, 256)
    encoder["classifier.fc.bias"] = torch.randn(1000)
    ckpt = {"state_dict": OrderedDict(("module." + k, v) for k, v in encoder.items())}
    model = dsnet.create_model(NAME)
    with pytest.warns(UserWarning, match=r"encoder checkpoint.*spp\.\*.*layer1_a\.\*.*up8\.\*.*lastlayer\.\*"):
        report = load_weights(model, ckpt)
    assert report.kind == "encoder"
    assert len(report.loaded) == IMAGENET_ENCODER_MATCHING_KEYS  # the reference's count for small models
    assert report.ignored == ["classifier.fc.weight", "classifier.fc.bias"]
    assert {k.split(".")[0] for k in report.left_at_init} == {
        "spp",
        "layer1_a",
        "up8",
        "lastlayer",
        "seghead_p",
        "seghead_d",
    }
    _assert_loaded(model, {k: v for k, v in encoder.items() if not k.startswith("classifier")})


def test_encoder_checkpoint_missing_an_encoder_key_is_an_error() -> None:
    sd = _random_state()
    encoder = {k: v for k, v in sd.items() if not k.startswith(("spp.", "layer1_a.", "up8.", "lastlayer.", "seghead_"))}
    del encoder["layer4.1.process2.0.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): layer4\.1\.process2\.0\.weight"):
        load_weights(dsnet.create_model(NAME), encoder)


def test_wrong_variant_lists_problems_and_names_the_fitting_variant() -> None:
    sd = _random_state("dsnet_head256")
    with pytest.raises(CheckpointMismatchError) as info:
        dsnet.create_model("dsnet_head128", weights=sd)
    err = info.value
    assert "layer1_a.0.downsample.0.weight" in err.unexpected
    shapes = {k for k, _, _ in err.shape_mismatch}
    assert "up8.0.weight" in shapes and "lastlayer.conv1.weight" in shapes
    msg = str(err)
    assert "unexpected keys" in msg and "wrongly shaped keys" in msg
    assert "fits dsnet_head256 with num_classes=19" in msg


def test_class_count_mismatch_is_reported_with_shapes() -> None:
    sd = _random_state(num_classes=150)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"lastlayer\.conv2\.weight: checkpoint \[150, 64, 1, 1\] vs model \[19, 64, 1, 1\]",
    ) as info:
        dsnet.create_model(NAME, weights=sd)
    assert "num_classes=150" in str(info.value)
    dsnet.create_model(NAME, num_classes=150, weights=sd)  # the right class count loads


def test_missing_key_in_full_checkpoint_is_an_error() -> None:
    sd = _random_state()
    del sd["spp.process3.0.bias"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): spp\.process3\.0\.bias"):
        dsnet.create_model(NAME, weights=sd)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_our_checkpoints_round_trip(suffix: str, tmp_path: Path) -> None:
    sd = _random_state()
    model = dsnet.create_model(NAME)
    model.load_state_dict(sd)
    path = dsnet.save_weights(model, tmp_path / f"weights{suffix}", metadata={"model": NAME})
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    reloaded = dsnet.create_model(NAME, weights=path)
    _assert_loaded(reloaded, sd)


def test_back_to_the_authors_layout(tmp_path: Path) -> None:
    sd = _random_state()
    model = dsnet.create_model(NAME, weights=sd)
    theirs = dsnet.to_authors_state_dict(model)
    assert list(theirs) == list(sd)
    wrapped = dsnet.to_authors_state_dict(model, full_model=True)
    assert all(k.startswith("model.") for k in wrapped)
    path = dsnet.save_authors_checkpoint(model, tmp_path / "best.pth.tar")
    raw = torch.load(path, weights_only=True)
    assert list(raw["state_dict"]) == ["model." + k for k in sd]
    _assert_loaded(dsnet.create_model(NAME, weights=path), sd)


class _Evil:
    def __reduce__(self):  # noqa: D105
        return (print, ("pwned",))


def test_pickled_code_is_never_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"conv1.0.weight": _Evil()}}, f)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        dsnet.create_model(NAME, weights=path)


def test_unreadable_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        dsnet.create_model(NAME, weights=tmp_path / "nothere.pth")
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        dsnet.create_model(NAME, weights=bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pth"):
        dsnet.create_model(NAME, weights=junk)


def test_no_state_dict_inside_is_an_error() -> None:
    with pytest.raises(CheckpointError, match="no state dict found"):
        dsnet.create_model(NAME, weights={"epoch": 3, "config": {"lr": 0.1}})


def test_normalize_strips_prefixes_in_any_order() -> None:
    t = torch.zeros(1)
    sd = normalize_state_dict({"module.model.conv1.0.weight": t, "model.module.up8.0.weight": t, "sem_loss.x": t})
    assert list(sd) == ["conv1.0.weight", "up8.0.weight"]


def test_fine_tuning_to_other_classes_resets_only_the_classifiers(tmp_path: Path) -> None:
    cityscapes = dsnet.create_model(NAME, num_classes=19)
    path = dsnet.save_weights(cityscapes, tmp_path / "cityscapes.safetensors")
    with pytest.raises(CheckpointMismatchError, match="reset_classifier=True"):
        dsnet.create_model(NAME, num_classes=11, weights=path)  # not asked for: the clear mismatch error
    model = dsnet.create_model(NAME, num_classes=11)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, path, reset_classifier=True)
    expected = [f"{head}.conv2.{p}" for head in ("lastlayer", "seghead_p", "seghead_d") for p in ("weight", "bias")]
    assert sorted(report.reinitialized) == sorted(expected)
    assert "re-initialised for the new classes" in str(report)
    source = cityscapes.state_dict()
    for key, value in model.state_dict().items():
        if key in expected:
            assert torch.equal(value, fresh[key]) and value.shape[0] == 11
        else:
            assert torch.equal(value, source[key]), key
    # the same class count needs no reset: nothing is re-initialised
    assert load_weights(dsnet.create_model(NAME, num_classes=19), path, reset_classifier=True).reinitialized == []
