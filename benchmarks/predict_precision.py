"""``dsnet predict`` end to end in each precision, as ratios to PyTorch fp32, in one process (run by hand).

End to end is what a user waits for: decode, normalise, forward, argmax, PNG encode and write
(:func:`dsnet.predict.predict_files` with its read-ahead and write-behind threads, labels only). Rows:

* ``eager fp32``: the plain module as trained (``deploy_form=False``, the authors' setting);
* ``torch fp32``: ``dsnet predict``'s torch backend (BN folded, channels_last), and ``torch bf16``;
* ``openvino fp32`` / ``bf16`` (its precision hint; bf16 only where the CPU computes it natively);
* ``openvino int8``: the checkpoint quantized by NNCF on ``--calib`` images (``--precision int8 --calib``).

Each predictor is built once (set-up time reported apart) and warmed up; rounds alternate between the rows,
so a slow phase of the machine hits all of them. Figures: images per second (median over rounds) and
ratios to ``eager fp32`` and ``torch fp32``.

    python benchmarks/predict_precision.py ../shared/data/camvid/images/val --weights camvid-cpu60min \
        --calib ../shared/data/camvid/images/train --limit 40 --rounds 3 \
        --out benchmarks/results/predict_precision_camvid.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from dsnet.bench.system import machine_info
from dsnet.data.calibration import CalibrationSet
from dsnet.data.io import read_image
from dsnet.hardware import native_bf16
from dsnet.models import get_model_info
from dsnet.predict import OutputWriter, Predictor, discover_inputs, predict_files


def _e2e_fps(predictor: Predictor, inputs: list, out: Path) -> float:
    writer = OutputWriter(out, predictor.label_space)
    start = time.perf_counter()
    summary = predict_files(predictor, inputs, writer, progress=False)
    elapsed = time.perf_counter() - start
    if summary.skipped or summary.images != len(inputs):
        raise SystemExit(f"e2e run skipped inputs: {summary.skipped}")
    return len(inputs) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="images of one size, e.g. ../shared/data/camvid/images/val (360x480)")
    ap.add_argument("--model", default="dsnet_head64")
    ap.add_argument("--weights", default="camvid-cpu60min")
    ap.add_argument("--calib", required=True, help="training images to calibrate INT8 on")
    ap.add_argument("--calib-count", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="dsnet-predict-precision-"))
    inputs = [i for i in discover_inputs([args.folder]) if not i.is_video][: args.limit]
    h, w = read_image(inputs[0].path).shape[:2]
    info = get_model_info(args.model)
    calibration = CalibrationSet(
        args.calib, (h // 8 * 8, w // 8 * 8), count=args.calib_count, mean=info.mean, std=info.std
    )

    specs = {
        "eager fp32": {"backend": "torch", "precision": "fp32", "deploy_form": False},
        "torch fp32": {"backend": "torch", "precision": "fp32"},
        "torch bf16": {"backend": "torch", "precision": "bf16"},
        "openvino fp32": {"backend": "openvino", "precision": "fp32"},
        "openvino int8": {"backend": "openvino", "precision": "int8", "calibration": calibration},
    }
    if native_bf16("cpu"):
        specs["openvino bf16"] = {"backend": "openvino", "precision": "bf16"}
    predictors: dict[str, Predictor] = {}
    setup: dict[str, float] = {}
    for name, spec in specs.items():
        start = time.perf_counter()
        threads = None if spec["backend"] == "torch" else args.threads
        predictors[name] = Predictor(
            args.model, weights=args.weights, device="cpu", batch_size=args.batch_size, threads=threads, **spec
        )
        setup[name] = time.perf_counter() - start
        _e2e_fps(predictors[name], inputs[: 2 * args.batch_size], scratch / f"warm-{name}")
        print(f"{name}: set up in {setup[name]:.1f} s ({predictors[name].precision_reason})", file=sys.stderr)

    fps: dict[str, list[float]] = {k: [] for k in predictors}
    for r in range(args.rounds):
        for name, predictor in predictors.items():
            fps[name].append(_e2e_fps(predictor, inputs, scratch / f"{name}-{r}"))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in fps.items()), file=sys.stderr)
    median = {k: statistics.median(v) for k, v in fps.items()}
    machine = machine_info(torch.device("cpu"))
    print(f"\n{args.model} ({args.weights}), {len(inputs)} images of {h}x{w}, {args.threads} threads")
    print(f"CPU flags: {' '.join(machine['cpu_flags'])}")
    print(f"{'row':16s} {'img/s':>7s} {'x eager fp32':>13s} {'x torch fp32':>13s}")
    for name, value in median.items():
        print(f"{name:16s} {value:7.2f} {value / median['eager fp32']:13.2f} {value / median['torch fp32']:13.2f}")
    result = {
        "model": args.model,
        "weights": args.weights,
        "size": [h, w],
        "images": len(inputs),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "calibration_images": len(calibration),
        "setup_s": {k: round(v, 2) for k, v in setup.items()},
        "fps_median": {k: round(v, 3) for k, v in median.items()},
        "x_eager_fp32": {k: round(v / median["eager fp32"], 3) for k, v in median.items()},
        "x_torch_fp32": {k: round(v / median["torch fp32"], 3) for k, v in median.items()},
        "fps_rounds": {k: [round(x, 3) for x in v] for k, v in fps.items()},
        "machine": machine,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
