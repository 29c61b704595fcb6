"""End-to-end training/evaluation on a synthetic CamVid-layout dataset: CLI run, resume bit for bit, SIGTERM, DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dsnet
from dsnet.cli import main
from dsnet.engine.config import load_config
from dsnet.engine.state import load_training_state
from dsnet.engine.trainer import Trainer, TrainingInterrupted

from .helpers import StopAt, write_tiny_config
from .synthetic import write_camvid_like

TRAIN_IMAGES = 8


def _config(tmp_path: Path, name: str = "tiny", iters: int = 6, workers: int = 0, tb: bool = False) -> Path:
    root = tmp_path / "data"
    if not root.exists():
        write_camvid_like(root, {"train": TRAIN_IMAGES, "val": 5})
    return write_tiny_config(
        tmp_path / f"{name}.yaml", root, iters=iters, val_interval=3, workers=workers, tensorboard=tb, max_val_samples=3
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert diff == [], f"{len(diff)} tensors differ, e.g. {diff[:3]}"


@pytest.mark.slow
def test_cli_training_run_writes_checkpoints_logs_and_metrics(tmp_path: Path) -> None:
    cfg = _config(tmp_path, iters=4, tb=True)
    work = tmp_path / "run"
    assert main(["train", str(cfg), "--work-dir", str(work), "optim.lr=0.02"]) == 0
    for name in (
        "last.pth",
        "best.safetensors",
        "final.safetensors",
        "config.yaml",
        "metrics.jsonl",
        "train.log",
        "summary.json",
        "curves.png",
        "class_iou.png",
        "best_metrics.json",
    ):
        assert (work / name).is_file(), name
    assert any((work / "tensorboard").iterdir())
    saved = load_config(work / "config.yaml")
    assert saved.optim.lr == 0.02 and saved.train.iters == 4  # the resolved config, overrides applied
    state = load_training_state(work / "last.pth")
    assert state["iteration"] == 4 and "optimizer" in state and "rng" in state
    # a training state is also an accepted weights file
    model = dsnet.create_model("dsnet_head64", num_classes=11, weights=work / "last.pth")
    assert torch.equal(model.state_dict()["lastlayer.conv2.bias"], state["model"]["lastlayer.conv2.bias"])
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    train_its = [r["iter"] for r in records if r["kind"] == "train"]
    assert train_its == [1, 2, 3, 4]
    assert all(
        {"loss", "loss_main", "loss_aux_p", "loss_aux_d", "lr", "images_per_s"} <= r.keys()
        for r in records
        if r["kind"] == "train"
    )
    assert [r["iter"] for r in records if r["kind"] == "val"] == [3, 4]
    summary = json.loads((work / "summary.json").read_text())
    assert 0 <= summary["final"]["miou"] <= 1 and len(summary["final"]["confusion_matrix"]) == 11
    # the written weights evaluate through `dsnet eval`
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                str(cfg),
                "--weights",
                str(work / "final.safetensors"),
                "--out",
                str(out),
                "train.max_val_samples=3",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["num_images"] == 3 and result["confusion_matrix"] == summary["final"]["confusion_matrix"]
    assert result["miou"] == pytest.approx(summary["final"]["miou"])


def test_interrupt_and_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    cfg_a = load_config(_config(tmp_path, "a", iters=6, workers=0), [f"train.work_dir={tmp_path / 'a'}"])
    Trainer(cfg_a).run()

    # interrupted at iteration 3, resumed with a different number of loader workers
    cfg_b = load_config(_config(tmp_path, "b", iters=6, workers=0), [f"train.work_dir={tmp_path / 'b'}"])
    with pytest.raises(TrainingInterrupted) as info:
        StopAt(cfg_b).run()
    assert info.value.iteration == 3
    assert load_training_state(tmp_path / "b" / "last.pth")["iteration"] == 3
    cfg_b2 = load_config(_config(tmp_path, "b", iters=6, workers=2), [f"train.work_dir={tmp_path / 'b'}"])
    summary = Trainer(cfg_b2, resume=tmp_path / "b" / "last.pth").run()
    assert summary["iterations"] == 6

    _assert_same_weights(tmp_path / "a" / "final.safetensors", tmp_path / "b" / "final.safetensors")
    a = load_training_state(tmp_path / "a" / "last.pth")
    b = load_training_state(tmp_path / "b" / "last.pth")
    assert a["best_miou"] == b["best_miou"] and a["best_iteration"] == b["best_iteration"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


def _wait_for(path: Path, predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and predicate(path.read_text()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not reach the expected state")


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_resume_finishes_identically(tmp_path: Path) -> None:
    cfg = _config(tmp_path, iters=12)
    work = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dsnet", "train", str(cfg), "--work-dir", str(work)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(work / "metrics.jsonl", lambda text: text.count('"train"') >= 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err
    stopped_at = load_training_state(work / "last.pth")["iteration"]
    assert 2 <= stopped_at < 12
    subprocess.run(cmd + ["--resume"], env=env, check=True, capture_output=True)
    assert load_training_state(work / "last.pth")["iteration"] == 12

    reference = tmp_path / "reference"
    subprocess.run(
        [sys.executable, "-m", "dsnet", "train", str(cfg), "--work-dir", str(reference)],
        env=env,
        check=True,
        capture_output=True,
    )
    _assert_same_weights(work / "final.safetensors", reference / "final.safetensors")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "dsnet",
        *args,
    ]


@pytest.mark.slow
def test_two_process_ddp_training_and_evaluation(tmp_path: Path) -> None:
    cfg = _config(tmp_path, iters=3)
    work = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        _torchrun("train", str(cfg), "--work-dir", str(work)), env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((work / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["param_max_abs_diff_across_ranks"] == 0.0
    assert (work / "train.log").read_text().count("iter 3/3") == 1  # rank 0 logs alone

    weights = str(work / "final.safetensors")
    # 5 images over 2 ranks: uneven shards, nothing counted twice
    single, double = tmp_path / "single.json", tmp_path / "double.json"
    # same thread count on both sides, so the forward passes are numerically identical
    single_cmd = [sys.executable, "-m", "dsnet", "eval", str(cfg), "--weights", weights, "--out", str(single)]
    subprocess.run([*single_cmd, "train.max_val_samples=5"], env=env, check=True, capture_output=True)
    run = subprocess.run(
        _torchrun("eval", str(cfg), "--weights", weights, "--out", str(double), "train.max_val_samples=5"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = json.loads(single.read_text()), json.loads(double.read_text())
    assert b["world_size"] == 2
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert sum(map(sum, a["confusion_matrix"])) > 0


def test_gradient_accumulation_and_bf16_autocast_run(tmp_path: Path) -> None:
    cfg = load_config(
        _config(tmp_path, iters=2),
        [f"train.work_dir={tmp_path / 'acc'}", "optim.grad_accum=2", "optim.amp=bf16", "train.val_interval=100"],
    )
    summary = Trainer(cfg).run()
    assert summary["iterations"] == 2
    records = [json.loads(line) for line in (tmp_path / "acc" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    # two micro-batches of 2 per iteration: 4 images/iteration; the train set has 8 // 2 = 4 batches/epoch
    assert train[-1]["epoch"] == pytest.approx(2 * 2 / (TRAIN_IMAGES // 2))
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train)


def test_fp16_on_cpu_and_bad_batch_sizes_are_refused(tmp_path: Path) -> None:
    for override, pattern in [
        ("optim.amp=fp16", "fp16 needs a CUDA device"),
        ("data.batch_size=1", "batch_size=1 cannot train"),
        ("data.crop_size=[60, 64]", "multiples of 8"),
    ]:
        cfg = load_config(_config(tmp_path), [override, f"train.work_dir={tmp_path / 'x'}"])
        with pytest.raises(ValueError, match=pattern):
            Trainer(cfg)


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_with_loader_workers_still_checkpoints(tmp_path: Path) -> None:
    cfg = _config(tmp_path, iters=200, workers=1)
    work = tmp_path / "ctrl-c"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dsnet", "train", str(cfg), "--work-dir", str(work)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _wait_for(work / "metrics.jsonl", lambda text: text.count('"train"') >= 2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: main process and workers
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert 2 <= load_training_state(work / "last.pth")["iteration"] < 200
