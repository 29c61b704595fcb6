"""The page's live mode in a real browser: Chromium's fake camera fed a clip of CamVid frames, and a video file
chosen in the page, both segmented through ``dsnet serve``'s /v1/stream.

The clip is made here from the CamVid frames shipped in demo/camvid-mini (CC BY-NC 4.0): a Y4M file for the
fake camera (``--use-file-for-fake-video-capture``) and a VP8 WebM for the file input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

import dsnet  # noqa: E402
from dsnet.data.builder import describe_dataset  # noqa: E402

from .test_serve_process import Server, _browser, serving  # noqa: E402

FRAMES = sorted((Path(__file__).resolve().parents[1] / "demo" / "camvid-mini" / "images" / "val").glob("*.jpg"))
WANTED_ANSWERS = 10


def _clip_frames() -> list[np.ndarray]:
    """BGR frames of one size (even sides, as 4:2:0 video needs), the shipped ones twice over."""
    frames = [cv2.imread(str(path)) for path in FRAMES]
    h, w = (min(f.shape[0] for f in frames) // 2) * 2, (min(f.shape[1] for f in frames) // 2) * 2
    return [f[:h, :w] for f in frames] * 2


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 10) -> Path:
    """A YUV4MPEG2 clip (4:2:0), the format Chromium's fake camera reads."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not FRAMES:
        pytest.skip("demo/camvid-mini is not in this checkout")
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False)
    path = tmp_path_factory.mktemp("live") / "camvid_random.safetensors"
    weights = dsnet.save_weights(model, path, {"model": "dsnet_head64"}, label_space=describe_dataset("camvid"))
    args = ["dsnet_head64", "--weights", str(weights), "--precision", "fp32", "--threads", "1", "--device", "cpu"]
    yield from serving(args)


def _run_live(driver, server: Server, start) -> dict:
    """Opens the page, starts live mode with ``start(driver)``, waits for the answers, stops; what it showed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"http://127.0.0.1:{server.port}/")
    WebDriverWait(driver, 30).until(lambda d: "dsnet_head64" in d.find_element(By.ID, "model").text)
    start(driver)
    WebDriverWait(driver, 120).until(lambda d: d.execute_script("return window.dsnetLive.answered") >= WANTED_ANSWERS)
    shown = driver.execute_script(
        "const l = window.dsnetLive, c = document.getElementById('live-canvas');"
        "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let colored = 0; for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 0) colored++;"
        "return {answered: l.answered, errors: l.errors, fps: l.fps, latency: l.latencyMs, roundTrip: l.roundTripMs,"
        " width: c.width, height: c.height, hidden: c.hidden, colored, stats: document.getElementById('live-stats')"
        ".textContent, open: l.socket !== null && l.socket.readyState === 1};"
    )
    driver.find_element(By.ID, "live-stop").click()
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return window.dsnetLive.socket === null"))
    return shown


def _check(shown: dict) -> None:
    assert shown["answered"] >= WANTED_ANSWERS and shown["errors"] == 0 and shown["open"]
    assert shown["fps"] > 0 and shown["latency"] > 0 and shown["roundTrip"] > 0
    assert not shown["hidden"] and shown["width"] > 0 and shown["colored"] > 0.9 * shown["width"] * shown["height"]
    assert "FPS" in shown["stats"] and "frames segmented" in shown["stats"]


def test_live_mode_segments_the_camera(live_server: Server, tmp_path: Path) -> None:
    clip = write_y4m(_clip_frames(), tmp_path / "camvid.y4m")
    flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    driver = _browser(*flags, f"--use-file-for-fake-video-capture={clip}")
    try:
        from selenium.webdriver.common.by import By

        shown = _run_live(driver, live_server, lambda d: d.find_element(By.ID, "live-camera").click())
    finally:
        driver.quit()
    _check(shown)
    assert (shown["width"], shown["height"]) == (240, 180)  # the clip's frames, at their own size


def test_live_mode_segments_a_chosen_video_file(live_server: Server, tmp_path: Path) -> None:
    frames = _clip_frames()
    h, w = frames[0].shape[:2]
    video = tmp_path / "camvid.webm"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"), 10, (w, h))
    if not writer.isOpened():
        pytest.skip("OpenCV here cannot write VP8 WebM")
    for frame in frames:
        writer.write(frame)
    writer.release()
    driver = _browser("--autoplay-policy=no-user-gesture-required")
    try:
        from selenium.webdriver.common.by import By

        shown = _run_live(driver, live_server, lambda d: d.find_element(By.ID, "live-file").send_keys(str(video)))
    finally:
        driver.quit()
    _check(shown)
