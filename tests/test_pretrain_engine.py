"""dsnet pretrain: a short run learns, resume is bit-exact, the CLI follows dsnet train's rules, DDP on gloo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import dsnet
from dsnet.cli import main
from dsnet.engine.pretrain import load_pretrain_config, pretrain
from dsnet.engine.pretrain.build import build_classifier
from dsnet.engine.trainer import TrainingInterrupted
from dsnet.engine.workdir import RunDir
from dsnet.errors import WorkDirError

from .helpers import Killed, PretrainKilledInValidation, PretrainStopAt, same_run_records
from .test_pretrain_data import write_imagenet_like

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagenet_like(tmp_path_factory.mktemp("imagenet"), WNIDS, per_class=2)


def _config(path: Path, root: Path, **sections: dict) -> Path:
    cfg = {
        "model": {"name": "dsnet_imagenet", "head_channels": 0},
        "data": {
            "root": str(root),
            "train_split": "",
            "val_split": "",
            "crop_size": 32,
            "eval_size": 32,
            "scale_range": [0.5, 1.0],
            "batch_size": 4,
            "num_workers": 0,
        },
        "optim": {
            "optimizer": "adamw",
            "lr": 0.003,
            "lr_batch": None,
            "weight_decay": 0.0,
            "label_smoothing": 0.0,
            "amp": "none",  # fp32 on these tiny crops (see tests/helpers.py)
        },
        "train": {"iters": 6, "log_interval": 1, "val_interval": 3, "checkpoint_interval": 2, "progress": False},
        "eval": {"batch_size": 8, "num_workers": 0},
    }
    for section, values in sections.items():
        cfg[section].update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _records(work: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


@pytest.mark.slow
def test_a_short_run_overfits_a_few_images(tiny_imagenet: Path, tmp_path: Path) -> None:
    cfg_path = _config(tmp_path / "c.yaml", tiny_imagenet, train={"iters": 24, "val_interval": 24})
    cfg = load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'run'}"])
    summary = pretrain(cfg)
    train = _records(tmp_path / "run", "train")
    first, last = train[:4], train[-4:]
    assert sum(r["loss"] for r in last) < 0.5 * sum(r["loss"] for r in first)
    assert sum(r["train_top1"] for r in last) / 4 > sum(r["train_top1"] for r in first) / 4 + 0.25
    assert summary["final"]["num_images"] == 8 and summary["final"]["top1"] >= 0.75  # chance is 1/1000
    for name in ("last.pth", "best.safetensors", "final.safetensors", "curves.png", "config.yaml", "summary.json"):
        assert (tmp_path / "run" / name).is_file()


@pytest.mark.slow
def test_resume_mid_epoch_is_bit_exact(tiny_imagenet: Path, tmp_path: Path) -> None:
    extra = {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "ema_decay": 0.9, "label_smoothing": 0.1, "grad_accum": 1}
    cfg_path = _config(tmp_path / "c.yaml", tiny_imagenet, optim=extra, data={"trivial_augment": True})
    straight = load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'a'}"])
    pretrain(straight)
    cfg = load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'b'}"])
    trainer = PretrainStopAt(cfg)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.run()
    trainer.close()
    assert stopped.value.iteration == 3  # mid-epoch: 8 images / batch 4 = 2 iterations per epoch
    pretrain(load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'b'}"]), resume=True)
    a, b = load_file(tmp_path / "a" / "final.safetensors"), load_file(tmp_path / "b" / "final.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _records(tmp_path / "a", "train")] == [
        r["loss"] for r in _records(tmp_path / "b", "train")
    ]


@pytest.mark.slow
def test_a_kill_9_during_validation_is_redone_on_resume(tiny_imagenet: Path, tmp_path: Path) -> None:
    # checkpoints every 2 iterations, validation at 2 and 4: last.pth of iteration 2 comes before its validation
    cfg_path = _config(tmp_path / "c.yaml", tiny_imagenet, train={"iters": 4, "val_interval": 2})
    pretrain(load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'a'}"]))
    cfg = load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'b'}"])
    killed = PretrainKilledInValidation(cfg)
    with pytest.raises(Killed):
        killed.run()
    killed.close()
    pretrain(load_pretrain_config(cfg_path, [f"train.work_dir={tmp_path / 'b'}"]), resume=True)
    a, b = tmp_path / "a", tmp_path / "b"
    assert same_run_records(a, b) and [r["iter"] for r in _records(b, "val")] == [2, 4]
    for name in ("best.safetensors", "final.safetensors"):
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert (sa["best_top1"], sa["best_iteration"]) == (sb["best_top1"], sb["best_iteration"])


def test_cli_work_dir_rules_and_eval_only(tiny_imagenet: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = _config(tmp_path / "c.yaml", tiny_imagenet, train={"iters": 2, "val_interval": 2})
    work = tmp_path / "run"
    assert main(["pretrain", str(cfg), "--work-dir", str(work)]) == 0
    assert main(["pretrain", str(cfg), "--work-dir", str(work)]) == 2  # a second run is refused
    err = capsys.readouterr().err
    assert "holds another run's checkpoints" in err
    assert f"`dsnet pretrain --resume {work}`" in err and "dsnet train" not in err  # names the right command
    assert main(["pretrain", "--resume", str(work), "train.iters=3"]) == 0  # the saved config, one more step
    assert json.loads((work / "summary.json").read_text())["iterations"] == 3
    capsys.readouterr()
    code = main(
        ["pretrain", str(cfg), "--eval-only", "--weights", str(work / "final.safetensors"), "--work-dir", str(work)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "on 8 images" in out and (work / "eval_val.json").is_file()
    eval_again = ["pretrain", str(cfg), "--eval-only", "--weights", str(work / "final.safetensors")]
    assert main([*eval_again, "--work-dir", str(work)]) == 2  # the result exists: the output rule of every command
    assert "eval_val.json: already exists" in capsys.readouterr().err
    assert main([*eval_again, "--work-dir", str(work), "--overwrite"]) == 0
    assert main(["pretrain", str(cfg), "model.name=dsnet_head128", "--work-dir", str(tmp_path / "x")]) == 2
    assert "model.name=" in capsys.readouterr().err


def test_pretrain_with_weights_starts_from_them(tiny_imagenet: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # one step at a learning rate of 1e-12: the run ends with the weights it started from, up to 1e-9
    cfg = _config(tmp_path / "c.yaml", tiny_imagenet, optim={"lr": 1e-12}, train={"iters": 1, "val_interval": 1})
    torch.manual_seed(1234)  # not the run's seed: other weights than a fresh run's
    start = build_classifier(load_pretrain_config(cfg))
    weights = dsnet.save_weights(start, tmp_path / "start.safetensors")
    work = tmp_path / "run"
    assert main(["pretrain", str(cfg), "--weights", str(weights), "--work-dir", str(work), "--device", "cpu"]) == 0
    final, expected = load_file(work / "final.safetensors"), load_file(weights)
    params = [name for name, _ in start.named_parameters()]
    assert params and all(torch.allclose(final[k], expected[k], rtol=0, atol=1e-9) for k in params)
    assert yaml.safe_load((work / "config.yaml").read_text())["model"]["pretrained"] == str(weights)
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(work), "--weights", str(weights)]) == 2  # resuming: refused, not ignored
    assert "--weights" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_gloo_run(tiny_imagenet: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "c.yaml", tiny_imagenet, data={"batch_size": 2}, train={"iters": 3, "val_interval": 3})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "dsnet", "pretrain", str(cfg), "--work-dir", str(tmp_path / "run"), "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["param_max_abs_diff_across_ranks"] == 0.0
    assert summary["final"]["num_images"] == 8  # every image counted once across the two ranks


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_the_work_dir_refusal_names_the_command_that_made_the_run(tmp_path: Path, command: str) -> None:
    (tmp_path / "last.pth").write_bytes(b"")
    with pytest.raises(WorkDirError, match=re.escape(f"`dsnet {command} --resume {tmp_path}`")):
        RunDir(tmp_path, command=command).refuse_foreign_run(overwrite=False)
