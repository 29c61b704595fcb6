"""The levers of a CamVid run on a time budget, as rows of one table (issue [2 of 4]).

Every row is the screening config (15 minutes of wall time, ``train.minutes``) plus its overrides;
after training, the final weights are also evaluated with flip (the val split, scale 2/3 or the row's
``eval.scales``). Rows run one at a time on an otherwise idle machine (2 cores: anything else running
steals the budget).

    python benchmarks/camvid_levers.py run cw_sqrt            # train + evaluate one row
    python benchmarks/camvid_levers.py table                  # the Markdown table of the rows run so far
    python benchmarks/camvid_levers.py table --baseline cw_sqrt   # ... with each row against cw_sqrt
    python benchmarks/camvid_levers.py list                   # the rows and their overrides

Results land in ``runs/levers-<protocol>/<row>/`` (``--runs`` to change); the table reads them.
``--protocol heldout-SEQ`` trains without the CamVid sequence SEQ (0001TP, 0006R0, 0016E5) and scores on
it: a street never seen, as in the test split (issue [5 of 5]); the default ``val`` scores on CamVid's val
split. ``pooled`` sums the confusion matrices of a row's three held-out runs (leave one sequence out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from dsnet.data import describe_dataset

REPO = Path(__file__).resolve().parents[1]
CLASSES = describe_dataset("camvid").classes
THIN = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist", "Fence")  # the classes the base config barely learns
CONFIG = REPO / "benchmarks/configs/dsnet-head64_1xb8-cpu15min_camvid-192x256.yaml"
CW = "data.class_weights=sqrt_median_frequency"
#: the base row and its fp32 twin run a fixed iteration count, so that precision is the only difference
BASE_800 = ["train.minutes=null", "train.iters=800", "train.val_interval=200"]

#: row name -> (what it changes, overrides of the screening config)
ROWS: dict[str, tuple[str, list[str]]] = {
    "base": ("screening config (half resolution, poly, OHEM, bf16), 800 iterations", BASE_800),
    "fp32": ("base in fp32 (optim.amp=none), the same 800 iterations", [*BASE_800, "optim.amp=none"]),
    "cw_sqrt": ("+ class weights: sqrt median frequency", [CW]),
    "cw_mf": ("+ class weights: median frequency", ["data.class_weights=median_frequency"]),
    "full480": (
        "cw_sqrt, trained and evaluated at full resolution (long side 480, scales 0.5-1.5)",
        [CW, "data.base_size=480", "data.scale_range=[0.5,1.5]", "eval.scales=[1.0]"],
    ),
    "stage480": (
        "cw_sqrt, last 25 % at full resolution, 288x384 crops; evaluated at full resolution",
        [
            CW,
            "data.stages=[{start: 0.75, base_size: 480, crop_size: [288, 384], scale_range: [0.5, 1.5]}]",
            "eval.scales=[1.0]",
        ],
    ),
    "jitter": ("cw_sqrt + colour jitter 0.3 (brightness, contrast, saturation)", [CW, "data.color_jitter=0.3"]),
    "lr06": ("cw_sqrt + twice the learning rate (0.06)", [CW, "optim.lr=0.06"]),
    "cosine": ("cw_sqrt + cosine schedule", [CW, "optim.schedule=cosine"]),
    "linear": ("cw_sqrt + linear decay (poly power 1)", [CW, "optim.poly_power=1.0"]),
    "ema": ("cw_sqrt + weight EMA (decay 0.995)", [CW, "optim.ema_decay=0.995"]),
    "no_ohem": ("cw_sqrt without OHEM (plain weighted cross-entropy)", [CW, "loss.ohem=false"]),
    "photometric": (
        "cw_sqrt + light and camera changes (preset streets: brightness, contrast, saturation 0.3, hue 0.03, "
        "gamma 0.3, blur p 0.2, noise 6)",
        [CW, "data.photometric=streets"],
    ),
    "smooth01": ("cw_sqrt + label smoothing 0.1", [CW, "loss.label_smoothing=0.1"]),
    "scale_wide": ("cw_sqrt + scales 0.25-2.25 (was 0.5-1.75)", [CW, "data.scale_range=[0.25,2.25]"]),
    "boundary": (
        "cw_sqrt + main loss x2 within 2 px of a label edge (thin classes are mostly edge)",
        [CW, "loss.boundary_weight=1.0"],
    ),
}

#: CamVid's train + val sequences (file-name prefixes); a held-out protocol trains without one, scores on it
SEQUENCES = ("0001TP", "0006R0", "0016E5")

#: protocol name -> (what its score measures, overrides choosing the splits)
PROTOCOLS: dict[str, tuple[str, list[str]]] = {
    "val": ("val (101 frames of 0016E5, a street seen in training)", []),
    **{
        f"heldout-{seq}": (
            f"held-out-{seq} (the sequence left out of training)",
            [f"data.train_split=without-{seq}", f"data.val_split=held-out-{seq}"],
        )
        for seq in SEQUENCES
    },
}


def _dsnet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dsnet", *args], cwd=REPO, check=True)


def run_row(name: str, runs: Path, protocol: str, extra: list[str]) -> None:
    _, overrides = ROWS[name]
    work = runs / name
    _dsnet("train", str(CONFIG), *overrides, *PROTOCOLS[protocol][1], *extra, "--work-dir", str(work))
    weights = str(work / "final.safetensors")
    _dsnet(
        "eval", str(work / "config.yaml"), "--weights", weights, "eval.flip=true", "-o", str(work / "eval_flip.json")
    )


def _row_figures(work: Path) -> dict | None:
    summary = work / "summary.json"
    if not summary.is_file():
        return None
    s = json.loads(summary.read_text())
    flip = work / "eval_flip.json"
    stamps = [line[:19] for line in (work / "train.log").read_text().splitlines() if line[:4].isdigit()]
    wall = (datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])).total_seconds() / 60
    return {
        "iterations": s["iterations"],
        "wall_min": wall,
        "final": s["final"],
        "flip": json.loads(flip.read_text()) if flip.is_file() else None,
        "cpu_flags": s.get("hardware", {}).get("cpu_flags", "(not recorded)"),
    }


def _flip_iou(figures: dict) -> np.ndarray | None:
    return np.asarray(figures["flip"]["iou"]) if figures["flip"] else None


def table(runs: Path, protocol: str, baseline: str | None = None) -> str:
    """The rows run so far; with ``baseline``, each row's flip mIoU against that row's and the classes that
    moved most (one seed resolves about a point of mIoU, a few points of one class)."""
    base = _row_figures(runs / baseline) if baseline else None
    base_iou = _flip_iou(base) if base else None
    delta = f" | against {baseline} (flip) | classes moved most" if base_iou is not None else ""
    lines = [
        f"| row | change | iterations | wall (min) | {protocol} mIoU | + flip | " + " | ".join(THIN) + delta + " |",
        "|---|---|---|---|---|---|" + "---|" * len(THIN) + ("---|---|" if delta else ""),
    ]
    flags = set()
    for name, (what, _) in ROWS.items():
        f = _row_figures(runs / name)
        if f is None:
            continue
        flags.add(f["cpu_flags"])
        final = f["final"]
        iou = dict(zip(CLASSES, final["iou"], strict=True))
        flip = f"{100 * f['flip']['miou']:.2f}" if f["flip"] else "-"
        thin = " | ".join(f"{100 * iou[c]:.1f}" if c in iou else "-" for c in THIN)
        row = (
            f"| {name} | {what} | {f['iterations']} | {f['wall_min']:.1f} | {100 * final['miou']:.2f} | {flip} "
            f"| {thin} |"
        )
        if delta:
            row += _against(_flip_iou(f), base_iou, name == baseline)
        lines.append(row)
    lines.append("")
    lines.append("CPU flags of the runs: " + "; ".join(sorted(flags)))
    return "\n".join(lines)


def _against(iou: np.ndarray | None, base_iou: np.ndarray, is_baseline: bool) -> str:
    """Two cells: the flip mIoU change against the baseline and the three classes that changed most."""
    if is_baseline or iou is None:
        return "  | |"
    change = 100 * (iou - base_iou)
    moved = np.argsort(-np.abs(change))[:3]
    classes = ", ".join(f"{CLASSES[i]} {change[i]:+.1f}" for i in moved)
    return f" {100 * (iou.mean() - base_iou.mean()):+.2f} | {classes} |"


def pooled(runs_root: Path) -> str:
    """Leave-one-sequence-out, pooled: the rows run on all three held-out protocols, their flip confusion
    matrices summed (every train + val frame predicted by a model that never saw its street)."""
    folds = " | ".join(f"held-out {seq}" for seq in SEQUENCES)
    lines = [
        f"| row | {folds} | pooled mIoU | " + " | ".join(CLASSES) + " |",
        "|---|" + "---|" * (len(SEQUENCES) + 1 + len(CLASSES)),
    ]
    for name in ROWS:
        files = [runs_root / f"levers-heldout-{seq}" / name / "eval_flip.json" for seq in SEQUENCES]
        if not all(f.is_file() for f in files):
            continue
        evals = [json.loads(f.read_text()) for f in files]
        confusion = sum(np.asarray(e["confusion_matrix"], np.float64) for e in evals)
        tp = np.diag(confusion)
        iou = tp / np.maximum(confusion.sum(0) + confusion.sum(1) - tp, 1)
        folds = " | ".join(f"{100 * e['miou']:.2f}" for e in evals)
        lines.append(
            f"| {name} | {folds} | **{100 * iou.mean():.2f}** | " + " | ".join(f"{100 * v:.1f}" for v in iou) + " |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("run", "table", "pooled", "list"))
    p.add_argument("row", nargs="?", choices=list(ROWS))
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for the run")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="val", help="what the rows are scored on")
    p.add_argument("--runs", type=Path, help="where the rows' work dirs are (default runs/levers-<protocol>)")
    p.add_argument("--baseline", choices=list(ROWS), help="table: each row's flip mIoU against this row's")
    args = p.parse_args()
    runs = args.runs or REPO / f"runs/levers-{args.protocol}"
    if args.action == "list":
        for name, (what, overrides) in ROWS.items():
            print(f"{name}: {what}\n    {' '.join(overrides) or '(none)'}")
    elif args.action == "table":
        if args.baseline and _row_figures(runs / args.baseline) is None:
            p.error(f"--baseline {args.baseline}: no finished run in {runs / args.baseline} (summary.json missing)")
        print(table(runs, args.protocol, args.baseline))
    elif args.action == "pooled":
        print(pooled(args.runs or REPO / "runs"))
    else:
        if args.row is None:
            p.error("run needs a row")
        run_row(args.row, runs, args.protocol, args.overrides)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
