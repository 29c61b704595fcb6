"""``dsnet bench``: the protocol's bookkeeping on a tiny input (speed targets live in benchmarks/, not here)."""

from __future__ import annotations

import json

import pytest

from dsnet import create_model, save_weights
from dsnet.bench import format_report, run_bench
from dsnet.cli import main
from dsnet.errors import CheckpointMismatchError, ConfigError

from .expected import PARAMS

FAST = {"target_seconds": 0.1, "warmup": 1, "rounds": 2, "measure_peaks": False}  # >= 2 calls on a busy CI


def test_rows_for_every_backend_and_precision_with_eager_as_the_baseline() -> None:
    report = run_bench(
        "dsnet_head64", (32, 64), backends=("eager", "channels_last"), precisions=("fp32", "fp16"), **FAST
    )
    rows = {(r.backend, r.precision): r for r in report.rows}
    assert set(rows) == {("eager", "fp32"), ("channels_last", "fp32"), ("eager", "fp16"), ("channels_last", "fp16")}
    eager = rows[("eager", "fp32")]
    assert eager.speedup_vs_eager == pytest.approx(1.0)
    assert eager.iterations >= 2 and eager.latency_ms_median <= eager.latency_ms_p90
    assert eager.fps == pytest.approx(1e3 / eager.latency_ms_median, rel=1.0)  # same order of magnitude
    cl = rows[("channels_last", "fp32")]
    assert cl.speedup_vs_eager == pytest.approx(cl.fps / eager.fps)
    assert "not supported on the CPU" in rows[("eager", "fp16")].error  # reported, not a crash
    assert report.params == PARAMS["dsnet_head64"][0]  # the inference model, 19 classes
    text = format_report(report)
    assert "unavailable" in text and "channels_last" in text


def test_end_to_end_protocol_and_unknown_backend() -> None:
    report = run_bench("dsnet_head64", (32, 64), protocol="e2e", **FAST)
    assert report.rows[0].fps and report.rows[0].protocol == "e2e"
    with pytest.raises(ValueError, match="unknown backend"):
        run_bench("dsnet_head64", (32, 64), backends=("tensorrt-nope",), **FAST)


def test_cli_json_rows(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench.json"
    args = ["bench", "dsnet_head64", "--size", "32", "64", "--seconds", "0.05", "--json", "--out", str(out)]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"backend", "precision", "latency_ms_median", "latency_ms_p90", "fps", "speedup_vs_eager"} <= rows[0].keys()
    assert json.loads(out.read_text())["machine"]["cpu_flags"] is not None


@pytest.mark.slow
def test_deploy_backends_run_in_the_bench() -> None:
    report = run_bench(
        "dsnet_head64", (32, 64), backends=("eager", "fold", "fold_channels_last", "onnxruntime", "openvino"), **FAST
    )
    missing = [r.error for r in report.rows if r.error]
    assert not missing, missing
    assert all(r.fps and r.speedup_vs_eager for r in report.rows)


def test_weights_set_the_class_count_and_are_loaded(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = save_weights(create_model("dsnet_head64", num_classes=11), tmp_path / "w.safetensors")  # with aux heads
    report = run_bench("dsnet_head64", (32, 64), weights=path, **FAST)
    assert report.num_classes == 11 and report.weights == str(path)
    inference = create_model("dsnet_head64", num_classes=11, aux_heads=False)
    assert report.params == sum(p.numel() for p in inference.parameters()) < PARAMS["dsnet_head64"][0]
    assert "11 classes (weights " in format_report(report)
    with pytest.raises(ConfigError, match="the checkpoint has 11 classes, not 19"):
        run_bench("dsnet_head64", (32, 64), weights=path, num_classes=19, **FAST)
    with pytest.raises(CheckpointMismatchError):  # the weights really are loaded: another variant's do not fit
        run_bench("dsnet_head128", (32, 64), weights=path, **FAST)
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "dsnet_head64",
        "--size",
        "32",
        "64",
        "--seconds",
        "0.05",
        "--weights",
        str(path),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert json.loads(out.read_text())["num_classes"] == 11 and "11 classes" in capsys.readouterr().out
