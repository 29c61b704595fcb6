"""Precision x backend on a trained model: mIoU on the config's validation split, the share of pixels that
keep eager fp32's class, and latency at the evaluation size (interleaved in this one process).

    python benchmarks/precision_accuracy.py CONFIG --weights W --calib TRAIN_IMAGES [key=value ...]
        [--size H W] [--calib-count 300] [--presets mixed,performance] [--threads 2] [--out results.json]

Rows: PyTorch fp32 (the reference), bf16 by autocast and by a cast (the two forms of
``dsnet.deploy.precision``), ONNX Runtime fp32, OpenVINO fp32 and bf16 (its precision hint; on CPUs with
native bf16), and OpenVINO INT8 (NNCF, calibrated on training images) for each preset, its float parts
in f32 and, where the CPU has native bf16, in bf16. The evaluation follows the config's ``eval`` section
(e.g. CamVid at scale 2/3 with flip). ``--size`` is the export and calibration size (default: the size
the evaluation feeds, from the first validation image). Exports are dynamic. Results: a table on stdout
and ``--out`` JSON (with the CPU flags).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dsnet.bench.system import machine_info
from dsnet.data.calibration import CalibrationSet
from dsnet.deploy import build_runner, export, prepare, quantize_openvino
from dsnet.deploy.precision import to_bf16
from dsnet.engine.build import build_split
from dsnet.engine.config import inference_options, load_config
from dsnet.engine.evaluator import evaluate_with_config
from dsnet.hardware import cpu_flags, native_bf16
from dsnet.inference import argmax_channels, predict_scores
from dsnet.models import create_model, get_model_info, load_weights, read_checkpoint


def _time_interleaved(runs: dict[str, Callable], x: np.ndarray, rounds: int, per_round: int) -> dict[str, list[float]]:
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


def _torch_runner(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(a)).float().numpy()

    return run


def _labels(module: torch.nn.Module, dataset, cfg) -> list[torch.Tensor]:
    """Each validation image's prediction (the evaluation's views), for the pixel agreement."""
    options = inference_options(cfg)
    out = []
    with torch.no_grad():
        for i in tqdm(range(len(dataset)), desc="labels", leave=False):
            image = dataset[i][0].unsqueeze(0)
            out.append(argmax_channels(predict_scores(module, image, options))[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--calib", required=True, help="training images: folder, glob or list file")
    parser.add_argument("--calib-count", type=int, default=300)
    parser.add_argument("--size", nargs=2, type=int, help="export/calibration size (default: the eval input size)")
    parser.add_argument("--presets", default="mixed,performance")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bf16 = native_bf16("cpu")
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
    print(f"CPU flags: {' '.join(cpu_flags())}; native bf16: {bf16}")

    work = Path(tempfile.mkdtemp(prefix="dsnet-precision-accuracy-"))
    multiple = int(getattr(model, "input_multiple", 8))
    modules: dict[str, tuple[str, str, torch.nn.Module]] = {"eager fp32": ("torch (eager)", "fp32", model)}
    folded = prepare(model, exportable_pooling=False, channels_last=True)
    modules["fold_channels_last fp32"] = ("torch (fold, channels_last)", "fp32", folded)
    modules["fold_channels_last bf16 autocast"] = ("torch (fold, channels_last), autocast", "bf16", to_bf16(folded))
    modules["fold_channels_last bf16 cast"] = ("torch (fold, channels_last), cast", "bf16", to_bf16(folded, "cast"))
    onnx = export(model, "onnx", eval_size, out=work / "fp32.onnx", dynamic=True)
    modules["onnxruntime fp32"] = (
        "onnxruntime",
        "fp32",
        build_runner(onnx.path, "onnxruntime", "fp32", threads=args.threads, input_multiple=multiple),
    )
    fp32 = export(model, "openvino", eval_size, out=work / "fp32.xml", dynamic=True)
    print(f"openvino fp32 parity: {fp32.parity}")
    floats = ("fp32", "bf16") if bf16 else ("fp32",)
    for p in floats:
        run = build_runner(fp32.path, "openvino", p, threads=args.threads, input_multiple=multiple)
        modules[f"openvino {p}"] = ("openvino", p, run)
    calibration = CalibrationSet(args.calib, eval_size, count=args.calib_count, mean=info.mean, std=info.std)
    quantized: dict[str, dict] = {}
    for preset in args.presets.split(","):
        result = quantize_openvino(
            model, calibration, eval_size, out=work / f"int8-{preset}.xml", dynamic=True, preset=preset
        )
        print(f"int8 {preset}: {result.fake_quantize_ops} FakeQuantize, {result.seconds:.0f} s")
        for p in floats:
            key = f"openvino int8 {preset} (float parts {p})"
            run = build_runner(result.path, "openvino", p, threads=args.threads, input_multiple=multiple)
            modules[key] = (f"openvino, NNCF {preset}", "int8", run)
            quantized[key] = {"preset": preset, "calibration_images": result.calibration_images, "float_parts": p}

    reference = _labels(model, dataset, cfg)
    rows = []
    for key, (backend, precision, module) in modules.items():
        metrics = evaluate_with_config(module, dataset, cfg, progress=f"eval {key}")
        labels = reference if key == "eager fp32" else _labels(module, dataset, cfg)
        kept = sum(int((a == b).sum()) for a, b in zip(labels, reference)) / sum(a.numel() for a in reference)
        worst = min(float((a == b).float().mean()) for a, b in zip(labels, reference))
        rows.append(
            {
                "row": key,
                "backend": backend,
                "precision": precision,
                "miou": 100 * metrics.miou,
                "iou": [100 * v for v in metrics.iou],
                "pixel_agreement": kept,
                "worst_image_agreement": worst,
                **quantized.get(key, {}),
            }
        )
        print(f"{key}: mIoU {100 * metrics.miou:.2f}, pixels kept {100 * kept:.2f} % (worst image {100 * worst:.2f} %)")

    x = torch.randn(1, 3, *eval_size, generator=torch.Generator().manual_seed(0)).numpy()
    times = _time_interleaved({k: _torch_runner(m) for k, (_, _, m) in modules.items()}, x, args.rounds, 5)
    base = statistics.median(times["eager fp32"])
    print(
        f"\n{cfg.model.name} on {cfg.data.dataset} {cfg.data.val_split}, {args.threads} threads, "
        f"{eval_size[0]}x{eval_size[1]}"
    )
    print(f"CPU flags: {' '.join(cpu_flags())}")
    print(f"{'row':44s} {'mIoU':>7s} {'d mIoU':>7s} {'kept %':>7s} {'median ms':>10s} {'x eager':>8s}")
    for row in rows:
        median = statistics.median(times[row["row"]])
        row.update(
            latency_ms_median=1e3 * median, speedup_vs_eager=base / median, delta_miou=row["miou"] - rows[0]["miou"]
        )
        print(
            f"{row['row']:44s} {row['miou']:7.2f} {row['delta_miou']:+7.2f} {100 * row['pixel_agreement']:7.2f} "
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
