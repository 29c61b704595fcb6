"""Request bodies to RGB arrays and predictions to response bytes, with the limits checked on the way.

The pixel limit is checked from the image header, before the pixels are decoded (a 20-byte PNG header
can announce a 100,000 x 100,000 image); a truncated or corrupt file is a 400, not a crash. Nothing
here touches the file system.
"""

from __future__ import annotations

import io
import json
import warnings
from email.parser import BytesParser
from email.policy import HTTP

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..predict import to_rgb
from .errors import RequestRejected

__all__ = ["IMAGE_TYPES", "decode_image", "encode_png", "image_from_body"]

#: content types of image bodies, and the PIL formats they may hold
IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_FORMATS = set(IMAGE_TYPES.values())


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def image_from_body(body: bytes, content_type: str) -> bytes:
    """The image bytes of a request body: the body itself (``image/png``, ``image/jpeg``, ``image/webp``,
    ``application/octet-stream``) or the first file part of a ``multipart/form-data`` upload."""
    media = _media_type(content_type)
    if media in IMAGE_TYPES or media == "application/octet-stream":
        return body
    if media == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise RequestRejected(400, "multipart body without parts (or without its boundary)")
        files = [
            part
            for part in message.iter_parts()
            if part.get_filename() is not None
            or part.get_param("name", header="content-disposition") in ("file", "image")
        ]
        if not files:
            raise RequestRejected(400, "multipart upload without a file part (send the image as field 'file')")
        if len(files) > 1:  # answering one of them would drop the others without a word
            raise RequestRejected(400, f"multipart upload with {len(files)} files: send one image per request")
        payload = files[0].get_payload(decode=True)
        if not payload:
            name = files[0].get_filename() or files[0].get_param("name", header="content-disposition")
            raise RequestRejected(400, f"the file part {name!r} of the multipart upload is empty")
        return bytes(payload)
    shown = media or "none"
    raise RequestRejected(415, f"content type {shown}: send image/png, image/jpeg, image/webp or multipart/form-data")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a PNG, JPEG or WebP file, decoded as ``dsnet predict`` decodes a file (upright
    by its EXIF orientation, 16-bit values by their high byte); 400 for anything else or a damaged file,
    413 for an image above ``max_pixels`` (read from its header, before decoding)."""
    if not data:
        raise RequestRejected(400, "empty body: send an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in _FORMATS:
                raise RequestRejected(400, f"a {image.format} image: send PNG, JPEG or WebP")
            width, height = image.size
            if width * height > max_pixels:
                raise RequestRejected(
                    413, f"image {width}x{height} has {width * height:,} pixels, over the limit of {max_pixels:,}"
                )
            image.load()
            rgb = to_rgb(image)  # upright by its EXIF orientation; 16-bit by the high byte, as `dsnet predict`
    except RequestRejected:
        raise
    except UnidentifiedImageError:
        raise RequestRejected(400, "the body is not a PNG, JPEG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # PIL's own limit, read from the header
        raise RequestRejected(
            413, f"image over PIL's limit of {Image.MAX_IMAGE_PIXELS:,} pixels (this server's limit: {max_pixels:,})"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestRejected(400, f"damaged or truncated image ({str(e).splitlines()[0][:120]})") from None
    if min(rgb.shape[:2]) < 1:
        raise RequestRejected(400, "empty image")
    return rgb


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) uint8 label map or a (H, W, 3) RGB image."""
    bgr = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
