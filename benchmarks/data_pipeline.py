"""Throughput of the CamVid training data pipeline (decode + DSNet augmentation + normalisation).

    python benchmarks/data_pipeline.py [--root ../shared/data/camvid] [--images 200] [--batch-size 8]

Config: SegNet's CamVid (480x360), crop 360x480, base size 480, the authors' CamVid scales
0.4..2.0 in steps of 0.1, flip. Reports images/s for a plain loop over the dataset, and for a
DataLoader with num_workers=0 and 1 (the first batch, which includes worker start-up, is excluded).

With ``--config CONFIG`` the pipeline is that training config's (its dataset, train split, crop, scales,
photometric augmentation), and the per-image stages are timed twice, interleaved: as configured and with
``data.photometric`` off, so the augmentation's share of a loader worker's time is measured in one run:

    python benchmarks/data_pipeline.py --config configs/dsnet-head64_1xb8-cpu60min-photometric_camvid-192x256.yaml

With num_workers=0 the batch collation (torch.stack of 8 x 3x360x480 float32) runs in the main
process with torch's intra-op threads; on a 2-core VM that stack is ~10x slower with 2 threads than
with 1 (``--threads 1``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from dsnet.data import CamVidDataset, TrainTransform, read_image, worker_init_fn
from dsnet.data.base import SegmentationDataset
from dsnet.engine.build import build_split
from dsnet.engine.config import apply_overrides, load_config
from dsnet.hardware import cpu_flags

DEFAULT_ROOT = Path(os.environ.get("DSNET_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "camvid"


def _stage_times(ds: SegmentationDataset, n: int) -> dict[str, float]:
    t = {"read image": 0.0, "read+check label": 0.0, "transform": 0.0}
    for i in range(n):
        img_path, lbl_path = ds.samples[i]
        t0 = time.perf_counter()
        image = read_image(img_path)
        t1 = time.perf_counter()
        label = ds.decode_label(ds.read_label(lbl_path), lbl_path)
        t2 = time.perf_counter()
        ds.transform(image, label, ds.rng(i))
        t3 = time.perf_counter()
        t["read image"] += t1 - t0
        t["read+check label"] += t2 - t1
        t["transform"] += t3 - t2
    return {k: v / n * 1e3 for k, v in t.items()}


def _loop(ds, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - t0)


def _loader(ds, n: int, batch_size: int, workers: int) -> float:
    loader = DataLoader(
        Subset(ds, range(n)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers else None,
        drop_last=True,
    )
    it = iter(loader)
    next(it)  # start-up (worker fork, first batch) excluded
    count, t0 = 0, time.perf_counter()
    for x, _ in it:
        count += x.shape[0]
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the main process")
    ap.add_argument("--config", type=Path, help="time this training config's pipeline (and it without photometric)")
    ap.add_argument("--rounds", type=int, default=3, help="--config: interleaved rounds of the stage timings")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, opencv {cv2.__version__}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"CPU flags {' '.join(cpu_flags())}"
    )
    if args.config is not None:
        _compare_photometric(args.config, args.images, args.rounds)
        return

    tf = TrainTransform(crop_size=(360, 480), base_size=480, scale_range=(0.4, 2.0), scale_step=0.1)
    ds = CamVidDataset(args.root, "train", transform=tf)
    n = min(args.images, len(ds))
    print(f"CamVid train: {len(ds)} images, timing {n}; {tf}")
    ds[0]  # warm-up
    for stage, ms in _stage_times(ds, min(n, 100)).items():
        print(f"  {stage:<18} {ms:6.2f} ms/image")
    print(f"plain loop (main process)          : {_loop(ds, n):7.1f} images/s")
    for workers in (0, 1):
        rate = _loader(ds, n, args.batch_size, workers)
        print(f"DataLoader num_workers={workers}, batch {args.batch_size:<3}: {rate:7.1f} images/s")


def _compare_photometric(config: Path, images: int, rounds: int) -> None:
    """Per-image stage times of the config's training pipeline, as configured and without photometric."""
    cfg = load_config(config)
    plain = apply_overrides(cfg, ["data.photometric=null"])
    variants = {
        f"data.photometric={cfg.data.photometric}": build_split(cfg, cfg.data.train_split, True),
        "data.photometric=null": build_split(plain, plain.data.train_split, True),
    }
    n = min(images, *(len(ds) for ds in variants.values()))
    print(f"{config}: {cfg.data.train_split} split, {n} images per round, {rounds} rounds interleaved")
    totals: dict[str, dict[str, float]] = {name: {} for name in variants}
    for ds in variants.values():
        ds[0]  # warm-up
    for _ in range(rounds):
        for name, ds in variants.items():
            for stage, ms in _stage_times(ds, n).items():
                totals[name][stage] = totals[name].get(stage, 0.0) + ms / rounds
    for name, stages in totals.items():
        parts = ", ".join(f"{stage} {ms:.2f}" for stage, ms in stages.items())
        print(f"  {name:<32} {sum(stages.values()):6.2f} ms/image ({parts})")


if __name__ == "__main__":
    main()
