"""Training-step throughput on this CPU, and what the CamVid recipe's 60 minutes reach here (run by hand).

Variants of the same step (dsnet_head64 with its auxiliary heads, DSNetLoss with OHEM and the recipe's
class weights, SGD) are timed interleaved in one process, on batches drawn once from the real CamVid
pipeline (the recipe's sizes: 192x256 crops, batch 8), so their ratios hold on a noisy machine:

* ``nchw`` / ``channels_last``: the memory format of the model and the batch;
* ``+flush_denormal``: denormal floats flushed to zero (``torch.set_flush_denormal``);
* ``bf16``: the step under bf16 autocast, where the CPU flags say native bf16 (what ``optim.amp=auto`` picks).

Each row gives img/s, the achieved GFLOP/s of the step (forward and backward FLOPs counted by PyTorch's
FlopCounterMode on one image) and its share of this machine's fp32 matrix-product peak measured in the same
run. The recipe's iterations in 60 minutes come from ``plan_iterations`` (what ``train.minutes=60`` would
plan) with the fastest fp32 step, and with the step that ``optim.amp=auto`` picks, the 13 steps it spends
measuring, and the recipe's validation (the 101 val images, its eval settings) timed here. Print the CPU
flags with every figure; to see the AVX2-only machine on a better
one, run it under ``benchmarks/as_avx2.sh`` and say so.

    python benchmarks/train_throughput.py --data ../shared/data/camvid --rounds 3 --iters 4
    benchmarks/as_avx2.sh python benchmarks/train_throughput.py --data ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dsnet import create_model
from dsnet.bench.system import machine_info, matmul_peaks
from dsnet.engine.config import load_config
from dsnet.engine.time_budget import plan_iterations
from dsnet.engine.trainer import Trainer
from dsnet.hardware import native_bf16, resolve_amp

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "dsnet-head64_1xb8-cpu60min_camvid-192x256.yaml"


def _step_fn(channels_last: bool, bf16: bool, batches: list, criterion: torch.nn.Module) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_model("dsnet_head64", num_classes=11).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    position = [0]

    def step() -> None:
        x, y = batches[position[0] % len(batches)]
        position[0] += 1
        with torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext():
            loss = criterion(model(x), y).total
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _flops_per_image(batches: list, criterion: torch.nn.Module) -> float:
    model = create_model("dsnet_head64", num_classes=11).train()
    x, y = batches[0]
    counter = FlopCounterMode(display=False)
    with counter:  # two images: training BatchNorm needs more than one value per channel
        criterion(model(x[:2]), y[:2]).total.backward()
    return float(counter.get_total_flops()) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/camvid")
    ap.add_argument("--iters", type=int, default=4, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out", default=None, help="write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_info(torch.device("cpu"))
    flags = " ".join(machine["cpu_flags"]) or "none found"
    caps = " ".join(f"{k}={v}" for k, v in machine["isa_caps"].items())
    print(f"CPU: {machine['cpu']}, flags: {flags}" + (f" (capped run: {caps})" if caps else ""), flush=True)

    cfg = load_config(
        RECIPE,
        [f"data.root={Path(args.data).resolve()}", "data.train_split=train", "train.progress=false",
         "train.tensorboard=false", "train.work_dir=/tmp/dsnet-bench-train-throughput", "train.minutes=null",
         "train.iters=100000", "optim.amp=none"],
    )  # fmt: skip
    trainer = Trainer(cfg, overwrite=True)
    loader = trainer._loader()
    batches = [next(loader) for _ in range(args.iters)]
    criterion = trainer.criterion  # the recipe's loss: OHEM, square-root median-frequency class weights
    del loader
    batch = batches[0][0].shape[0]
    h, w = batches[0][0].shape[-2:]

    variants: dict[str, Callable[[], None]] = {
        "nchw fp32": _step_fn(False, False, batches, criterion),
        "channels_last fp32": _step_fn(True, False, batches, criterion),
    }
    bf16 = native_bf16("cpu")
    if bf16:
        variants["channels_last bf16"] = _step_fn(True, True, batches, criterion)
    flushed = "channels_last fp32 +flush_denormal"
    variants[flushed] = _step_fn(True, False, batches, criterion)

    def timed(name: str) -> float:
        torch.set_flush_denormal(name == flushed)
        start = time.perf_counter()
        for _ in range(args.iters):
            variants[name]()
        torch.set_flush_denormal(False)
        return batch * args.iters / (time.perf_counter() - start)

    for name in variants:  # warm-up: kernel selection, allocator
        variants[name]()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name in variants:
            rates[name].append(timed(name))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.2f}" for n, v in rates.items()), flush=True)

    peak = matmul_peaks(["fp32"])["fp32"]
    flops = _flops_per_image(batches, criterion)
    # the recipe's validation: its 101 val images (train-only run) at scale 2/3, timed once with the eval settings
    t0 = time.perf_counter()
    trainer.validate()
    validation_s = time.perf_counter() - t0
    rows = {}
    for name, values in rates.items():
        img_s = statistics.median(values)
        rows[name] = {
            "img_per_s": round(img_s, 3),
            "step_s": round(batch / img_s, 4),
            "gflops": round(flops * img_s / 1e9, 1),
            "share_of_fp32_peak": round(flops * img_s / 1e9 / peak, 3),
        }
    fp32_best = max((n for n in rows if "fp32" in n), key=lambda n: rows[n]["img_per_s"])
    amp = resolve_amp("auto", "cpu")[0]
    auto_row = "channels_last bf16" if amp == "bf16" else fp32_best
    hour = {}
    for label, row in (("fp32", fp32_best), ("auto", auto_row)):
        step_s = rows[row]["step_s"]
        plan = plan_iterations(3600, 13 * step_s, [step_s], [], validation_s, cfg.train.val_interval)
        hour[label] = {
            "row": row,
            "iterations_in_60_min": plan.iterations,
            "per_hour": round(3600 / rows[row]["step_s"]),
        }
    report = {
        "machine": machine,
        "crop": [int(h), int(w)],
        "batch": int(batch),
        "train_gflop_per_image": round(flops / 1e9, 2),
        "fp32_peak_gflops": round(peak, 1),
        "validation_s": round(validation_s, 1),
        "native_bf16": bf16,
        "rows": rows,
        "recipe_60_min": hour,
    }
    print(f"\n{h}x{w} crops, batch {batch}, {args.threads} threads; {flops / 1e9:.2f} GFLOP per image (fwd+bwd);")
    print(f"fp32 matrix-product peak {peak:.1f} GFLOP/s; CPU flags: {flags}" + (f" (capped: {caps})" if caps else ""))
    print(f"{'variant':<36} {'img/s':>7} {'x nchw':>7} {'GFLOP/s':>8} {'of fp32 peak':>13}")
    base = rows["nchw fp32"]["img_per_s"]
    for name, row in rows.items():
        print(
            f"{name:<36} {row['img_per_s']:>7.2f} {row['img_per_s'] / base:>7.2f} {row['gflops']:>8.1f} "
            f"{100 * row['share_of_fp32_peak']:>12.0f}%"
        )
    for label, h60 in hour.items():
        print(
            f"the recipe's 60 minutes ({label}: {h60['row']}): {h60['iterations_in_60_min']} iterations "
            f"({h60['per_hour']} steps/hour without validation; validation {validation_s:.0f} s)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
