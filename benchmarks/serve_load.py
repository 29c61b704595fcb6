"""Load on ``dsnet serve`` against ``dsnet predict`` on the same images, backend and precision (run by hand).

Starts the server as a real process on a free loopback port, sends ``--requests`` requests from
``--clients`` concurrent clients (images cycled, sizes as they come: use a folder of mixed sizes), and
reports errors, lost requests, p50/p90/p99 latency and throughput. Then runs ``dsnet predict`` on the
same images (labels only: ``predict_files`` in this process, as the command runs it, without its start-up)
with the same backend, precision and threads, and reports serve throughput as a share of predict's
(target: at least 90 %). Both phases alternate ``--rounds`` times, the server idle while predict runs.

    python benchmarks/serve_load.py ../shared/data/camvid/images/val --weights camvid-cpu60min \
        --requests 200 --clients 8 --precision fp32 --out benchmarks/results/serve_load.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from dsnet.bench.system import machine_info
from dsnet.data.calibration import find_images
from dsnet.predict import OutputWriter, Predictor, discover_inputs, predict_files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(port: int, body: bytes, content_type: str) -> tuple[int, float, int]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/v1/segment", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        data = response.read()
        return response.status, time.perf_counter() - start, len(data)
    finally:
        conn.close()


def _load(port: int, bodies: list[tuple[bytes, str]], requests: int, clients: int) -> dict:
    results: list[tuple[int, float, int]] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body, kind = bodies[i % len(bodies)]
            try:
                outcome = _post(port, body, kind)
            except OSError:
                outcome = (0, 0.0, 0)
            with lock:
                results.append(outcome)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ok = sorted(latency for status, latency, _ in results if status == 200)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    return {
        "requests": requests,
        "answered": len(results),
        "errors": sum(1 for status, _, _ in results if status != 200),
        "images_per_s": len(ok) / elapsed,
        "latency_ms": {"p50": 1e3 * q[49], "p90": 1e3 * q[89], "p99": 1e3 * q[98]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--model", default="dsnet_head64")
    ap.add_argument("--weights", default="camvid-cpu60min")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--batch-window-ms", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    files = find_images(args.folder)
    bodies = [(p.read_bytes(), "image/png" if p.suffix.lower() == ".png" else "image/jpeg") for p in files]
    common = ["--backend", args.backend, "--precision", args.precision, "--threads", str(args.threads)]
    torch.set_num_threads(args.threads)
    predictor = Predictor(  # what dsnet predict runs with these flags, in this process (no start-up in the timing)
        args.model,
        weights=args.weights,
        device="cpu",
        backend=args.backend,
        precision=args.precision,
        threads=None if args.backend == "torch" else args.threads,
    )
    inputs = [i for i in discover_inputs([args.folder]) if not i.is_video]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dsnet", "serve", args.model, "--weights", args.weights, "--port", str(port), *common]
        + ["--max-batch", str(args.max_batch), "--batch-window-ms", str(args.batch_window_ms), "--queue-size", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
            if server.poll() is not None:
                raise SystemExit("the server exited")
        _load(port, bodies, min(16, args.requests), args.clients)  # warm-up
        serve_rounds, predict_rounds = [], []
        for r in range(args.rounds):
            serve_rounds.append(_load(port, bodies, args.requests, args.clients))
            with tempfile.TemporaryDirectory() as out:
                reps = max(1, args.requests // len(inputs))
                start = time.perf_counter()
                for k in range(reps):
                    predict_files(
                        predictor, inputs, OutputWriter(Path(out) / str(k), predictor.label_space), progress=False
                    )
                predict_rounds.append(reps * len(inputs) / (time.perf_counter() - start))
            print(
                f"round {r + 1}: serve {serve_rounds[-1]['images_per_s']:.2f} img/s "
                f"(p50 {serve_rounds[-1]['latency_ms']['p50']:.0f} ms, errors {serve_rounds[-1]['errors']}), "
                f"predict {predict_rounds[-1]:.2f} img/s",
                file=sys.stderr,
            )
    finally:
        server.terminate()
        server.wait(30)
    serve_fps = statistics.median(r["images_per_s"] for r in serve_rounds)
    predict_fps = statistics.median(predict_rounds)
    result = {
        "images": len(files),
        "settings": vars(args),
        "serve_rounds": serve_rounds,
        "predict_images_per_s_rounds": predict_rounds,
        "serve_images_per_s": serve_fps,
        "predict_images_per_s": predict_fps,
        "serve_share_of_predict": serve_fps / predict_fps,
        "machine": machine_info(torch.device("cpu")),
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "settings")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
