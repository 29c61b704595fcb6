"""End-to-end ``dsnet predict`` throughput against forward-only speed, in one process (run by hand).

For one model and backend, on a folder of same-size images:

* forward: the bench's paper protocol at the images' size (batch 1, random input, no pre/post-
  processing), with the bench backend that runs what the predictor runs: ``fold_channels_last``
  for torch (the predictor's deploy form: BN folded, channels_last), ``onnxruntime`` / ``openvino``
  (a static export at that size, as ``dsnet bench`` times it) for the runtimes;
* e2e: :func:`dsnet.predict.predict_files` over the folder, as ``dsnet predict`` runs it (decode,
  normalise, forward, argmax, PNG encode and write, with the read-ahead and write-behind threads),
  once writing labels only and once with ``--color --overlay``. The predictor is built once (its
  set-up time, e.g. the runtime's export, is reported apart) and warmed up on a few images.

Rounds alternate forward / e2e labels / e2e colour+overlay, so a slow phase of the machine hits
all three; figures are images per second, medians over rounds, and ratios e2e / forward.

    python benchmarks/predict_throughput.py ../shared/data/camvid/images/val --backend openvino \
        --threads 2 --rounds 3 --out benchmarks/results/predict_throughput_openvino.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import dsnet
from dsnet.bench import VARIANTS
from dsnet.bench.system import machine_info
from dsnet.constants import round_up
from dsnet.data.io import read_image
from dsnet.predict import OutputWriter, Predictor, discover_inputs, predict_files

#: the bench backend that times what each predictor backend runs
FORWARD_BACKEND = {"torch": "fold_channels_last", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def _forward_fps(run: Any, example: torch.Tensor, iterations: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(iterations):
            run(example)
    return iterations / (time.perf_counter() - start)


def _e2e_fps(predictor: Predictor, inputs: list, out: Path, color: bool) -> float:
    writer = OutputWriter(out, predictor.label_space, color=color, overlay=color)
    start = time.perf_counter()
    summary = predict_files(predictor, inputs, writer, progress=False)
    elapsed = time.perf_counter() - start
    if summary.skipped or summary.images != len(inputs):
        raise SystemExit(f"e2e run skipped inputs: {summary.skipped}")
    return len(inputs) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="images of one size, e.g. ../shared/data/camvid/images/val")
    ap.add_argument("--model", default="dsnet_head64")
    ap.add_argument("--weights", default=None, help="checkpoint (default: a seeded random model)")
    ap.add_argument("--num-classes", type=int, default=11, help="without --weights")
    ap.add_argument("--backend", choices=sorted(FORWARD_BACKEND), default="torch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4, help="dsnet predict's --batch-size (default 4, its default)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="dsnet-predict-throughput-"))

    inputs = [i for i in discover_inputs([args.folder]) if not i.is_video][: args.limit]
    h, w = read_image(inputs[0].path).shape[:2]
    weights = args.weights
    if weights is None:
        torch.manual_seed(0)
        model = dsnet.create_model(args.model, num_classes=args.num_classes)
        weights = dsnet.save_weights(model, scratch / "random.safetensors", metadata={"model": args.model})
    num_classes = args.num_classes if args.weights is None else None

    start = time.perf_counter()
    predictor = Predictor(
        args.model,
        weights=weights,
        device="cpu",
        num_classes=num_classes,
        batch_size=args.batch_size,
        backend=args.backend,
        threads=None if args.backend == "torch" else args.threads,
    )
    setup_s = time.perf_counter() - start
    model = dsnet.create_model(
        args.model, num_classes=predictor.label_space.num_classes, weights=weights, aux_heads=False
    )
    example = torch.randn(1, 3, round_up(h, 8), round_up(w, 8))  # padded as the predictor pads it
    forward = VARIANTS[FORWARD_BACKEND[args.backend]].runner(model.eval(), example, "fp32")

    print(f"warming up ({len(inputs)} images of {h}x{w}, set-up {setup_s:.1f} s)", file=sys.stderr)
    _forward_fps(forward, example, 5)
    warm = inputs[: min(len(inputs), 2 * args.batch_size)]
    _e2e_fps(predictor, warm, scratch / "warm", color=True)

    rows: dict[str, list[float]] = {"forward": [], "e2e_labels": [], "e2e_color_overlay": []}
    for r in range(args.rounds):
        rows["forward"].append(_forward_fps(forward, example, len(inputs)))
        rows["e2e_labels"].append(_e2e_fps(predictor, inputs, scratch / f"labels{r}", color=False))
        rows["e2e_color_overlay"].append(_e2e_fps(predictor, inputs, scratch / f"color{r}", color=True))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} img/s" for k, v in rows.items()), file=sys.stderr)

    median = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        "model": args.model,
        "backend": args.backend,
        "forward_backend": FORWARD_BACKEND[args.backend],
        "weights": str(args.weights) if args.weights else "random (seed 0)",
        "size": [h, w],
        "images": len(inputs),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "setup_s": round(setup_s, 2),
        "fps_median": {k: round(v, 3) for k, v in median.items()},
        "ratio_e2e_labels": round(median["e2e_labels"] / median["forward"], 3),
        "ratio_e2e_color_overlay": round(median["e2e_color_overlay"] / median["forward"], 3),
        "fps_rounds": {k: [round(x, 3) for x in v] for k, v in rows.items()},
        "machine": machine_info(torch.device("cpu")),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
