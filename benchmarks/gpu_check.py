"""The CUDA paths on a GPU machine: AMP (fp16, bf16) with channels_last training and evaluation.

Run by hand on a machine with a GPU (results in benchmarks/README.md):

    python benchmarks/gpu_check.py --data DATA/camvid --out OUT [--iters 300]

It trains the CamVid benchmark config (benchmarks/configs/...192x256.yaml) for ``--iters``
iterations per AMP mode, evaluates, and writes ``gpu_check.json`` with images/s (from the run's
metrics.jsonl, first log interval excluded as warm-up), peak memory, val mIoU and any failure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from pathlib import Path

import torch

from dsnet.engine.config import load_config
from dsnet.engine.observe import setup_logging
from dsnet.engine.trainer import train

CONFIG = Path(__file__).parent / "configs" / "dsnet-head64_1xb8-1.8k_camvid-192x256.yaml"


def run_mode(amp: str, args: argparse.Namespace) -> dict:
    work = Path(args.out) / f"run_{amp}"
    cfg = load_config(
        CONFIG,
        [
            f"data.root={args.data}",
            f"train.iters={args.iters}",
            f"train.work_dir={work}",
            f"optim.amp={amp}",
            "model.channels_last=true",
            "data.num_workers=8",
            "eval.num_workers=4",
            "train.log_interval=25",
            f"train.val_interval={args.iters}",
            f"train.checkpoint_interval={args.iters // 2}",
            "train.progress=false",
        ],
    )
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    summary = train(cfg, device=args.device, overwrite=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in records if r["kind"] == "train"][1:]
    return {
        "amp": amp,
        "iters": args.iters,
        "wall_s": round(wall, 1),
        "train_images_per_s_median": sorted(speeds)[len(speeds) // 2] if speeds else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "val_miou": summary.get("final", {}).get("miou"),
        "val_images": summary.get("final", {}).get("num_images"),
        "final_loss": [r["loss"] for r in records if r["kind"] == "train"][-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--modes", default="fp16,bf16")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    setup_logging(Path(args.out) / "gpu_check.log", True)
    report: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpus": torch.cuda.device_count(),
        "python": platform.python_version(),
        "runs": [],
    }
    for amp in args.modes.split(","):
        try:
            report["runs"].append(run_mode(amp, args))
        except Exception as e:  # record the failure and go on with the next mode
            report["runs"].append({"amp": amp, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
        print(json.dumps(report["runs"][-1], indent=1), flush=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
