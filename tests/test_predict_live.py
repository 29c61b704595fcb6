"""``dsnet predict`` on a live source: names it takes, a stream URL that OpenCV opens (a clip served over HTTP
here), ``--max-frames``, and Ctrl-C, which stops the run and keeps what was written playable."""

from __future__ import annotations

import functools
import http.server
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import dsnet
from dsnet.cli import main
from dsnet.predict.live import parse_live_source


def test_live_sources_are_told_from_files() -> None:
    camera = parse_live_source("camera:2")
    assert camera is not None and camera.target == 2 and camera.rel == Path("camera2")
    url = parse_live_source("rtsp://cam.local:554/stream1")
    assert url is not None and url.target == "rtsp://cam.local:554/stream1"
    assert url.rel == Path("rtsp_cam.local_554_stream1")
    for not_live in ("clip.mp4", "frames/", "camera:", "camera:x", "file:///clip.mp4", "*.png"):
        assert parse_live_source(not_live) is None


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live-weights") / "w.safetensors"
    model = dsnet.create_model("dsnet_head64", num_classes=5, aux_heads=False)
    return dsnet.save_weights(model, path, {"model": "dsnet_head64"})


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://host:port of a folder holding clip.avi (40 frames of 64x48) and long.avi (2000 frames of 256x192,
    a minute or more of work here: a source that outlasts the test), MJPG."""
    folder = tmp_path_factory.mktemp("clips")
    for name, frames, (w, h) in (("clip.avi", 40, (64, 48)), ("long.avi", 2000, (256, 192))):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
        for k in range(frames):
            writer.write(np.full((h, w, 3), (k * 7) % 256, np.uint8))
        writer.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_a_stream_url_is_predicted_into_a_video(weights: Path, clip_server: str, tmp_path: Path, capsys) -> None:
    url = f"{clip_server}/clip.avi"
    out = tmp_path / "out"
    code = main(
        ["predict", "dsnet_head64", "--weights", str(weights), url, "-o", str(out), "--color", "--max-frames", "12"]
    )
    assert code == 0
    written = out / "color" / f"http_127.0.0.1_{clip_server.rsplit(':', 1)[1]}_clip.avi.mp4"
    assert written.is_file() and _frames(written) == 12
    said = capsys.readouterr().out
    assert f"live {url}: 12 frames" in said and str(written) in said
    code = main(["predict", "dsnet_head64", "--weights", str(weights), url, "-o", str(tmp_path / "plain")])
    assert code == 2 and "a live source needs --color, --overlay or --video-labels" in capsys.readouterr().err


def test_ctrl_c_stops_a_live_run_and_keeps_a_playable_video(weights: Path, clip_server: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dsnet", "predict", "dsnet_head64", "--weights", str(weights)]
    command += [f"{clip_server}/long.avi", "-o", str(out), "--overlay", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "overlay").is_dir() or not list((out / "overlay").glob("*.partial.mp4")):  # writing began
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(1.5)  # a few frames more
    assert process.poll() is None, "the source ended before Ctrl-C"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stopped by Ctrl-C" in stdout
    videos = list((out / "overlay").glob("*.mp4"))
    assert len(videos) == 1 and ".partial" not in videos[0].name  # closed and renamed: whole
    assert 0 < _frames(videos[0]) < 2000
