"""``dsnet serve``'s live stream (WebSocket /v1/stream) against a real server, with a model of known speed.

The app runs in uvicorn on a thread of this process; its model is a Predictor made of parts: a function that
sleeps a set time and calls a pixel class 1 where the image is red. So the tests can say how fast the model
is, send frames faster than that, and check which frames come back, in what order, and how late.
"""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
sync_client = pytest.importorskip("websockets.sync.client", reason="the [serve] extra is not installed")
from websockets.exceptions import ConnectionClosed  # noqa: E402

from dsnet.deploy import ArrayRunner, RunnerInfo  # noqa: E402
from dsnet.predict import Predictor, ResolvedModel, label_space  # noqa: E402
from dsnet.serve import ServeSettings, create_app  # noqa: E402
from dsnet.serve.in_thread import serving_in_thread  # noqa: E402


def _red_is_class_one(seconds: float):
    def run(batch: np.ndarray) -> np.ndarray:
        time.sleep(seconds)
        return np.concatenate([np.zeros_like(batch[:, :1]), batch[:, :1]], axis=1)  # normalised red > 0 -> 1

    return run


def _predictor(seconds: float) -> Predictor:
    runner = ArrayRunner(_red_is_class_one(seconds), RunnerInfo("callable", "fp32", torch.device("cpu")))
    return Predictor(ResolvedModel(runner, label_space(None, 2), name="red-finder"))


def _frame(height: int = 48, width: int = 64, red_rows: int = 16) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:red_rows, :, 0] = 255
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


@contextmanager
def _serving(seconds: float, **settings: int) -> Iterator[str]:
    """``host:port`` of a server whose model takes ``seconds`` a batch; stopped afterwards."""
    with serving_in_thread(create_app(_predictor(seconds), ServeSettings(batch_window_ms=0, **settings))) as address:
        yield address


def _answer(ws) -> tuple[dict, bytes | None]:
    header = json.loads(ws.recv(timeout=20))
    return header, (None if "error" in header else ws.recv(timeout=20))


def test_frames_come_back_in_order_with_their_ids_and_labels() -> None:
    with _serving(0.0) as address, sync_client.connect(f"ws://{address}/v1/stream") as ws:
        for expected in range(3):
            ws.send(_frame(red_rows=8 * (expected + 1)))
            header, png = _answer(ws)
            assert header["frame"] == expected and header["dropped"] == 0 and header["size"] == [48, 64]
            assert header["latency_ms"] >= header["inference_ms"] >= 0
            label = np.asarray(Image.open(io.BytesIO(png)))
            assert label.shape == (48, 64) and (label[: 8 * (expected + 1)] == 1).all()
            assert (label[8 * (expected + 1) :] == 0).all()
    with _serving(0.0) as address, sync_client.connect(f"ws://{address}/v1/stream?format=color") as ws:
        ws.send(_frame())
        _, png = _answer(ws)
        assert np.asarray(Image.open(io.BytesIO(png))).shape == (48, 64, 3)


def test_a_source_five_times_faster_than_the_model_meets_a_bounded_latency() -> None:
    model_s, period_s, frames = 0.1, 0.02, 100
    headers: list[dict] = []
    with _serving(model_s) as address, sync_client.connect(f"ws://{address}/v1/stream") as ws:

        def send() -> None:
            for _ in range(frames):
                ws.send(_frame())
                time.sleep(period_s)

        sender = threading.Thread(target=send)
        sender.start()
        while True:
            header, _ = _answer(ws)
            headers.append(header)
            if header["frame"] == frames - 1:
                break
        sender.join()
    ids = [h["frame"] for h in headers]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, none twice
    assert headers[-1]["dropped"] == frames - len(headers) > 0  # every frame answered or counted as dropped
    model_ms = statistics.median(h["inference_ms"] for h in headers)
    latencies = sorted(h["latency_ms"] for h in headers)
    p90 = latencies[int(0.9 * (len(latencies) - 1))]
    # a frame waits at most for the one in the model, then takes its own turn: under two model times
    # (plus decoding and encoding, a few ms at this size)
    assert p90 < 2 * model_ms + 25, f"p90 latency {p90:.0f} ms with the model at {model_ms:.0f} ms"


def test_a_bad_frame_gets_an_error_and_the_stream_goes_on() -> None:
    with _serving(0.0, max_pixels=48 * 64) as address, sync_client.connect(f"ws://{address}/v1/stream") as ws:
        ws.send(b"not an image at all")
        header, _ = _answer(ws)
        assert header == {"frame": 0, "error": "the body is not a PNG, JPEG or WebP image"}
        ws.send(_frame(96, 64))
        header, _ = _answer(ws)
        assert header["frame"] == 1 and "over the limit of 3,072" in header["error"]
        ws.send(_frame())
        header, png = _answer(ws)
        assert header["frame"] == 2 and png is not None


def _close_of(url: str) -> tuple[int, str]:
    with sync_client.connect(url) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=20)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def test_limits_close_the_stream_with_a_reason() -> None:
    with _serving(0.0, max_streams=1, max_body_bytes=10_000) as address:
        url = f"ws://{address}/v1/stream"
        with sync_client.connect(url):
            time.sleep(0.2)  # the first stream holds the only slot
            assert _close_of(url) == (1013, "1 streams are open already (--max-streams 1)")
        assert _close_of(f"{url}?format=json") == (1008, "format=json: a stream answers label, ids, color or overlay")
        with sync_client.connect(url) as ws, pytest.raises(ConnectionClosed) as info:
            ws.send(b"x" * 20_000)
            ws.recv(timeout=20)
        assert info.value.rcvd.code == 1009 and "20,000 bytes is over the limit of 10,000" in info.value.rcvd.reason


def test_a_client_that_leaves_mid_frame_frees_its_slot() -> None:
    with _serving(0.5, max_streams=1) as address:
        url = f"ws://{address}/v1/stream"
        with sync_client.connect(url) as ws:
            ws.send(_frame())
            ws.send(_frame())  # waits behind the first; never computed once the client is gone
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while True:  # the server notices the close within a moment
            try:
                with sync_client.connect(url) as ws:
                    ws.send(_frame())
                    header, png = _answer(ws)
                    break
            except ConnectionClosed:
                assert time.monotonic() < deadline, "the slot was not freed"
                time.sleep(0.1)
        assert header["frame"] == 0 and png is not None


def test_single_images_are_answered_while_a_stream_runs() -> None:
    with _serving(0.05) as address, sync_client.connect(f"ws://{address}/v1/stream") as ws:
        stop = threading.Event()

        def stream() -> None:
            while not stop.is_set():
                ws.send(_frame())
                time.sleep(0.01)

        sender = threading.Thread(target=stream)
        sender.start()
        try:
            request = urllib.request.Request(
                f"http://{address}/v1/segment?format=json", data=_frame(), headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(request, timeout=20) as response:
                doc = json.loads(response.read())
            assert response.status == 200 and doc["size"] == [48, 64]
        finally:
            stop.set()
            sender.join()


def _labels_of_stream(address: str, query: str, frames: list[bytes]) -> list[np.ndarray]:
    labels = []
    with sync_client.connect(f"ws://{address}/v1/stream{query}") as ws:
        for frame in frames:
            ws.send(frame)
            header, png = _answer(ws)
            assert "error" not in header
            labels.append(np.asarray(Image.open(io.BytesIO(png))))
    return labels


def test_smoothing_over_frames_steadies_flickering_labels() -> None:
    flicker = [_frame(red_rows=48 if k % 2 == 0 else 0) for k in range(6)]  # the whole image red, then black
    with _serving(0.0) as address:
        plain = _labels_of_stream(address, "", flicker)
        smooth = _labels_of_stream(address, "?smooth=0.8", flicker)
        assert _close_of(f"ws://{address}/v1/stream?smooth=1") == (
            1008,
            "smooth='1': expected a number in [0, 1) (0: off)",
        )
    assert [int(label.mean() > 0.5) for label in plain] == [1, 0, 1, 0, 1, 0]  # every frame flips every pixel
    # the average of the class probabilities (red: 0.90 for class 1, black: 0.11) stays above one half
    assert [int(label.mean() > 0.5) for label in smooth] == [1, 1, 1, 1, 1, 1]
