"""``dsnet serve`` as a real process on a free loopback port: the API, bad input, faults, a bounded load
and the page in a real browser (Chromium through Selenium). The server is stopped by the fixture.

Throughput against ``dsnet predict`` is a benchmark (benchmarks/serve_load.py), not a timed test.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsnet
from dsnet.data import describe_dataset
from dsnet.data.labels import colorize

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

MAX_PIXELS = 200_000
MAX_BODY_MB = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def segment(self, png: bytes, query: str = "", content_type: str = "image/png") -> tuple[int, dict, bytes]:
        return self.request("POST", f"/v1/segment{query}", png, {"Content-Type": content_type})


def _png(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False)
    path = tmp_path_factory.mktemp("serve") / "camvid_random.safetensors"
    return dsnet.save_weights(model, path, {"model": "dsnet_head64"}, label_space=describe_dataset("camvid"))


def serving(serve_args: list[str]) -> Iterator[Server]:
    """``dsnet serve SERVE_ARGS --port P`` as a process, yielded once ready, terminated afterwards."""
    port = _free_port()
    command = [sys.executable, "-m", "dsnet", "serve", *serve_args, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(process, port)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dsnet serve exited with {process.returncode}: {process.stdout.read()}")
        try:
            if server.request("GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("dsnet serve did not become ready in 120 s")
        time.sleep(0.2)
    yield server
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def server(weights: Path) -> Iterator[Server]:
    args = ["dsnet_head64", "--weights", str(weights), "--precision", "fp32", "--threads", "1", "--device", "cpu"]
    args += ["--max-pixels", str(MAX_PIXELS), "--max-body-mb", str(MAX_BODY_MB), "--batch-window-ms", "50"]
    yield from serving(args)


@pytest.fixture(scope="module")
def predictor(weights: Path) -> dsnet.Predictor:
    return dsnet.Predictor("dsnet_head64", weights=weights, device="cpu", precision="fp32")


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_label_png_equals_the_predictor_and_every_format(server, predictor):
    rgb = _image(72, 96)
    status, headers, body = server.segment(_png(rgb))
    assert status == 200 and headers["content-type"] == "image/png"
    label = _decode(body)
    expected = predictor(rgb)
    assert label.shape == (72, 96) and np.mean(label == expected) > 0.999
    assert headers["x-dsnet-backend"] == "torch" and headers["x-dsnet-precision"] == "fp32"
    space = describe_dataset("camvid")
    assert np.array_equal(_decode(server.segment(_png(rgb), "?format=color")[2]), colorize(label, space.palette))
    overlay = _decode(server.segment(_png(rgb), "?format=overlay&alpha=1")[2])
    assert np.array_equal(overlay, colorize(label, space.palette))  # alpha 1: the colours alone
    ids = _decode(server.segment(_png(rgb), "?format=ids")[2])
    assert np.array_equal(ids, space.to_dataset_ids(label))
    status, headers, body = server.segment(_png(rgb), "?format=json")
    doc = json.loads(body)
    assert status == 200 and doc["size"] == [72, 96] and doc["model"] == "dsnet_head64"
    assert [c["name"] for c in doc["classes"]] == list(space.classes)
    assert sum(c["share"] for c in doc["classes"]) == pytest.approx(1.0, abs=1e-4)
    assert doc["latency_ms"] > 0 and doc["precision"] == "fp32"


def test_jpeg_webp_and_multipart_uploads(server):
    rgb = _image(40, 56, seed=1)
    for fmt, kind in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        status, _, body = server.segment(_png(rgb, fmt), content_type=kind)
        assert status == 200 and _decode(body).shape == (40, 56)
    boundary = "dsnetBoundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + _png(rgb)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, out = server.segment(body, content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 200 and _decode(out).shape == (40, 56)


def test_metadata_health_readiness_page_and_openapi(server):
    status, _, body = server.request("GET", "/v1/model")
    meta = json.loads(body)
    assert status == 200 and meta["label_space"]["name"] == "camvid" and len(meta["label_space"]["classes"]) == 11
    assert meta["input"]["max_pixels"] == MAX_PIXELS and meta["precision"] == "fp32"
    assert server.request("GET", "/healthz")[0] == 200
    assert json.loads(server.request("GET", "/readyz")[2])["ready"] is True
    status, headers, page = server.request("GET", "/")
    assert status == 200 and b'<canvas id="overlay"' in page and headers["content-type"].startswith("text/html")
    assert server.request("GET", "/page/app.js")[0] == 200
    assert server.request("GET", "/page/..%2f..%2fpyproject.toml")[0] == 404
    assert b"/v1/segment" in server.request("GET", "/openapi.json")[2]
    names = json.loads(server.request("GET", "/v1/examples")[2])
    assert names and server.request("GET", "/v1/examples/0")[0] == 200
    assert server.request("GET", f"/v1/examples/{len(names)}")[0] == 404


def _error(response: tuple[int, dict, bytes]) -> tuple[int, str]:
    status, _, body = response
    reason = json.loads(body)["error"]
    assert "\n" not in reason
    return status, reason


def test_bad_input_is_a_4xx_with_one_line_and_the_server_goes_on(server):
    good = _png(_image(32, 32))
    assert _error(server.segment(b"certainly not an image")) == (400, "the body is not a PNG, JPEG or WebP image")
    status, reason = _error(server.segment(good[: len(good) // 2]))
    assert status == 400 and reason.startswith("damaged or truncated image")
    status, reason = _error(server.segment(_png(np.zeros((500, 500, 3), np.uint8))))
    assert status == 413 and "250,000 pixels, over the limit of 200,000" in reason
    status, reason = _error(server.segment(b"x" * (MAX_BODY_MB * 1024 * 1024 + 1)))
    assert status == 413 and "over the limit" in reason
    assert _error(server.segment(good, content_type="text/plain"))[0] == 415
    assert _error(server.segment(good, "?format=jpeg")) == (
        400,
        "format='jpeg': expected one of label, ids, color, overlay, json",
    )
    assert _error(server.segment(good, "?alpha=2"))[0] == 400
    assert _error(server.segment(good, "?colour=1"))[0] == 400
    assert server.segment(good)[0] == 200


def _chunked_upload(port: int, size: int) -> int:
    """POST ``size`` bytes without a Content-Length (chunked), so the limit must be checked while reading."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        chunk = b"\0" * 65536

        def body() -> Iterator[bytes]:
            sent = 0
            while sent < size:
                yield chunk
                sent += len(chunk)

        try:
            conn.request("POST", "/v1/segment", body=body(), headers={"Content-Type": "image/png"}, encode_chunked=True)
            return conn.getresponse().status
        except (BrokenPipeError, ConnectionResetError):
            return 413  # the server answered and closed while the body was still going out
    finally:
        conn.close()


def test_faults_disconnects_and_concurrent_oversize_uploads_leave_the_server_well(server, predictor):
    rss_before = _rss_mib(server.process.pid)
    # a client that goes away mid-upload
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 500000\r\n\r\n")
        s.sendall(b"\x89PNG" + b"\0" * 1000)
    # 20 concurrent oversize uploads, streamed without a Content-Length
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(_chunked_upload(server.port, 3 * 1024 * 1024)))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [413] * 20
    rgb = _image(48, 64, seed=5)
    status, _, body = server.segment(_png(rgb))
    assert status == 200 and np.mean(_decode(body) == predictor(rgb)) > 0.999
    assert server.process.poll() is None
    assert _rss_mib(server.process.pid) - rss_before < 100  # the refused bodies were not kept


def test_bounded_load_mixed_sizes_no_errors_and_shared_passes(server):
    sizes = [(48, 64), (64, 96), (72, 96)]
    bodies = {s: _png(_image(*s, seed=i)) for i, s in enumerate(sizes)}
    results: list[tuple[int, tuple[int, int], int, int]] = []
    barrier = threading.Barrier(8)

    def client(k: int) -> None:
        barrier.wait()
        for i in range(10):
            size = sizes[(k + i) % len(sizes)]
            status, headers, body = server.segment(bodies[size])
            shape = _decode(body).shape if status == 200 else (0, 0)
            results.append((status, size, shape, int(headers.get("x-dsnet-batch-size", 0))))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 80  # none lost
    assert all(status == 200 and shape == size for status, size, shape, _ in results)
    assert max(batch for *_, batch in results) > 1  # requests that arrived together shared a pass


def _browser(*flags: str):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if os.path.exists("/usr/lib/chromium/chromedriver") else None
    )
    if binary is None or driver_path is None:
        pytest.skip("no Chromium and chromedriver here (.ci/run installs Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *flags):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_the_page_in_a_real_browser_shows_the_overlay_and_legend(server, tmp_path):
    driver = _browser()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        image = tmp_path / "street.png"
        Image.fromarray(_image(60, 80, seed=3)).save(image)
        driver.get(f"http://127.0.0.1:{server.port}/")
        WebDriverWait(driver, 30).until(lambda d: "dsnet_head64" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.ID, "overlay")))
        canvas = driver.find_element(By.ID, "overlay")
        size = driver.execute_script("const c = arguments[0]; return [c.width, c.height];", canvas)
        assert size == [80, 60]
        items = driver.find_elements(By.CSS_SELECTOR, "#legend li")
        assert len(items) == 11 and all(i.find_element(By.CLASS_NAME, "name").text for i in items)
        shares = [float(i.find_element(By.CLASS_NAME, "share").text.rstrip(" %")) for i in items]
        assert sum(shares) == pytest.approx(100, abs=1.0)
        assert driver.find_element(By.ID, "download").get_attribute("href").startswith("blob:")
        assert "torch backend, fp32" in driver.find_element(By.ID, "stats").text
    finally:
        driver.quit()


def test_the_page_draws_a_phone_photo_upright_with_its_labels(server, tmp_path):
    """A JPEG stored sideways with EXIF Orientation 6: the browser shows it upright, and so must the overlay
    (the server answers labels in the displayed orientation, so both agree)."""
    driver = _browser()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        upright = _image(60, 80, seed=5)
        upright[:20] = (250, 20, 20)  # a red band along the top edge: where "up" is
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        photo = tmp_path / "phone.jpg"
        Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(photo, quality=95, exif=exif.tobytes())
        driver.get(f"http://127.0.0.1:{server.port}/")
        WebDriverWait(driver, 30).until(lambda d: "dsnet_head64" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(photo))
        WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.ID, "overlay")))
        canvas = driver.find_element(By.ID, "overlay")
        assert driver.execute_script("const c = arguments[0]; return [c.width, c.height];", canvas) == [80, 60]
        top_row_red = driver.execute_script(
            "const o = document.getElementById('opacity'); o.value = 0; o.dispatchEvent(new Event('input'));"
            "const d = arguments[0].getContext('2d').getImageData(0, 2, 80, 1).data;"
            "let red = 0; for (let i = 0; i < 80; i++) red += d[4 * i] > 180 && d[4 * i + 1] < 90 ? 1 : 0; return red;",
            canvas,
        )
        assert top_row_red > 70  # the red band is on top: the image is drawn upright
    finally:
        driver.quit()


def test_the_openapi_schema_describes_the_segment_body_and_query(server: Server) -> None:
    status, _, body = server.request("GET", "/openapi.json")
    assert status == 200
    segment = json.loads(body)["paths"]["/v1/segment"]["post"]
    params = {p["name"]: p["schema"] for p in segment["parameters"]}
    assert params["format"]["enum"] == ["label", "ids", "color", "overlay", "json"] and params["alpha"]["maximum"] == 1
    content = segment["requestBody"]["content"]
    assert {"image/png", "image/jpeg", "image/webp", "multipart/form-data"} <= set(content)
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
