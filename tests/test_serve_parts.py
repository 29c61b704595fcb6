"""The parts of ``dsnet serve`` in one process: request bodies and images, the batcher, the query rules.

The server as a real process, the browser and the faults are in tests/test_serve_process.py.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from dsnet.serve import Batcher, QueueFull, RequestRejected  # noqa: E402
from dsnet.serve.images import decode_image, image_from_body  # noqa: E402


def _png(width: int = 32, height: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _reason(call) -> tuple[int, str]:
    with pytest.raises(RequestRejected) as info:
        call()
    assert "\n" not in info.value.reason  # one line
    return info.value.status, info.value.reason


def test_images_decode_and_bad_bodies_are_4xx_with_one_line():
    assert decode_image(_png(), 10_000).shape == (24, 32, 3)
    for fmt in ("JPEG", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 8)).save(buf, fmt)
        assert decode_image(buf.getvalue(), 10_000).shape == (8, 16, 3)
    assert _reason(lambda: decode_image(b"hello, not an image", 10_000)) == (
        400,
        "the body is not a PNG, JPEG or WebP image",
    )
    status, reason = _reason(lambda: decode_image(_png()[:60], 10_000))
    assert status == 400 and reason.startswith("damaged or truncated image")
    status, reason = _reason(lambda: decode_image(_png(200, 100), 10_000))
    assert status == 413 and "200x100 has 20,000 pixels, over the limit of 10,000" in reason
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    assert _reason(lambda: decode_image(gif.getvalue(), 10_000)) == (400, "a GIF image: send PNG, JPEG or WebP")
    assert _reason(lambda: decode_image(b"", 10_000))[0] == 400


def test_the_pixel_limit_is_read_from_the_header_before_decoding():
    head = _png(5000, 300)[:100]  # signature, IHDR and the start of IDAT: the size is known, the pixels are not
    status, reason = _reason(lambda: decode_image(head, 1_000_000))
    assert status == 413 and "5000x300" in reason


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR chunk announcing ``width`` x ``height`` RGB pixels and an empty IDAT chunk."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")


def test_an_image_over_pils_own_limit_is_413_not_damaged():
    status, reason = _reason(lambda: decode_image(_png_header(20_000, 10_000), 10**12))
    assert status == 413 and "PIL's limit" in reason


def test_bodies_raw_and_multipart_and_wrong_content_types():
    png = _png()
    assert image_from_body(png, "image/png") == png
    boundary = "XyZ"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    assert image_from_body(body, f"multipart/form-data; boundary={boundary}") == png
    assert _reason(lambda: image_from_body(png, "text/plain"))[0] == 415
    assert _reason(lambda: image_from_body(png, ""))[0] == 415
    text_only = b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--XyZ--\r\n'
    status, reason = _reason(lambda: image_from_body(text_only, "multipart/form-data; boundary=XyZ"))
    assert status == 400 and "without a file part" in reason
    assert _reason(lambda: image_from_body(b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ"))[0] == 400


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def test_a_multipart_upload_of_two_files_or_an_empty_one_is_refused_not_half_answered():
    png, kind = _png(), "multipart/form-data; boundary=XyZ"
    two = _multipart([("file", "a.png", png), ("file", "b.png", _png(20, 30))])
    status, reason = _reason(lambda: image_from_body(two, kind))
    assert status == 400 and "2 files: send one image per request" in reason
    status, reason = _reason(lambda: image_from_body(_multipart([("file", "a.png", b"")]), kind))
    assert status == 400 and "the file part 'a.png' of the multipart upload is empty" in reason
    with_note = _multipart([("note", None, b"hello"), ("file", "a.png", png)])
    assert image_from_body(with_note, kind) == png  # other fields are not files


def test_batcher_shares_a_pass_and_splits_by_size():
    seen: list[list[tuple[int, ...]]] = []

    def run(images):
        seen.append([im.shape for im in images])
        return [im.shape for im in images]

    batcher = Batcher(run, max_batch=8, window_s=0.2, queue_size=16)
    futures = [batcher.submit(np.zeros((8, 8, 3), np.uint8)) for _ in range(3)]
    futures.append(batcher.submit(np.zeros((16, 8, 3), np.uint8)))
    batcher.start()
    results = [f.result(timeout=10) for f in futures]
    batcher.stop()
    assert [r.value for r in results] == [(8, 8, 3)] * 3 + [(16, 8, 3)]
    assert results[0].batch_size == 3 and results[3].batch_size == 1  # one pass per size
    assert batcher.stats.batches == 2 and batcher.stats.computed == 4


def test_a_full_queue_refuses_and_a_cancelled_request_is_not_computed():
    release = threading.Event()
    computed = []

    def run(images):
        release.wait(10)
        computed.extend(images)
        return [0] * len(images)

    batcher = Batcher(run, max_batch=1, window_s=0.0, queue_size=2)
    batcher.start()
    first = batcher.submit(np.zeros((4, 4, 3), np.uint8))  # taken by the worker, which then blocks
    time.sleep(0.2)
    gone = batcher.submit(np.ones((4, 4, 3), np.uint8))
    kept = batcher.submit(np.full((4, 4, 3), 2, np.uint8))
    with pytest.raises(QueueFull, match="2 requests are waiting already"):
        batcher.submit(np.zeros((4, 4, 3), np.uint8))
    assert gone.cancel()  # its client went away while it waited
    release.set()
    assert first.result(10).value == 0 and kept.result(10).value == 0
    batcher.stop()
    assert len(computed) == 2 and batcher.stats.skipped_gone == 1 and batcher.stats.refused_full == 1
    assert all(int(im.max()) != 1 for im in computed)


def test_an_error_in_the_forward_pass_reaches_the_request_and_the_worker_lives_on():
    calls = []

    def run(images):
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [1] * len(images)

    batcher = Batcher(run, max_batch=1, window_s=0.0)
    batcher.start()
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(np.zeros((4, 4, 3), np.uint8)).result(10)
    assert batcher.submit(np.zeros((4, 4, 3), np.uint8)).result(10).value == 1
    batcher.stop()
