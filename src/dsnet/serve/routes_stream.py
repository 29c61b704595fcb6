"""WebSocket /v1/stream: live video, frame by frame, through the batcher /v1/segment uses.

The protocol (one socket per stream):

* the client sends each frame as a binary message (a PNG, JPEG or WebP image); frames are numbered 0, 1,
  2 ... in the order they arrive;
* for each frame it answers, the server sends a text message, JSON ``{"frame": id, "dropped": n, "size":
  [h, w], "latency_ms", "inference_ms", "batch_size"}``, then a binary message: the frame's PNG (``format``
  of the query: ``label`` training ids (default), ``ids``, ``color`` or ``overlay`` with ``alpha``);
* a frame that cannot be segmented (not an image, too large, a size the model cannot run) gets
  ``{"frame": id, "error": "<one line>"}`` instead, and the stream goes on;
* ``smooth=a`` (0 <= a < 1, default 0: off) smooths the class probabilities over the stream's frames, an
  exponential moving average ``s = a * s + (1 - a) * p`` whose argmax is the label map: labels flicker less
  from frame to frame, at the cost of a lag of about ``a / (1 - a)`` frames on moving objects (see
  benchmarks/live_stream.py for its effect on flicker and accuracy). A frame of another size starts afresh.

Latest frame wins: while the model works on a frame, a newer one replaces the one waiting, so a source
faster than the model meets a bounded delay (about two model times) instead of a growing queue;
``dropped`` counts the frames replaced so far. ``latency_ms`` runs from the frame's arrival to its answer.
Limits close the socket with a reason: more than ``max_streams`` open streams (1013, try again later), a
message over ``max_body_bytes`` (1009), ``format=json`` (1008, not a per-frame format). A client that goes
away frees its slot at once, and the frame it left waiting is never computed.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import QueryParams

from .batcher import BatchResult, QueueFull
from .errors import RequestRejected
from .images import decode_image, encode_png
from .routes_segment import label_image
from .segment_query import parse_segment_query
from .state import SCORES, ServeState

__all__ = ["STREAM_CLOSE_CODES", "smoothed_labels", "stream_router"]

#: WebSocket close codes of the refusals (RFC 6455 and IANA's registry)
STREAM_CLOSE_CODES = {"policy": 1008, "too_big": 1009, "try_later": 1013}
#: how long a frame waits before it is offered again to a full batcher queue
_BUSY_RETRY_S = 0.02


@dataclass
class _Frame:
    index: int
    data: bytes
    arrived: float
    #: its decoding, started while the model works on the frame before
    decoded: asyncio.Task | None = None

    def decode(self, max_pixels: int) -> asyncio.Task:
        if self.decoded is None:
            self.decoded = asyncio.create_task(asyncio.to_thread(decode_image, self.data, max_pixels))
            self.decoded.add_done_callback(lambda task: task.cancelled() or task.exception())  # a dropped frame's
        return self.decoded


@dataclass
class _Stream:
    """One socket's frames: the one waiting (the latest), and how many were replaced before their turn;
    with smoothing, the running average of its class probabilities."""

    smooth: float = 0.0
    average: np.ndarray | None = None
    waiting: _Frame | None = None
    dropped: int = 0
    received: int = 0
    ended: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, data: bytes) -> None:
        if self.waiting is not None:
            self.dropped += 1  # replaced by a newer frame before the model took it
        self.waiting = _Frame(self.received, data, time.perf_counter())
        self.received += 1
        self.wake.set()

    async def take(self) -> _Frame | None:
        """The latest frame, waiting for one; None once the client is gone."""
        while self.waiting is None and not self.ended:
            self.wake.clear()
            await self.wake.wait()
        frame, self.waiting = self.waiting, None
        return None if self.ended else frame


async def _receive(socket: WebSocket, stream: _Stream, limit: int) -> None:
    """Reads the client's frames into ``stream`` until it leaves or sends a message over ``limit`` bytes."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                continue  # text messages carry nothing in this protocol
            if len(data) > limit:
                reason = f"frame of {len(data):,} bytes is over the limit of {limit:,}"
                await socket.close(STREAM_CLOSE_CODES["too_big"], reason)
                return
            stream.offer(data)
    finally:
        stream.ended = True
        stream.wake.set()


async def _segment_frame(state: ServeState, frame: _Frame, stream: _Stream) -> tuple[np.ndarray, BatchResult | None]:
    """The decoded frame and its result from the shared batcher (a label map, or class probabilities when the
    stream smooths them); None when the client left meanwhile. A full queue is waited out."""
    rgb = await frame.decode(state.settings.max_pixels)
    problem = state.predictor.input_problem(*rgb.shape[:2])
    if problem is not None:
        raise RequestRejected(400, problem)
    while True:
        try:
            future: Future = state.batcher.submit(rgb, SCORES if stream.smooth else None)
            if stream.waiting is not None:  # decode the next frame while the model works on this one
                stream.waiting.decode(state.settings.max_pixels)
            break
        except QueueFull:
            await asyncio.sleep(_BUSY_RETRY_S)
            if stream.ended:
                return rgb, None
    result = asyncio.wrap_future(future)
    while not result.done():
        done, _ = await asyncio.wait({result}, timeout=0.05)
        if not done and stream.ended:
            future.cancel()  # still queued: never computed
            return rgb, None
    return rgb, result.result()


def smoothed_labels(average: np.ndarray | None, probs: np.ndarray, smooth: float) -> tuple[np.ndarray, np.ndarray]:
    """(the new running average, its label map): ``smooth * average + (1 - smooth) * probs``, started afresh
    when there is none yet or the size changed."""
    if average is None or average.shape != probs.shape:
        average = probs.astype(np.float32, copy=True)
    else:
        average *= smooth
        average += (1.0 - smooth) * probs
    dtype = np.uint8 if average.shape[0] <= 256 else np.int64
    return average, average.argmax(axis=0).astype(dtype)


async def _send_in_turn(socket: WebSocket, previous: asyncio.Task | None, messages: list[str | bytes]) -> None:
    """Sends ``messages`` once the answer before has gone, so answers leave in frame order."""
    if previous is not None:
        await previous
    for message in messages:
        await (socket.send_text(message) if isinstance(message, str) else socket.send_bytes(message))


async def _encode_and_send(
    socket: WebSocket, previous: asyncio.Task | None, frame: _Frame, answer: dict, picture: np.ndarray
) -> None:
    """The PNG is encoded while the model already works on the next frame; then header and PNG are sent."""
    png = await asyncio.to_thread(encode_png, picture)
    answer["latency_ms"] = round(1e3 * (time.perf_counter() - frame.arrived), 2)
    await _send_in_turn(socket, previous, [json.dumps(answer), png])


async def _answer(socket: WebSocket, state: ServeState, stream: _Stream, fmt: str, alpha: float) -> None:
    """Answers the latest frame, again and again, until the client is gone. A frame's answer is encoded and
    sent while the next frame is decoded and computed, so a client that keeps two frames in flight gets the
    model's full rate."""
    labels = state.predictor.label_space
    sending: asyncio.Task | None = None
    try:
        while (frame := await stream.take()) is not None:
            try:
                rgb, result = await _segment_frame(state, frame, stream)
            except RequestRejected as e:
                error = json.dumps({"frame": frame.index, "error": e.reason})
                sending = asyncio.create_task(_send_in_turn(socket, sending, [error]))
                continue
            except Exception as e:  # the model failed on this frame: say so, and go on with the next
                error = json.dumps({"frame": frame.index, "error": f"{type(e).__name__}: {e}"})
                sending = asyncio.create_task(_send_in_turn(socket, sending, [error]))
                continue
            if result is None:
                return
            label = np.asarray(result.value)
            if stream.smooth:
                stream.average, label = await asyncio.to_thread(smoothed_labels, stream.average, label, stream.smooth)
            answer = {
                "frame": frame.index,
                "dropped": stream.dropped,
                "size": [int(label.shape[0]), int(label.shape[1])],
                "latency_ms": 0.0,
                "inference_ms": round(result.inference_ms, 2),
                "batch_size": result.batch_size,
            }
            picture = label_image(fmt, label, rgb, alpha, labels)
            sending = asyncio.create_task(_encode_and_send(socket, sending, frame, answer, picture))
        if sending is not None:
            await sending
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)


def _smoothing(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise RequestRejected(400, f"smooth={text!r}: expected a number in [0, 1) (0: off)")
    return value


async def _stream(socket: WebSocket, state: ServeState) -> None:
    await socket.accept()
    params = dict(socket.query_params)
    smooth_text = params.pop("smooth", "0")
    try:
        fmt, alpha = parse_segment_query(QueryParams(params))
        smooth = _smoothing(smooth_text)
    except RequestRejected as e:
        await socket.close(STREAM_CLOSE_CODES["policy"], e.reason)
        return
    if fmt == "json" or (fmt == "ids" and state.predictor.label_space.dataset_ids is None):
        await socket.close(STREAM_CLOSE_CODES["policy"], f"format={fmt}: a stream answers label, ids, color or overlay")
        return
    limit = state.settings.max_streams
    if state.streams >= limit:
        await socket.close(STREAM_CLOSE_CODES["try_later"], f"{limit} streams are open already (--max-streams {limit})")
        return
    state.streams += 1
    stream = _Stream(smooth)
    answering = asyncio.create_task(_answer(socket, state, stream, fmt, alpha))
    try:
        await _receive(socket, stream, state.settings.max_body_bytes)
    except WebSocketDisconnect:
        pass
    finally:
        state.streams -= 1  # the slot is free as soon as the client is gone
        answering.cancel()  # a frame still queued in the batcher is dropped with it
        await asyncio.gather(answering, return_exceptions=True)


def stream_router(state: ServeState) -> APIRouter:
    """The /v1/stream WebSocket route (see the module docstring for its protocol)."""
    router = APIRouter()

    @router.websocket("/v1/stream")
    async def stream(socket: WebSocket) -> None:
        await _stream(socket, state)

    return router
