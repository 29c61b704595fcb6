"""INT8 accuracy and speed of a trained model: mIoU of eager PyTorch, OpenVINO fp32 and OpenVINO INT8
(NNCF, calibrated on training images) on the config's validation split, and their latency at the
evaluation size, interleaved in this one process.

    python benchmarks/int8_accuracy.py CONFIG --weights W --calib TRAIN_IMAGES [key=value ...]
        [--size H W] [--calib-count 300] [--presets mixed,performance] [--ignore-types Sigmoid,...]
        [--threads 2] [--out results.json]

The evaluation follows the config's ``eval`` section (e.g. CamVid at scale 2/3: 240x320 inputs,
logits resized to the 360x480 labels). ``--size`` is the export and calibration size (default: the
size the evaluation feeds, found from the first validation image). Exports are dynamic, so every
validation image runs at its own evaluation size. Results: a table on stdout and ``--out`` JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dsnet.bench.system import machine_info
from dsnet.data.calibration import CalibrationSet
from dsnet.deploy import export, load_runner, quantize_openvino
from dsnet.engine.build import build_split
from dsnet.engine.config import load_config
from dsnet.engine.evaluator import evaluate_with_config
from dsnet.models import create_model, get_model_info, load_weights
from dsnet.models.checkpoint import read_checkpoint
from dsnet.predict.backends import LogitsFnModule


def _time_interleaved(runs: dict[str, object], x: np.ndarray, rounds: int, per_round: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn(x)  # warm-up
    for _ in range(rounds):
        for key, fn in runs.items():
            for _ in range(per_round):
                t = time.perf_counter()
                fn(x)
                times[key].append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--calib", required=True, help="training images: folder, glob or list file")
    parser.add_argument("--calib-count", type=int, default=300)
    parser.add_argument("--size", nargs=2, type=int, help="export/calibration size (default: the eval input size)")
    parser.add_argument("--presets", default="mixed,performance")
    parser.add_argument("--ignore-types", default="", help="comma-separated OpenVINO op types kept in float")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    cfg.train.progress = True
    dataset = build_split(cfg, cfg.data.val_split, train=False)
    info = get_model_info(cfg.model.name)
    model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, aux_heads=False)
    print(load_weights(model, read_checkpoint(args.weights), part="full", source=args.weights))
    model.eval()
    first = dataset[0][0]
    eval_size = tuple(
        args.size or (round(first.shape[-2] * cfg.eval.scales[0]), round(first.shape[-1] * cfg.eval.scales[0]))
    )
    eval_size = (eval_size[0] // 8 * 8, eval_size[1] // 8 * 8)
    print(f"eval input {tuple(first.shape[-2:])} at scales {cfg.eval.scales}; export/calibration size {eval_size}")

    work = Path(tempfile.mkdtemp(prefix="dsnet-int8-accuracy-"))
    runners: dict[str, object] = {}
    fp32 = export(model, "openvino", eval_size, out=work / "fp32.xml", dynamic=True)
    print(f"openvino fp32 parity: {fp32.parity}")
    runners["openvino-fp32"] = load_runner(fp32.path, "openvino", threads=args.threads)
    calibration = CalibrationSet(args.calib, eval_size, count=args.calib_count, mean=info.mean, std=info.std)
    quantized: dict[str, dict] = {}
    ignore = [t for t in args.ignore_types.split(",") if t]
    for preset in args.presets.split(","):
        name = f"openvino-int8-{preset}" + ("-ignore-" + "+".join(ignore) if ignore else "")
        result = quantize_openvino(
            model, calibration, eval_size, out=work / f"{name}.xml", dynamic=True, preset=preset, ignored_types=ignore
        )
        print(
            f"{name}: {result.fake_quantize_ops} FakeQuantize, {result.seconds:.0f} s, "
            f"agreement {result.label_agreement:.4f}"
        )
        runners[name] = load_runner(result.path, "openvino", threads=args.threads)
        quantized[name] = {
            "preset": preset,
            "ignored_types": ignore,
            "fake_quantize_ops": result.fake_quantize_ops,
            "calibration_images": result.calibration_images,
            "quantize_seconds": result.seconds,
            "label_agreement_calib": result.label_agreement,
        }

    rows = []
    multiple = int(getattr(model, "input_multiple", 8))
    candidates: dict[str, torch.nn.Module] = {"eager": model}
    candidates.update({k: LogitsFnModule(v, multiple) for k, v in runners.items()})
    for key, module in candidates.items():
        metrics = evaluate_with_config(module, dataset, cfg, progress=f"eval {key}")
        rows.append(
            {
                "backend": key,
                "miou": 100 * metrics.miou,
                "iou": [100 * v for v in metrics.iou],
                **quantized.get(key, {}),
            }
        )
        print(f"{key}: mIoU {100 * metrics.miou:.2f}")

    x = torch.randn(1, 3, *eval_size, generator=torch.Generator().manual_seed(0)).numpy()

    def eager(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(a)).numpy()

    times = _time_interleaved({"eager": eager, **runners}, x, args.rounds, 5)
    base = statistics.median(times["eager"])
    print(
        f"\n{cfg.model.name} on {cfg.data.dataset} {cfg.data.val_split}, {args.threads} threads, "
        f"{eval_size[0]}x{eval_size[1]}"
    )
    print(f"{'backend':40s} {'mIoU':>7s} {'d mIoU':>7s} {'median ms':>10s} {'x eager':>8s}")
    for row in rows:
        median = statistics.median(times[row["backend"]])
        row.update(
            latency_ms_median=1e3 * median, speedup_vs_eager=base / median, delta_miou=row["miou"] - rows[0]["miou"]
        )
        print(
            f"{row['backend']:40s} {row['miou']:7.2f} {row['delta_miou']:+7.2f} "
            f"{1e3 * median:10.1f} {base / median:8.2f}"
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "model": cfg.model.name,
                    "weights": args.weights,
                    "config": args.config,
                    "overrides": args.overrides,
                    "size": list(eval_size),
                    "threads": args.threads,
                    "calib": args.calib,
                    "machine": machine_info(torch.device("cpu")),
                    "python": platform.python_version(),
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
