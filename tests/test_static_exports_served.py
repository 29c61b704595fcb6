"""Static and dynamic exports of the shipped model (static: what `dsnet export` writes by default and `make demo`
makes) run the images they were made for behind `dsnet predict` and `dsnet serve` (issue [2 of 5], items 5-6):
the server warms up at a static export's own size, the weights' training size (`input_long_side`) still scales
the images, and an image the export cannot run is a 400 with a JSON reason."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsnet
from dsnet.cli import main

from .test_serve_process import Server, serving

pytest.importorskip("openvino", reason="the [deploy] extra is not installed")

VAL = Path(__file__).resolve().parents[1] / "demo" / "camvid-mini" / "images" / "val"


@pytest.fixture(scope="module", params=["static", "dynamic"])
def static_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model exported as `make demo` does (static, 240x320), and with --dynamic."""
    out = tmp_path_factory.mktemp(request.param) / "head64.xml"
    args = ["export", "dsnet_head64", "--weights", "camvid-cpu60min", "--format", "openvino", "--size", "240", "320"]
    assert main([*args, "-o", str(out), *(["--dynamic"] if request.param == "dynamic" else [])]) == 0
    return out


@pytest.fixture(scope="module")
def checkpoint_labels() -> dict[str, np.ndarray]:
    predictor = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu")
    return {path.stem: predictor(path) for path in sorted(VAL.glob("*.jpg"))}


@pytest.mark.slow
def test_dsnet_predict_runs_every_demo_image_on_a_static_export(static_export, checkpoint_labels, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "dsnet_head64", "--weights", str(static_export), str(VAL), "-o", str(out)]) == 0
    assert "skipped" not in capsys.readouterr().err
    for name, expected in checkpoint_labels.items():
        label = np.asarray(Image.open(out / "labels" / f"{name}.png"))
        assert label.shape == expected.shape == (180, 240)
        assert (label == expected).mean() > 0.999, name  # scaled to 240x320 as the checkpoint is


@pytest.fixture(scope="module")
def static_server(static_export: Path) -> Iterator[Server]:
    yield from serving(["dsnet_head64", "--weights", str(static_export), "--threads", "1"])


@pytest.mark.slow
def test_dsnet_serve_starts_on_a_static_export_and_answers_its_images(static_server, checkpoint_labels):
    name = sorted(checkpoint_labels)[0]
    status, headers, body = static_server.segment((VAL / f"{name}.jpg").read_bytes(), content_type="image/jpeg")
    assert status == 200, body[:300]
    label = np.asarray(Image.open(io.BytesIO(body)))
    assert label.shape == (180, 240)
    assert (label == checkpoint_labels[name]).mean() > 0.999


@pytest.mark.slow
def test_every_error_of_the_server_is_json_with_its_status(static_server):
    import json

    thin = io.BytesIO()
    Image.fromarray(np.zeros((1, 5000, 3), np.uint8)).save(thin, "PNG")
    status, _, body = static_server.segment(thin.getvalue())
    reason = json.loads(body)["error"]  # static: not its size; dynamic: too thin for the export
    assert status == 400 and ("does not fit the static export's input 240x320" in reason or "too small" in reason)
    for method, path, expected in (("GET", "/nope", 404), ("GET", "/v1/segment", 405), ("GET", "/v1/examples/x", 422)):
        status, headers, body = static_server.request(method, path)
        assert status == expected and headers["content-type"] == "application/json", (path, body)
        assert set(json.loads(body)) == {"error"} and json.loads(body)["error"]
