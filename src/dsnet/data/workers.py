"""The one DataLoader worker set-up, shared by training, evaluation and benchmarks."""

from __future__ import annotations

import signal

import cv2
import torch

__all__ = ["worker_init_fn"]


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: single-threaded OpenCV and torch, and no signal handling.

    Each worker is one of many processes decoding in parallel, so OpenCV's and torch's own thread pools
    (and OpenCL) would only oversubscribe the CPUs. Ctrl-C or a scheduler's SIGTERM reach the whole
    process group: workers ignore them and leave the shutdown (finish the iteration, write the
    checkpoint) to the main process, which ends them. No seeding is needed: datasets derive each sample's
    generator from (seed, epoch, index).
    """
    cv2.setNumThreads(0)
    cv2.ocl.setUseOpenCL(False)
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
