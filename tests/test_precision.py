"""``--precision {auto,fp32,bf16,int8}`` (issue [3 of 4]): the decision rule, the bf16 forms of the model,
the Predictor and ``dsnet predict`` in each precision, and the bench's per-precision peaks.

Accuracy is checked on the trained CamVid model shipped with the package (random weights have logits too
close together for label agreement to mean anything); the full table is benchmarks/precision_accuracy.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dsnet
from dsnet.bench import run_bench
from dsnet.bench.system import matmul_peaks
from dsnet.cli import main
from dsnet.data.calibration import CalibrationSet
from dsnet.deploy.precision import Bf16Module, to_bf16
from dsnet.errors import ConfigError
from dsnet.hardware import native_bf16, resolve_precision

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "demo" / "camvid-mini"
EPYC = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]  # native bf16 and VNNI
XEON_VNNI = ["avx2", "fma", "avx512f", "avx512_vnni"]  # VNNI, no bf16
AVX2 = ["avx2", "fma"]
NATIVE_BF16 = native_bf16("cpu")


@pytest.mark.parametrize(
    ("flags", "backend", "expected"),
    [
        (EPYC, "torch", "bf16"),
        (EPYC, "openvino", "bf16"),
        (EPYC, "onnxruntime", "fp32"),  # no bf16 path in ONNX Runtime's CPU provider
        (["amx_bf16", "amx_int8"], "torch", "bf16"),
        (XEON_VNNI, "torch", "fp32"),  # emulated bf16 is slower than fp32: never chosen
        (XEON_VNNI, "openvino", "fp32"),
        (AVX2, "torch", "fp32"),
        ([], "openvino", "fp32"),
        (EPYC, "callable", "fp32"),
    ],
)
def test_auto_picks_native_bf16_only(flags, backend, expected):
    assert resolve_precision("auto", "cpu", backend, flags)[0] == expected


def test_auto_never_quantizes_but_runs_an_int8_export_as_int8():
    assert resolve_precision("auto", "cpu", "openvino", EPYC)[0] == "bf16"
    assert resolve_precision("auto", "cpu", "openvino", AVX2, quantized=True) == ("int8", "the model is an INT8 export")
    with pytest.raises(ConfigError, match="quantized to INT8; --precision fp32 needs a float model"):
        resolve_precision("fp32", "cpu", "openvino", EPYC, quantized=True)


def test_asked_precisions_each_backend_cannot_run_are_errors():
    with pytest.raises(ConfigError, match=r"precision int8 does not run on backend 'torch' \(it runs on: openvino\)"):
        resolve_precision("int8", "cpu", "torch", EPYC)
    with pytest.raises(ConfigError, match="precision bf16 does not run on backend 'onnxruntime'"):
        resolve_precision("bf16", "cpu", "onnxruntime", EPYC)
    with pytest.raises(ConfigError, match="OpenVINO computes bf16 only on CPUs with avx512_bf16 or amx_bf16"):
        resolve_precision("bf16", "cpu", "openvino", AVX2)
    with pytest.raises(ConfigError, match="precision 'int4' must be one of auto, fp32, bf16, int8"):
        resolve_precision("int4", "cpu", "torch", EPYC)
    precision, why = resolve_precision("bf16", "cpu", "torch", AVX2)  # asked for: runs, and says it is emulated
    assert precision == "bf16" and "emulated" in why


@pytest.mark.parametrize("mode", ["autocast", "cast"])
def test_bf16_forms_take_and_return_float32_and_leave_the_model_alone(mode):
    model = dsnet.create_model("dsnet_head64", num_classes=5, aux_heads=False).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        out = to_bf16(model, mode)(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert next(model.parameters()).dtype == torch.float32  # a copy was converted
    assert float((out - ref).abs().max() / ref.abs().max()) < 0.1  # bf16 keeps about 3 significant digits
    with pytest.raises(ConfigError, match="bf16 mode 'fp8'"):
        Bf16Module(model, "fp8")


def _demo_images(count: int) -> list[np.ndarray]:
    files = sorted((MINI / "images" / "val").glob("*.jpg"))[:count]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def _agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))


@pytest.fixture(scope="module")
def fp32_labels():
    predictor = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu", precision="fp32")
    assert predictor.precision == "fp32"
    return [predictor(image) for image in _demo_images(3)]


def test_bf16_predictor_keeps_the_trained_models_labels(fp32_labels):
    predictor = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu", precision="bf16")
    assert predictor.precision == "bf16" and isinstance(predictor.runner.module, Bf16Module)
    assert _agreement(fp32_labels, [predictor(image) for image in _demo_images(3)]) > 0.99


def test_auto_predictor_follows_the_cpu_flags():
    predictor = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu", precision="auto")
    assert predictor.precision == ("bf16" if NATIVE_BF16 else "fp32")
    assert predictor.precision_reason.startswith("auto: ")


def test_precisions_a_backend_cannot_run_are_refused_before_any_work():
    with pytest.raises(ConfigError, match="precision int8 does not run on backend 'torch'"):
        dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu", precision="int8")
    with pytest.raises(ConfigError, match="precision bf16 does not run on backend 'onnxruntime'"):
        dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", backend="onnxruntime", precision="bf16")


@pytest.mark.skipif(not NATIVE_BF16, reason="OpenVINO runs bf16 only on CPUs with native bf16")
def test_openvino_bf16_keeps_the_trained_models_labels(fp32_labels):
    pytest.importorskip("openvino")
    predictor = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", backend="openvino", precision="bf16")
    assert predictor.precision == "bf16"
    assert _agreement(fp32_labels, [predictor(image) for image in _demo_images(3)]) > 0.99


@pytest.mark.slow
def test_openvino_int8_from_the_checkpoint_with_calibration_images(fp32_labels):
    pytest.importorskip("nncf")
    calibration = CalibrationSet(MINI / "images" / "train", None, count=8)
    assert calibration.size == (176, 240)  # the first image's own size (180x240), rounded down to a multiple of 8
    predictor = dsnet.Predictor(
        "dsnet_head64", weights="camvid-cpu60min", backend="openvino", precision="int8", calibration=calibration
    )
    assert predictor.precision == "int8"
    assert _agreement(fp32_labels, [predictor(image) for image in _demo_images(3)]) > 0.95
    with pytest.raises(ConfigError, match="needs calibration images"):
        dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", backend="openvino", precision="int8")


def test_predict_prints_its_precision_and_refuses_calib_without_int8(tmp_path, capsys):
    images = str(MINI / "images" / "val" / "0016E5_07959.jpg")
    args = ["predict", "dsnet_head64", images, "--weights", "camvid-cpu60min", "--device", "cpu"]
    assert main([*args, "--precision", "bf16", "-o", str(tmp_path / "bf16")]) == 0
    assert "dsnet predict: torch backend, bf16 (asked for" in capsys.readouterr().out
    assert (tmp_path / "bf16" / "labels" / "0016E5_07959.png").is_file()
    assert main([*args, "--calib", str(MINI / "images" / "train"), "-o", str(tmp_path / "x")]) == 2
    assert "calibration images are for --precision int8 only" in capsys.readouterr().err


def test_bench_auto_rows_and_shares_of_each_precisions_peak():
    peaks = matmul_peaks(seconds=0.05)
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    report = run_bench(
        "dsnet_head64",
        (32, 64),
        backends=("eager", "onnxruntime"),
        precisions=("auto",),
        target_seconds=0.05,
        warmup=1,
        rounds=2,
    )
    rows = {r.backend: r for r in report.rows}
    assert rows["eager"].precision == ("bf16" if NATIVE_BF16 else "fp32")
    assert rows["onnxruntime"].precision == "fp32" or rows["onnxruntime"].error
    eager = rows["eager"]
    peak = report.machine["matmul_peak_gflops"][eager.precision]
    assert eager.share_of_peak == pytest.approx(eager.achieved_conv_gflops / peak, rel=0.01)
