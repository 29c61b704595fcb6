"""The ImageNet classifiers: exactly the authors' pre-trained encoder, and transfer into segmentation."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import dsnet
from dsnet.cli import main
from dsnet.models import DECODER_PREFIXES, ENCODER_MODULES, DSNetClassifier

from .expected import (
    HEAD128_DECODER_PARAMS,
    IMAGENET_ENCODER_MATCHING_KEYS,
    IMAGENET_ENCODER_MATCHING_KEYS_BASE,
    PARAMS,
)

PAIRS = [
    ("dsnet_imagenet", "dsnet_head128", IMAGENET_ENCODER_MATCHING_KEYS),
    ("dsnet_base_imagenet", "dsnet_base", IMAGENET_ENCODER_MATCHING_KEYS_BASE),
]


def test_classifiers_are_registered_apart_from_the_segmentation_models() -> None:
    assert dsnet.list_models(task="classification") == ["dsnet_base_imagenet", "dsnet_imagenet"]
    assert not set(dsnet.list_models()) & {"dsnet_imagenet", "dsnet_base_imagenet"}
    model = dsnet.create_model("dsnet_imagenet")  # the variant's default: 1000 classes
    assert isinstance(model, DSNetClassifier) and model.head.fc.out_features == 1000
    encoder_fields = ("planes", "spatial_depth", "context_stage3_dilations", "context_stage4_dilations")
    for seg in ("dsnet_head64", "dsnet_head128", "dsnet_head256"):  # one small encoder for the three
        a, b = dsnet.get_model_info("dsnet_imagenet").arch, dsnet.get_model_info(seg).arch
        assert all(getattr(a, f) == getattr(b, f) for f in encoder_fields)


@pytest.mark.parametrize(("name", "seg", "count"), PAIRS)
def test_encoder_keys_are_the_segmentation_encoder_in_order(name: str, seg: str, count: int) -> None:
    with torch.device("meta"):
        cls_keys = [k for k in dsnet.create_model(name).state_dict() if not k.startswith("head.")]
        seg_sd = dsnet.create_model(seg).state_dict()
    assert cls_keys == [k for k in seg_sd if not k.startswith(DECODER_PREFIXES)]
    assert len(cls_keys) == count  # the authors' log counts
    assert {k.split(".")[0] for k in cls_keys} == set(ENCODER_MODULES)


def test_features_equal_what_the_segmentation_network_feeds_to_spaspp() -> None:
    seg = dsnet.create_model("dsnet_head128", aux_heads=False).eval()
    for m in seg.modules():  # non-trivial BN statistics, so a wrong order of operations shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    cls = dsnet.create_model("dsnet_imagenet", num_classes=7).eval()
    encoder = {k: v for k, v in seg.state_dict().items() if not k.startswith(DECODER_PREFIXES)}
    report = dsnet.load_weights(cls, {**encoder, **{f"head.{k}": v for k, v in cls.head.state_dict().items()}})
    assert len(report.loaded) == len(cls.state_dict())
    seen = {}
    seg.spp.register_forward_hook(lambda _m, inputs, _o: seen.setdefault("x", inputs[0]))
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        seg(x)
        features = cls.forward_features(x)
        logits = cls(x)
    assert torch.equal(features, seen["x"])
    assert logits.shape == (2, 7)


def test_encoder_share_of_the_segmentation_model() -> None:
    seg = dsnet.create_model("dsnet_head128", aux_heads=False)
    cls = dsnet.create_model("dsnet_imagenet")
    encoder = sum(p.numel() for n, p in cls.named_parameters() if not n.startswith("head."))
    assert sum(p.numel() for p in seg.parameters()) == PARAMS["dsnet_head128"][0]
    assert encoder == PARAMS["dsnet_head128"][0] - HEAD128_DECODER_PARAMS == 5_548_096
    assert round(100 * encoder / PARAMS["dsnet_head128"][0], 2) == 82.13


@pytest.mark.parametrize(("name", "seg", "count"), PAIRS)
def test_our_classifier_checkpoint_transfers_into_segmentation(name: str, seg: str, count: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cls = dsnet.create_model(name, num_classes=10, head_channels=64)
    path = dsnet.save_weights(cls, tmp_path / "cls.safetensors")
    model = dsnet.create_model(seg, num_classes=11)
    with pytest.warns(UserWarning, match=r"spp\.\*.*layer1_a\.\*.*up8\.\*.*lastlayer\.\*"):
        report = dsnet.load_weights(model, path)
    assert report.kind == "encoder" and len(report.loaded) == count
    assert {k.split(".")[0] for k in report.ignored} == {"head"}
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in cls.state_dict().items() if not k.startswith("head."))
    assert "loaded" in str(report) and "left at initialisation: spp.*" in str(report)


@pytest.mark.parametrize(("seg", "count", "extra"), [("dsnet_head128", 536, 20), ("dsnet_base", 590, 14)])
def test_authors_imagenet_layout_transfers_with_their_counts(seg: str, count: int, extra: int) -> None:
    """Their files: {'state_dict': {'module.' + key}}, 556 (small) / 604 (Base) entries, 536 / 590 matching."""
    sd = dsnet.create_model(seg).state_dict()
    enc = OrderedDict((f"module.{k}", v.clone()) for k, v in sd.items() if not k.startswith(DECODER_PREFIXES))
    for i in range(extra):  # their classification head, whose design is unknown: ignored
        enc[f"module.last_layer.{i}.weight"] = torch.randn(3)
    report = dsnet.load_weights(dsnet.create_model(seg), {"state_dict": enc})
    assert len(report.loaded) == count and len(report.ignored) == extra


def test_a_wrong_variant_fails_clearly_and_names_the_right_one() -> None:
    base = dsnet.create_model("dsnet_base_imagenet").state_dict()
    with pytest.raises(
        dsnet.CheckpointMismatchError, match=r"(?s)encoder tensors match.*fits the encoder of dsnet_base"
    ):
        dsnet.load_weights(dsnet.create_model("dsnet_head128"), base)


def test_segmentation_config_pretrained_loads_the_classifier(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from dsnet.engine.build import build_model
    from dsnet.engine.config import Config

    path = dsnet.save_weights(dsnet.create_model("dsnet_imagenet"), tmp_path / "best.safetensors")
    cfg = Config()
    cfg.model.name, cfg.model.num_classes, cfg.model.pretrained = "dsnet_head64", 11, str(path)
    with caplog.at_level("INFO", logger="dsnet"), pytest.warns(UserWarning, match="stay at their initialisation"):
        build_model(cfg)
    assert any("loaded 536 tensors" in r.getMessage() and "spp.*" in r.getMessage() for r in caplog.records)


def test_info_reports_the_classifier_at_224(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["info", "dsnet_imagenet"]) == 0
    out = capsys.readouterr().out
    assert "224x224, 1000 classes" in out
    assert f"{sum(p.numel() for p in dsnet.create_model('dsnet_imagenet').parameters()):,}" in out
