"""Live video through ``dsnet serve`` (WebSocket /v1/stream), measured in one process (run by hand).

Two tables, with the CPU flags:

* **speed**: per backend and precision, the sustained rate and latency of a stream that sends the next frame
  when an answer comes back (as the page does), of a stream flooded 5x faster than the model (the latest
  frame wins), and ``dsnet predict``'s img/s on the same frames (read, predict, write label PNGs), rounds
  interleaved. Goal: the paced stream at >= 90 % of predict's img/s.
* **flicker**: consecutive frames of one CamVid sequence (val: 0016E5, from ../shared; else the demo's),
  streamed with ``smooth`` 0 (off) and others: the share of pixels whose label changes from one frame to the
  next, and the mIoU of the labelled frames (the smoothing must leave it within 0.5 points).

    python benchmarks/live_stream.py --weights camvid-cpu60min --threads 2 -o benchmarks/results/live_stream.json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from websockets.sync.client import connect

from dsnet.bench.system import machine_info
from dsnet.engine.metrics import ConfusionMatrix
from dsnet.hardware import cpu_flags
from dsnet.predict import OutputWriter, Predictor, discover_inputs, predict_files
from dsnet.serve import ServeSettings, create_app
from dsnet.serve.in_thread import serving_in_thread

ROOT = Path(__file__).resolve().parents[1]
SHARED_VAL = ROOT.parent / "shared" / "data" / "camvid"
DEMO = ROOT / "demo" / "camvid-mini"


def _frames(root: Path) -> tuple[list[Path], list[Path]]:
    images = sorted((root / "images" / "val").glob("*.png")) + sorted((root / "images" / "val").glob("*.jpg"))
    labels = [root / "labels" / "val" / (p.stem + ".png") for p in images]
    return images, labels


def _answer(ws) -> tuple[dict, bytes | None]:
    header = json.loads(ws.recv(timeout=60))
    return header, (None if "error" in header else ws.recv(timeout=60))


def _paced(address: str, frames: list[bytes], seconds: float, in_flight: int) -> dict:
    """``in_flight`` frames out at a time, the next sent when an answer comes (the page's way: 2)."""
    latencies, start, sent = [], time.perf_counter(), 0
    with connect(f"ws://{address}/v1/stream", max_size=None) as ws:
        for _ in range(in_flight):
            ws.send(frames[sent % len(frames)])
            sent += 1
        while time.perf_counter() - start < seconds:
            header, _ = _answer(ws)
            latencies.append(header["latency_ms"])
            ws.send(frames[sent % len(frames)])
            sent += 1
        wall = time.perf_counter() - start
        for _ in range(in_flight):  # the answers still out: the model is idle when the next measurement starts
            _answer(ws)
    return {"fps": len(latencies) / wall, "latency_ms_p50": statistics.median(latencies), "frames": len(latencies)}


def _flooded(address: str, frames: list[bytes], seconds: float, period_s: float) -> dict:
    """Frames sent every ``period_s`` whatever the answers: the latest wins, the others are dropped."""
    headers: list[dict] = []
    with connect(f"ws://{address}/v1/stream", max_size=None) as ws:
        stop = threading.Event()

        def send() -> None:
            k = 0
            while not stop.is_set():
                ws.send(frames[k % len(frames)])
                k += 1
                time.sleep(period_s)

        sender = threading.Thread(target=send)
        start = time.perf_counter()
        sender.start()
        while time.perf_counter() - start < seconds:
            headers.append(_answer(ws)[0])
        stop.set()
        sender.join()
        wall = time.perf_counter() - start
    latencies = sorted(h["latency_ms"] for h in headers)
    return {
        "fps": len(headers) / wall,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p90": latencies[int(0.9 * (len(latencies) - 1))],
        "dropped": headers[-1]["dropped"],
        "model_ms": statistics.median(h["inference_ms"] for h in headers),
    }


def _predict_rate(predictor: Predictor, images: list[Path]) -> float:
    inputs = discover_inputs([str(p) for p in images])
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        predict_files(predictor, inputs, OutputWriter(out, predictor.label_space), progress=False)
        return len(inputs) / (time.perf_counter() - start)


def speed_table(args: argparse.Namespace, images: list[Path]) -> list[dict]:
    frames = [p.read_bytes() for p in images]
    rows = []
    for backend, precision in [c.split(":") for c in args.configs.split(",")]:
        predictor = Predictor(
            "dsnet_head64", weights=args.weights, device="cpu", backend=backend, precision=precision,
            threads=None if backend == "torch" else args.threads, batch_size=1,
        )  # fmt: skip
        row: dict = {"backend": backend, "precision": predictor.precision, "paced": [], "predict_img_s": []}
        with serving_in_thread(create_app(predictor, ServeSettings(batch_window_ms=0))) as address:
            _paced(address, frames, 2.0, args.in_flight)  # warm-up
            for _ in range(args.rounds):  # interleaved: a slow phase of the machine hits both alike
                row["paced"].append(_paced(address, frames, args.seconds, args.in_flight))
                row["predict_img_s"].append(_predict_rate(predictor, images))
            model_ms = 1e3 / max(r["fps"] for r in row["paced"])
            row["flooded"] = _flooded(address, frames, args.seconds, model_ms / 5e3)
        paced_fps = statistics.median(r["fps"] for r in row["paced"])
        predict = statistics.median(row["predict_img_s"])
        row.update(paced_fps=paced_fps, predict_fps=predict, share_of_predict=paced_fps / predict)
        print(
            f"{backend:12s} {row['precision']:5s} paced {paced_fps:6.2f} FPS (p50 "
            f"{statistics.median(r['latency_ms_p50'] for r in row['paced']):.0f} ms) | predict {predict:6.2f} img/s "
            f"| paced/predict {100 * row['share_of_predict']:.0f} % | flooded x5: {row['flooded']['fps']:.2f} FPS, "
            f"p90 {row['flooded']['latency_ms_p90']:.0f} ms (model {row['flooded']['model_ms']:.0f} ms), "
            f"{row['flooded']['dropped']} dropped",
            flush=True,
        )
        rows.append(row)
    return rows


def flicker_table(args: argparse.Namespace, images: list[Path], labels: list[Path]) -> list[dict]:
    predictor = Predictor("dsnet_head64", weights=args.weights, device="cpu", precision="fp32")
    classes = predictor.label_space.num_classes
    rows = []
    with serving_in_thread(create_app(predictor, ServeSettings(batch_window_ms=0))) as address:
        for smooth in [float(s) for s in args.smooth.split(",")]:
            predicted = []
            with connect(f"ws://{address}/v1/stream?smooth={smooth:g}", max_size=None) as ws:
                for image in images:
                    ws.send(image.read_bytes())
                    _, png = _answer(ws)
                    predicted.append(np.asarray(Image.open(io.BytesIO(png))))
            flips = [float((a != b).mean()) for a, b in zip(predicted, predicted[1:])]
            cm = ConfusionMatrix(classes, ignore_index=255)
            for label, path in zip(predicted, labels):
                truth = np.asarray(Image.open(path)).astype(np.int64)
                truth[truth >= classes] = 255
                cm.update(torch.from_numpy(label.astype(np.int64)), torch.from_numpy(truth))
            miou = 100 * float(cm.compute().miou)
            rows.append({"smooth": smooth, "flicker": statistics.mean(flips), "miou": miou, "frames": len(images)})
            print(f"smooth {smooth:.2f}: {100 * rows[-1]['flicker']:.2f} % of pixels change label per frame, "
                  f"mIoU {miou:.2f} % ({len(images)} frames)", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="camvid-cpu60min")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="torch:fp32,torch:auto,openvino:fp32,openvino:auto,onnxruntime:fp32")
    ap.add_argument("--seconds", type=float, default=8.0, help="per stream measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=2, help="frames a paced client keeps out (the page: 2)")
    ap.add_argument("--smooth", default="0,0.3,0.5,0.7")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = SHARED_VAL if (SHARED_VAL / "images" / "val").is_dir() else DEMO
    images, labels = _frames(root)
    print(f"frames: {len(images)} from {root}; CPU flags: {' '.join(cpu_flags())}; threads {args.threads}", flush=True)
    report = {"machine": machine_info(torch.device("cpu")), "frames_from": str(root), "threads": args.threads}
    report["in_flight"] = args.in_flight
    report["speed"] = [] if args.skip_speed else speed_table(args, images)
    report["flicker"] = flicker_table(args, images, labels)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str))
        print(f"written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
