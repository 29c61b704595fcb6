"""Turn a finished run into the weights shipped with the package (fp16 safetensors under 15 MB).

    python benchmarks/ship_weights.py runs/cpu60min-trainval --val-run runs/cpu60min-train \\
        -o src/dsnet/models/weights/dsnet_head64_camvid-cpu60min.safetensors

The file keeps the run's metadata (model, label space, amp, config name) and adds what a user of the
weights needs: ``metrics`` (JSON: the val mIoU of the same recipe trained on train alone, with and without
flip), ``recipe`` (the config file), ``trained_on``, ``wall_minutes`` and ``cpu_flags`` of the run, and
``data_licence``. Float tensors are stored in fp16; loading casts them back to the model's dtype.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from dsnet.hardware import cpu_flags
from dsnet.models import save_weights

DATA_LICENCE = (
    "CamVid (Brostow et al. 2009), SegNet's 11-class release: CC BY-NC 4.0, research and personal use only; "
    "these weights are derived from it and inherit that restriction"
)


def _wall_minutes(work: Path) -> float:
    stamps = [line[:19] for line in (work / "train.log").read_text().splitlines() if line[:4].isdigit()]
    return (datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])).total_seconds() / 60


def _val_metrics(val_run: Path) -> dict[str, float]:
    summary = json.loads((val_run / "summary.json").read_text())
    metrics = {"val_miou": round(100 * summary["final"]["miou"], 2)}
    flip = val_run / "eval_flip.json"
    if flip.is_file():
        metrics["val_miou_flip"] = round(100 * json.loads(flip.read_text())["miou"], 2)
    return metrics


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="work dir of the run to ship (its final.safetensors)")
    p.add_argument("--val-run", type=Path, required=True, help="work dir of the same recipe trained on train alone")
    p.add_argument("--recipe", required=True, help="the config file of the recipe, as shipped under configs/")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    source = args.run / "final.safetensors"
    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata() or {})
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    meta.update(
        metrics=json.dumps(_val_metrics(args.val_run)),
        recipe=args.recipe,
        trained_on=str(config["data"]["train_split"]),
        iterations=str(config["train"]["iters"]),
        wall_minutes=f"{_wall_minutes(args.run):.1f}",
        cpu_flags=" ".join(cpu_flags()),
        data_licence=DATA_LICENCE,
    )
    save_weights(state, args.out, metadata=meta)
    size = args.out.stat().st_size / 1e6
    values = sum(v.numel() for v in state.values())
    print(f"wrote {args.out} ({size:.1f} MB, {values:,} values, torch {torch.__version__})")
    print(json.dumps(meta, indent=1)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
