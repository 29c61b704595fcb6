"""Training-step throughput of our engine against a plain PyTorch loop (run by hand).

Both sides train the same model (dsnet_head64, 11 CamVid classes) with the same loss (DSNetLoss:
OHEM + two auxiliary CE terms) and SGD. The engine side runs ``Trainer._step`` fed by its real
data pipeline (CamVid train, 360x480 crops, batch 4, loader workers); the plain side runs
``forward / loss / backward / step`` on batches already in memory, so any extra cost of the
engine (data loading, bookkeeping, logging values) shows up as a lower rate. Rounds alternate
between the two to cancel machine drift.

    python benchmarks/train_step.py --data ../shared/data/camvid --rounds 3 --iters 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from dsnet import create_model
from dsnet.engine import DSNetLoss
from dsnet.engine.config import Config, apply_overrides
from dsnet.engine.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/camvid")
    ap.add_argument("--model", default="dsnet_head64")
    ap.add_argument("--size", nargs=2, type=int, default=(360, 480))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size

    cfg = apply_overrides(
        Config(),
        [
            f"model.name={args.model}",
            "model.num_classes=11",
            f"model.channels_last={str(args.channels_last).lower()}",
            "data.dataset=camvid",
            f"data.root={Path(args.data).resolve()}",
            f"data.crop_size=[{h}, {w}]",
            f"data.base_size={max(h, w)}",
            "data.scale_range=[0.5, 2.0]",
            f"data.batch_size={args.batch}",
            f"data.num_workers={args.workers}",
            "train.iters=100000",
            "train.progress=false",
            "train.tensorboard=false",
            "train.work_dir=/tmp/dsnet-bench-train-step",
        ],
    )
    trainer = Trainer(cfg, overwrite=True)
    batches = trainer._loader()

    # plain loop: same model, loss and optimiser; batches drawn once from the same pipeline
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=11).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = DSNetLoss(11)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    cached = [next(batches) for _ in range(args.iters)]
    if args.channels_last:
        cached = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in cached]

    def plain_round() -> float:
        t = time.perf_counter()
        for x, y in cached:
            loss = criterion(model(x), y).total
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return args.batch * len(cached) / (time.perf_counter() - t)

    def engine_round() -> float:
        t = time.perf_counter()
        for _ in range(args.iters):
            trainer._step(batches)
        return args.batch * args.iters / (time.perf_counter() - t)

    plain_round()  # warm-up both
    engine_round()
    engine, plain = [], []
    for r in range(args.rounds):
        engine.append(engine_round())
        plain.append(plain_round())
        print(f"round {r + 1}: engine {engine[-1]:.2f} img/s, plain loop {plain[-1]:.2f} img/s", flush=True)
    e, p = statistics.median(engine), statistics.median(plain)
    print(
        f"{args.model} {h}x{w} batch {args.batch}, {args.threads} threads, {args.workers} loader worker(s): "
        f"engine {e:.2f} img/s, plain loop {p:.2f} img/s, ratio {e / p:.3f}"
    )


if __name__ == "__main__":
    main()
