"""ImageNet pre-training throughput on this machine: JPEG decode + augmentation per loader worker (PIL
against OpenCV), and training images/s of a classifier, hence the loader workers one device needs.

    python benchmarks/imagenet_throughput.py decode [--root .../imagefolder] [--passes 3]
    python benchmarks/imagenet_throughput.py train [--model dsnet_imagenet] [--size 224] [--batch-size 16]
        [--iters 5] [--threads 2] [--channels-last] [--amp bf16] [--device cuda]

``decode`` times one worker (this process, one thread): decode to RGB, then the training transform
(RandomResizedCrop 224 + flip + normalise) or the evaluation transform (resize 256 + centre crop),
over the images of the folder. ``train`` times forward + backward + SGD steps on random batches
(after two warm-up steps). Workers per device = device images/s / per-worker images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

import dsnet
from dsnet.data.classify_transforms import ClassifyEvalTransform, ClassifyTrainTransform
from dsnet.data.imagenet import ImageNetFolder, read_rgb

SHARED = Path(os.environ.get("DSNET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_ROOT = SHARED / "data" / "imagenet-sample" / "imagefolder"


def _read_cv2(path: str) -> Image.Image:
    buf = np.fromfile(path, np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return Image.fromarray(cv2.cvtColor(arr, cv2.COLOR_BGR2RGB))


def bench_decode(root: Path, passes: int) -> list[dict]:
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    files = [p for p, _ in ImageNetFolder(root, "").samples]
    train_tf, eval_tf = ClassifyTrainTransform(224), ClassifyEvalTransform(224)
    rows = []
    for decoder, read in (("pil", read_rgb), ("pil-draft", lambda p: read_rgb(p, (256, 256))), ("opencv", _read_cv2)):
        for name, tf in (("decode only", None), ("train 224", train_tf), ("eval 256->224", eval_tf)):
            if decoder == "pil-draft" and name == "train 224":
                continue  # a train crop may need the full resolution: draft is for evaluation
            rng = np.random.default_rng(0)
            start = time.perf_counter()
            for _ in range(passes):
                for path in files:
                    image = read(path)
                    if tf is not None:
                        tf(image, rng)
            rate = passes * len(files) / (time.perf_counter() - start)
            rows.append({"decoder": decoder, "pipeline": name, "images_per_s": round(rate, 1)})
            print(f"{decoder:<10} {name:<14} {rate:8.1f} images/s per worker")
    return rows


def bench_train(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = dsnet.create_model(args.model).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch_size,), device=device)
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = args.iters * args.batch_size / (time.perf_counter() - start)
    row = {k: v for k, v in vars(args).items() if k not in ("func", "root")} | {"images_per_s": round(rate, 2)}
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("decode")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--passes", type=int, default=3)
    t = sub.add_parser("train")
    t.add_argument("--model", default="dsnet_imagenet")
    t.add_argument("--size", type=int, default=224)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--iters", type=int, default=5)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--channels-last", action="store_true")
    t.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.what == "decode":
        bench_decode(args.root, args.passes)
    else:
        bench_train(args)


if __name__ == "__main__":
    main()
