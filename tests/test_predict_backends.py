"""Predictor backends beyond eager torch: the deploy form for torch, ONNX Runtime and OpenVINO on a
checkpoint (exported on the fly) or on a file made by ``dsnet export``, static exports' size policy,
and the errors. The runtime tests export a model (10-40 s each) and are marked slow."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import dsnet
from dsnet.cli import main
from dsnet.data import LabelSpace
from dsnet.data.labels import generate_palette
from dsnet.deploy import ArrayRunner, LoadedExport, RunnerInfo
from dsnet.deploy import runner_builder as runner_builder_module
from dsnet.deploy.export import MODEL_KEY, export_metadata
from dsnet.errors import ConfigError, MissingBackendError
from dsnet.inference import InferenceOptions, argmax_channels, predict_labels, predict_probs, predict_scores
from dsnet.predict import Predictor

from .test_predict import MODEL, _calibrated_model, _image, _logit_tol, _logits
from .tolerances import EPS32, assert_close_to_scale, assert_labels_agree, softmax_abs


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backends") / "best.safetensors"
    meta = {"model": MODEL, "num_classes": "19", "dataset": "cityscapes"}
    return dsnet.save_weights(_calibrated_model(19), path, metadata=meta)


@pytest.fixture(scope="module")
def torch_predictor(weights: Path) -> Predictor:
    return Predictor(MODEL, weights=weights, device="cpu")


# ------------------------------------------------------------------------------ torch and the inference core


def test_torch_runs_the_deploy_form_with_the_eager_labels(weights: Path, torch_predictor: Predictor) -> None:
    model = torch_predictor.runner.module
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # folded
    assert model.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    eager = Predictor(MODEL, weights=weights, device="cpu", deploy_form=False)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.runner.modules())
    for h, w in [(45, 61), (72, 120)]:
        image = _image(h, w, seed=h)
        fast, plain = torch_predictor.predict(image, True), eager.predict(image, True)
        assert fast.probs is not None and plain.probs is not None
        # float32 rounding of the folded weights and other kernels: two float32 runs of the network
        logits = _logits(eager.runner, image)
        tol = _logit_tol(eager.runner, logits)
        assert_close_to_scale(fast.probs, plain.probs, rel=softmax_abs(tol), scale=1.0, what=f"probabilities {h}x{w}")
        assert_labels_agree(fast.label, plain.label, logits, tol, what=f"labels {h}x{w}")


def test_labels_come_from_the_logits_without_a_softmax(torch_predictor: Predictor) -> None:
    x = torch.randn(2, 3, 40, 56)
    model = torch_predictor.runner
    single = InferenceOptions()
    with torch.no_grad():
        logits = model(x)  # 40x56: multiples of 8, nothing to pad
    assert torch.equal(predict_scores(model, x, single), logits)  # no softmax pass for one view
    # labels are the argmax of these very logits; the softmax may round two close logits to one
    # probability (ties go to the first class), so the argmax of the probabilities may differ there only
    probs = predict_probs(model, x, single)
    assert_labels_agree(predict_labels(model, x, single), probs.argmax(1), probs, 2 * EPS32, what="labels")
    assert torch.equal(predict_labels(model, x, single), logits.argmax(1))
    tta = InferenceOptions(flip=True, scales=(0.75, 1.0))
    assert torch.equal(predict_scores(model, x, tta), predict_probs(model, x, tta))  # views average probabilities


def test_array_runner_splits_a_static_batch_and_checks_sizes() -> None:
    calls: list[tuple[int, ...]] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return np.concatenate([batch[:, :1] * 2, batch[:, 1:2] + 1], axis=1)  # 2 "classes"

    module = ArrayRunner(fn, RunnerInfo("callable", "fp32", torch.device("cpu"), static_size=(16, 24), static_batch=2))
    x = torch.randn(3, 3, 16, 24)
    out = module(x)
    assert calls == [(2, 3, 16, 24), (2, 3, 16, 24)]  # the last batch filled up with zeros
    assert torch.equal(out, torch.cat([x[:, :1] * 2, x[:, 1:2] + 1], dim=1))
    with pytest.raises(ConfigError, match="input 16x32: this static export runs 16x24 inputs only"):
        module(torch.randn(1, 3, 16, 32))
    with pytest.raises(ConfigError, match="at least 16 pixels"):
        ArrayRunner(fn, RunnerInfo("callable", "fp32", torch.device("cpu"), min_size=16))(torch.randn(1, 3, 8, 24))


# ------------------------------------------------------------------------------ static exports (runtime faked)


@pytest.fixture
def fake_static_export(monkeypatch: pytest.MonkeyPatch, torch_predictor: Predictor, tmp_path: Path) -> Path:
    """A ".onnx" file whose 'runtime' is the torch deploy model, declared static at 1x3x64x96."""
    model = torch_predictor.runner
    seen: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        assert batch.shape == (1, 3, 64, 96)
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    def load_export(path: object, format: str, threads: int | None, precision: str = "fp32") -> LoadedExport:
        assert format == "onnx" and threads == 1
        return LoadedExport(run, (1, 3, 64, 96), (1, 19, 64, 96))

    monkeypatch.setattr(runner_builder_module, "load_export", load_export)
    path = tmp_path / "static.onnx"
    path.write_bytes(b"fake")
    return path


def test_a_static_export_runs_its_size_tiles_larger_images_and_refuses_smaller(
    fake_static_export: Path, weights: Path, torch_predictor: Predictor
) -> None:
    p = Predictor(MODEL, weights=fake_static_export, dataset="cityscapes", threads=1)
    assert p.backend == "onnxruntime" and p.label_space.num_classes == 19 and p.static_size == (64, 96)
    image = _image(60, 90, seed=1)  # pads to 64x96, like every image: runs whole
    assert p.options_for(60, 90).mode == "whole"
    assert np.array_equal(p(image), torch_predictor(image))
    large = _image(100, 150, seed=2)  # windows of exactly 64x96, the torch slide result
    assert p.options_for(100, 150) == InferenceOptions(mode="slide", crop=(64, 96))
    tiled = Predictor(MODEL, weights=weights, device="cpu", options=InferenceOptions(mode="slide", crop=(64, 96)))
    assert np.array_equal(p(large), tiled(large))
    with pytest.raises(ConfigError, match="image 45x61 does not fit the static export's input 64x96"):
        p(_image(45, 61))
    with pytest.raises(ConfigError, match="the export outputs 19 classes, not 11"):
        Predictor(MODEL, weights=fake_static_export, num_classes=11, threads=1)
    with pytest.raises(ConfigError, match="no multi-scale views"):
        Predictor(MODEL, weights=fake_static_export, threads=1, options=InferenceOptions(scales=(0.5, 1.0)))


@pytest.fixture
def fake_dynamic_export(monkeypatch: pytest.MonkeyPatch, torch_predictor: Predictor, tmp_path: Path) -> Path:
    """A ".onnx" file whose 'runtime' is the torch deploy model, declared dynamic in batch and H, W."""
    model = torch_predictor.runner

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    def load_export(path: object, format: str, threads: int | None, precision: str = "fp32") -> LoadedExport:
        return LoadedExport(run, (None, 3, None, None), (None, 19, None, None))

    monkeypatch.setattr(runner_builder_module, "load_export", load_export)
    path = tmp_path / "dynamic.onnx"
    path.write_bytes(b"fake")
    return path


@pytest.mark.parametrize("export", ["fake_static_export", "fake_dynamic_export"])
def test_an_image_an_export_cannot_run_is_skipped_and_named_and_the_others_run(
    export: str,
    request: pytest.FixtureRequest,
    torch_predictor: Predictor,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    onnx = request.getfixturevalue(export)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    sizes = {"a.png": (64, 96), "b_tiny.png": (1, 1), "c.png": (60, 90), "d_small.png": (7, 5), "e.png": (64, 96)}
    images = {name: _image(h, w, seed=k) for k, (name, (h, w)) in enumerate(sizes.items())}
    for name, image in images.items():
        Image.fromarray(image).save(folder / name)
    args = ["predict", MODEL, str(folder), "--weights", str(onnx), "--dataset", "cityscapes", "--threads", "1"]
    assert main([*args, "-o", str(out)]) == 1  # as for an unreadable input: named, skipped, listed, exit 1
    captured = capsys.readouterr()
    assert "predicted 3 image(s)" in captured.out and "2 input(s) skipped" in captured.out
    skipped = [line for line in captured.err.splitlines() if line.startswith("dsnet predict: skipped")]
    assert len(skipped) == 2 and "b_tiny.png: image 1x1" in skipped[0] and "d_small.png: image 7x5" in skipped[1]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.png", "c.png", "e.png"]
    for name in ("a.png", "c.png", "e.png"):
        label = cv2.imread(str(out / "labels" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(label, torch_predictor(images[name])), name


def test_an_export_carries_the_label_space_of_its_weights(
    monkeypatch: pytest.MonkeyPatch, torch_predictor: Predictor, tmp_path: Path
) -> None:
    """What ``dsnet export`` stores (export_metadata) is what a predictor on the exported file names its
    classes by: no --dataset needed, and names the registry does not know (a folder dataset's) survive."""
    space = LabelSpace("my-folder", tuple(f"thing{k}" for k in range(19)), generate_palette(19))
    stored = export_metadata(MODEL, space.to_metadata())
    assert stored[MODEL_KEY] == MODEL and set(stored) == {MODEL_KEY, "dsnet.label_space", "dsnet.dataset"}
    model = torch_predictor.runner

    def load_export(path: object, format: str, threads: int | None, precision: str = "fp32") -> LoadedExport:
        return LoadedExport(
            lambda x: model(torch.from_numpy(x)).detach().numpy(), (None, 3, None, None), (None, 19, None, None), stored
        )

    monkeypatch.setattr(runner_builder_module, "load_export", load_export)
    path = tmp_path / "carried.onnx"
    path.write_bytes(b"fake")
    p = Predictor(MODEL, weights=path, threads=1)
    assert (
        p.label_space.name == "my-folder"
        and p.label_space.classes == space.classes
        and p.label_space.palette == space.palette
    )
    assert Predictor(MODEL, weights=path, threads=1, dataset="cityscapes").label_space.name == "cityscapes"  # asked for


# ------------------------------------------------------------------------------ errors


def test_backend_errors_name_the_file_or_setting(tmp_path: Path, weights: Path) -> None:
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    with pytest.raises(ConfigError, match="m.xml: an exported openvino file runs with --backend onnxruntime or"):
        Predictor(MODEL, weights=xml, backend="torch")
    with pytest.raises(ConfigError, match="an OpenVINO IR file runs with backend 'openvino', not 'onnxruntime'"):
        Predictor(MODEL, weights=xml, backend="onnxruntime")
    with pytest.raises(ConfigError, match="not in a LogitsFn backend"):
        Predictor(MODEL, weights=xml, backend=lambda batch: batch)
    with pytest.raises(ConfigError, match="process-wide"):
        Predictor(MODEL, weights=weights, threads=2)
    with pytest.raises(ConfigError, match="runs on the CPU here, not on cuda"):
        Predictor(MODEL, weights=weights, backend="openvino", device="cuda")


def test_a_missing_runtime_says_which_extra_to_install(
    tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"fake")
    with pytest.raises(MissingBackendError, match=r"'onnxruntime' package, which is not installed: pip install"):
        Predictor(MODEL, weights=onnx)
    Image.fromarray(_image(16, 24)).save(tmp_path / "a.png")
    args = ["predict", MODEL, str(tmp_path / "a.png"), "--weights", str(onnx), "-o", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dsnet-seg[deploy]" in err


# ------------------------------------------------------------------------------ real runtimes (slow: exports)

SIZES = [(64, 96), (45, 61), (72, 120)]  # 45x61 pads to 48x64 and 72x120 is 9x15 blocks: not multiples of 16


def _torch_agrees(reference: Predictor, image: np.ndarray, label: np.ndarray, what: str) -> None:
    """``label`` (from a runtime: another float32 computation) is the torch label but at near ties. The torch
    label is the argmax of ``_logits``: what ``reference(image)`` computes, called directly (one forward)."""
    logits = _logits(reference.runner, image)
    assert_labels_agree(label, logits.argmax(0), logits, _logit_tol(reference.runner, logits), what=what)


def _agree(p: Predictor, reference: Predictor) -> None:
    for h, w in SIZES:
        images = [_image(h, w, seed=h + k) for k in range(3)]  # a batch of 3 through the dynamic batch axis
        # another runtime: two float32 runs of the network. The logit scale of the first image stands for
        # the three (one generator, one size; the bound has a wide margin) and saves two forward passes.
        tol = softmax_abs(_logit_tol(reference.runner, _logits(reference.runner, images[0])))
        for got, want in zip(p.predict_many(images, return_probs=True), reference.predict_many(images, True)):
            assert got.probs is not None and want.probs is not None
            assert_close_to_scale(got.probs, want.probs, rel=tol, scale=1.0, what=f"probabilities {h}x{w}")
            assert_labels_agree(got.label, want.label, want.probs, tol, what=f"labels {h}x{w}")
            assert len(np.unique(want.label)) > 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_checkpoint_run_by_a_runtime_gives_the_torch_labels(
    backend: str, weights: Path, torch_predictor: Predictor
) -> None:
    p = Predictor(MODEL, weights=weights, backend=backend, threads=1, batch_size=3)
    assert isinstance(p.runner, ArrayRunner) and p.static_size is None and p.class_names == torch_predictor.class_names
    _agree(p, torch_predictor)


@pytest.mark.slow
def test_exported_files_and_the_cli_backend_flag(weights: Path, torch_predictor: Predictor, tmp_path: Path) -> None:
    onnx, xml = tmp_path / "dyn.onnx", tmp_path / "static.xml"
    common = [MODEL, "--weights", str(weights), "--no-check"]
    assert main(["export", *common, "--format", "onnx", "--size", "64", "96", "--dynamic", "-o", str(onnx)]) == 0
    assert main(["export", *common, "--format", "openvino", "--size", "64", "96", "-o", str(xml)]) == 0
    for path, backend in [(onnx, None), (onnx, "openvino")]:
        p = Predictor(MODEL, weights=path, backend=backend, dataset="cityscapes", threads=1)
        assert p.backend == (backend or "onnxruntime") and p.label_space.num_classes == 19
        _agree(p, torch_predictor)
    static = Predictor(MODEL, weights=xml, threads=1)
    assert static.backend == "openvino" and static.static_size == (64, 96) and static.label_space.num_classes == 19
    assert static.label_space == torch_predictor.label_space  # the weights' label space travels in the export
    assert Predictor(MODEL, weights=onnx, threads=1).label_space == torch_predictor.label_space
    image = _image(64, 96, seed=5)
    _torch_agrees(torch_predictor, image, static(image), "static openvino")

    folder = tmp_path / "in"
    folder.mkdir()
    images = {f"{k}.png": _image(h, w, seed=k) for k, (h, w) in enumerate(SIZES)}
    for name, image in images.items():
        Image.fromarray(image).save(folder / name)
    # both flag values, a checkpoint (exported on the fly: OpenVINO converts faster than ONNX's dynamo
    # exporter) and an exported file; every other pairing runs through Predictor above
    for args in (
        ["--weights", str(weights), "--backend", "openvino", "--threads", "1"],
        ["--weights", str(xml.with_name("dyn.onnx")), "--backend", "onnxruntime", "--dataset", "cityscapes"],
    ):
        out = tmp_path / f"out_{args[3]}"
        assert main(["predict", MODEL, str(folder), "-o", str(out), "--color", *args]) == 0
        for name, image in images.items():
            label = cv2.imread(str(out / "labels" / name), cv2.IMREAD_UNCHANGED)
            _torch_agrees(torch_predictor, image, label, f"{args} {name}")


@pytest.mark.parametrize("shape", [(2, 11, 9, 13), (1, 1, 4, 5), (3, 150, 6, 7)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_argmax_channels_equals_argmax_ties_included(shape: tuple[int, ...], channels_last: bool) -> None:
    scores = torch.randn(shape).round(decimals=1)  # many ties: the first maximum must win, as in argmax
    if shape[1] > 3:
        scores[:, 3] = scores[:, 1]
    if channels_last:
        scores = scores.contiguous(memory_format=torch.channels_last)
    got = argmax_channels(scores)
    assert got.dtype == torch.int64 and torch.equal(got, scores.argmax(dim=1))
