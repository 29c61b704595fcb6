"""Regression tests for the silent failures a new user hit: bad data, bad settings, faults, resumes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import dsnet
import dsnet.engine
from dsnet.cli import main
from dsnet.engine.build import build_split
from dsnet.engine.config import Config, apply_overrides, load_config
from dsnet.engine.config_checks import validate_config
from dsnet.engine.evaluator import evaluate_with_config
from dsnet.engine.observe import logging_scope, setup_logging
from dsnet.engine.state import load_training_state
from dsnet.engine.trainer import Trainer, TrainingInterrupted
from dsnet.engine.workdir import RunDir
from dsnet.errors import ConfigError, DataError, DSNetError, OutputError, WorkDirError

from .helpers import Killed, KilledInValidation, StopAt, same_run_records, write_tiny_config
from .synthetic import write_camvid_like


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid_like(tmp_path_factory.mktemp("data"), {"train": 8, "val": 4})


def _config_file(tmp_path: Path, root: Path, iters: int = 4, val: int = 2) -> Path:
    return write_tiny_config(tmp_path / "tiny.yaml", root, iters=iters, val_interval=val)


def _cfg(tmp_path: Path, root: Path, *overrides: str, iters: int = 4, val: int = 2) -> Config:
    return load_config(_config_file(tmp_path, root, iters, val), [f"train.work_dir={tmp_path / 'run'}", *overrides])


# ---------------------------------------------------------------------------------------------
# settings are checked before training, naming the key


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("eval.scales=[]", "eval.scales"),
        ("eval.scales=[0.5, -1]", "eval.scales"),
        ("train.log_interval=0", "train.log_interval"),
        ("train.max_val_samples=0", "train.max_val_samples"),
        ("data.root=null", "data.root"),
        ("train.val_interval=0", "train.val_interval"),
        ("model.name=dsnet_head12", "model.name"),
        ("data.class_weights=kitti", "data.class_weights"),
    ],
)
def test_bad_settings_fail_before_training_naming_the_key(
    tmp_path: Path, data_root: Path, override: str, key: str
) -> None:
    cfg = _cfg(tmp_path, data_root, override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Trainer(cfg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing ran


# ---------------------------------------------------------------------------------------------
# 5.1 evaluation drops bad samples instead of counting a neighbour twice


def test_evaluation_drops_bad_samples_and_counts_each_good_image_once(tmp_path: Path) -> None:
    root = write_camvid_like(tmp_path / "data", {"train": 4, "val": 4})
    cfg = apply_overrides(
        Config(),
        ["model.name=dsnet_head64", "model.num_classes=11", "data.dataset=camvid", f"data.root={root}"],
    )
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False).eval()
    good = evaluate_with_config(model, build_split(cfg, "val", train=False), cfg)
    per_image = [
        evaluate_with_config(model, torch.utils.data.Subset(build_split(cfg, "val", False), [i]), cfg).confusion
        for i in range(4)
    ]
    (root / "images" / "val" / "val_001.png").write_bytes(b"not a png")  # one corrupt image
    skip = apply_overrides(cfg, ["data.on_bad_sample=skip"])
    metrics = evaluate_with_config(model, build_split(skip, "val", train=False), skip)
    assert metrics.num_images == 3 and metrics.num_skipped == 1
    assert "val_001.png" in metrics.skipped[0]
    expected = per_image[0] + per_image[2] + per_image[3]  # sample 1 dropped, not replaced by sample 2
    assert np.array_equal(metrics.confusion, expected)
    assert good.num_images == 4


# ---------------------------------------------------------------------------------------------
# 5.2 training whose batches are all ignore warns, then stops


def test_all_ignore_training_batches_warn_and_then_stop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_camvid_like(tmp_path / "data", {"train": 4, "val": 2})
    for label in (root / "labels" / "train").glob("*.png"):
        Image.fromarray(np.full((72, 96), 11, np.uint8)).save(label)  # every pixel void
    cfg = _cfg(tmp_path, root, "train.max_empty_batches=3", iters=10, val=100)
    with caplog.at_level(logging.WARNING, logger="dsnet"), pytest.raises(DataError, match="3 consecutive"):
        Trainer(cfg).run()
    assert "NO labelled pixel" in caplog.text


# ---------------------------------------------------------------------------------------------
# 5.3 one run per work dir; no silent overwrite


def test_a_second_concurrent_run_is_refused(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root)
    holder = RunDir(tmp_path / "run")
    holder.lock()  # another run (here: this process through another handle) holds the folder
    try:
        with pytest.raises(WorkDirError, match="another dsnet run is using this work dir"):
            Trainer(cfg)
    finally:
        holder.unlock()


def test_a_new_run_refuses_a_finished_run_unless_resumed_or_overwritten(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root, iters=2)
    Trainer(cfg).run()
    final = (tmp_path / "run" / "final.safetensors").read_bytes()
    with pytest.raises(WorkDirError, match=r"--resume .*--overwrite"):
        Trainer(cfg)
    assert (tmp_path / "run" / "final.safetensors").read_bytes() == final  # nothing lost
    summary = Trainer(cfg, resume=True).run()
    assert summary["already_finished"] and summary["iterations"] == 2
    summary = Trainer(cfg, overwrite=True).run()
    assert summary["iterations"] == 2 and "final" in summary


# ---------------------------------------------------------------------------------------------
# 5.4 resume from the work dir alone


def test_resume_from_the_work_dir_with_its_saved_config(tmp_path: Path, data_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config_file(tmp_path, data_root, iters=6, val=2)
    work = tmp_path / "run"
    cfg = load_config(config, [f"train.work_dir={work}", "optim.lr=0.02"])
    with pytest.raises(TrainingInterrupted):
        StopAt(cfg).run()
    (work / ".last.pth.abc123.tmp").write_bytes(b"half a checkpoint")  # left by a killed write
    # the printed command: only the work dir, the overrides come from its config.yaml
    assert main(["train", "--resume", str(work)]) == 0
    assert not (work / ".last.pth.abc123.tmp").exists()
    assert load_config(work / "config.yaml").optim.lr == 0.02
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    train_its = [r["iter"] for r in records if r["kind"] == "train"]
    assert train_its == [1, 2, 3, 4, 5, 6]  # no iteration repeated after the resume
    assert [r["iter"] for r in records if r["kind"] == "val"] == [2, 4, 6]
    # resuming a finished run says so and changes nothing
    before = (work / "final.safetensors").read_bytes()
    assert main(["train", "--resume", str(work)]) == 0
    assert "already finished at iteration 6" in capsys.readouterr().out
    assert (work / "final.safetensors").read_bytes() == before


def test_resume_without_a_checkpoint_is_an_error(tmp_path: Path, data_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config_file(tmp_path, data_root)
    assert main(["train", str(config), "--work-dir", str(tmp_path / "empty"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume from" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--resume"]) == 2
    assert "give a CONFIG" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 5.5 a stop signal during validation stops within one batch; a second one exits at once


class _StopInValidation(Trainer):
    calls = 0

    def _should_stop(self) -> bool:
        _StopInValidation.calls += 1
        if self.iteration == 2 and self._stop_signal is None:
            self._stop_signal = signal.SIGINT  # Ctrl-C arrives while validating iteration 2
        return super()._should_stop()


def test_ctrl_c_during_validation_stops_at_once_and_resume_validates_first(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root, iters=4, val=2)
    trainer = _StopInValidation(cfg)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.run()
    assert info.value.iteration == 2
    assert _StopInValidation.calls == 1  # validation asked once, then stopped: no further batch ran
    state = load_training_state(tmp_path / "run" / "last.pth")
    assert state["pending_validation"] and state["iteration"] == 2
    Trainer(cfg, resume=True).run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["kind"] == "val"] == [2, 4]  # the interrupted validation redone

    (tmp_path / "ref").mkdir()
    Trainer(_cfg(tmp_path / "ref", data_root, iters=4, val=2)).run()
    resumed = load_file(str(tmp_path / "run" / "final.safetensors"))
    uninterrupted = load_file(str(tmp_path / "ref" / "run" / "final.safetensors"))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The work dir of a 4-iteration run validated at 2 and 4, never stopped."""
    base = tmp_path_factory.mktemp("uninterrupted")
    Trainer(_cfg(base, data_root, iters=4, val=2)).run()
    return base / "run"


@pytest.mark.parametrize("kill_at", [2, 4])
def test_a_kill_9_during_validation_is_redone_on_resume(
    tmp_path: Path, data_root: Path, uninterrupted_run: Path, kill_at: int
) -> None:
    # last.pth of iteration 2 is written before iteration 2's validation; 4 is the last (validated) iteration
    cfg = _cfg(tmp_path, data_root, iters=4, val=2)
    killed = type("K", (KilledInValidation,), {"kill_at": kill_at})(cfg)
    with pytest.raises(Killed):
        killed.run()
    assert load_training_state(tmp_path / "run" / "last.pth")["iteration"] == 2
    Trainer(cfg, resume=True).run()
    run, ref = tmp_path / "run", uninterrupted_run
    assert same_run_records(run, ref)  # every validation once, none lost, none repeated
    for name in ("best.safetensors", "final.safetensors"):
        a, b = load_file(str(run / name)), load_file(str(ref / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((run / "best_metrics.json").read_text()) == json.loads((ref / "best_metrics.json").read_text())
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run, ref))
    assert (summary["best_miou"], summary["best_iteration"]) == (expected["best_miou"], expected["best_iteration"])


def test_a_second_signal_exits_at_once(tmp_path: Path, data_root: Path) -> None:
    trainer = Trainer(_cfg(tmp_path, data_root))
    trainer.signals.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert trainer._stop_signal == signal.SIGINT  # the first one asks for a clean stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second one is Python's default: exit now
            for _ in range(100):
                pass
    finally:
        trainer.signals.restore()
        trainer.close()


# ---------------------------------------------------------------------------------------------
# 5.6 full disk and read-only outputs: one line naming the path, checked before long work


@pytest.fixture()
def tiny_mount(tmp_path: Path):  # type: ignore[no-untyped-def]
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_file(tiny_mount: Path) -> None:
    model = dsnet.create_model("dsnet_head64", num_classes=11)
    with pytest.raises(OutputError, match=r"small/w\.pth: cannot write \(No space left on device"):
        dsnet.save_weights(model, tiny_mount / "w.pth")
    assert list(tiny_mount.iterdir()) == []  # no half-written file left behind


def test_read_only_eval_output_fails_before_evaluating(
    tiny_mount: Path, tmp_path: Path, data_root: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    config = _config_file(tmp_path, data_root)
    weights = tmp_path / "w.safetensors"
    dsnet.save_weights(dsnet.create_model("dsnet_head64", num_classes=11), weights)
    code = main(["eval", str(config), "--weights", str(weights), "--out", str(tiny_mount / "eval.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(tiny_mount) in err[0] and "Read-only file system" in err[0]


def test_unwritable_work_dir_is_refused_before_training(tmp_path: Path, data_root: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = _cfg(tmp_path, data_root, f"train.work_dir={blocker / 'run'}")
    with pytest.raises(OutputError, match="a-file/run: cannot write here"):
        Trainer(cfg)


# ---------------------------------------------------------------------------------------------
# 5.7 checkpoint messages


def test_random_bytes_are_not_called_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(dsnet.CheckpointError) as info:
        dsnet.load_weights(dsnet.create_model("dsnet_head64"), path)
    assert "not a readable PyTorch checkpoint" in str(info.value)
    assert "execute code" not in str(info.value)


def test_a_foreign_state_dict_lists_its_unexpected_keys() -> None:
    foreign = {"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.weight": torch.zeros(10, 8)}
    with pytest.raises(dsnet.CheckpointMismatchError) as info:
        dsnet.load_weights(dsnet.create_model("dsnet_head64"), foreign)
    assert "missing keys" in str(info.value) and "unexpected keys (2): features.0.weight" in str(info.value)


def test_a_resume_mismatch_names_the_file(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root, iters=2)
    Trainer(cfg).run()
    other = apply_overrides(cfg, ["model.name=dsnet_head128"])
    with pytest.raises(dsnet.CheckpointMismatchError, match=r"checkpoint .*run/last\.pth does not fit"):
        Trainer(other, resume=True)


def test_eval_with_an_encoder_only_checkpoint_is_an_error(tmp_path: Path, data_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    sd = dsnet.create_model("dsnet_head64", num_classes=11).state_dict()
    encoder = {k: v for k, v in sd.items() if not k.startswith(dsnet.models.DECODER_PREFIXES)}
    path = dsnet.save_weights(encoder, tmp_path / "imagenet.safetensors")
    code = main(["eval", str(_config_file(tmp_path, data_root)), "--weights", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "encoder-only checkpoint" in err and str(path) in err


def test_cli_errors_are_dsnet_errors_and_written_to_the_run_log(tmp_path: Path, data_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config_file(tmp_path, data_root)
    work = tmp_path / "run"
    work.mkdir()  # the user's folder: kept with its log (a folder the command made would go, see test_cli_grammar)
    assert main(["train", str(config), "--work-dir", str(work), "loss.ohem_thresh=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss.ohem_thresh" in err[0]
    assert "loss.ohem_thresh" in (work / "train.log").read_text()
    assert issubclass(ConfigError, DSNetError) and issubclass(DataError, DSNetError)


def test_fine_tuning_from_a_checkpoint_with_other_classes_through_the_config(tmp_path: Path, data_root: Path) -> None:
    weights = dsnet.save_weights(dsnet.create_model("dsnet_head64", num_classes=19), tmp_path / "cs.safetensors")
    cfg = _cfg(tmp_path, data_root, f"model.pretrained={weights}", iters=1, val=100)
    with pytest.raises(dsnet.CheckpointMismatchError, match="model.reset_classifier=true"):
        Trainer(cfg)
    summary = Trainer(apply_overrides(cfg, ["model.reset_classifier=true"])).run()
    assert summary["iterations"] == 1


# ---------------------------------------------------------------------------------------------
# a library without side effects the caller did not ask for


def test_train_configures_no_logging_and_keeps_the_callers_process_group(tmp_path: Path, data_root: Path) -> None:
    logger = logging.getLogger("dsnet")
    handlers_before = list(logger.handlers)
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        summary = dsnet.engine.train(_cfg(tmp_path, data_root, iters=1, val=100))
        assert summary["iterations"] == 1
        assert torch.distributed.is_initialized()  # the caller's group survives train()
        assert logger.handlers == handlers_before  # no handler added (the CLI adds them)
    finally:
        torch.distributed.destroy_process_group()


def test_cli_logging_ends_with_the_command_and_follows_a_swapped_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process running several commands (tests, notebooks) keeps neither an open log file nor a
    handler bound to a stderr that was closed since (this once broke a later command's one-line error)."""
    logger = logging.getLogger("dsnet")
    before = (list(logger.handlers), logger.level, logger.propagate)
    first, second = _Stream(), _Stream()
    with logging_scope():
        monkeypatch.setattr("sys.stderr", first)
        setup_logging(tmp_path / "run.log", is_main=True)
        file_handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))
        logger.info("to the first stream")
        first.close()
        monkeypatch.setattr("sys.stderr", second)
        logger.info("to the second stream")
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    assert file_handler.stream is None  # closed
    assert "to the second stream" in second.getvalue() and "Logging error" not in second.getvalue()
    log = (tmp_path / "run.log").read_text()
    assert "to the first stream" in log and "to the second stream" in log


class _Stream:
    """A stderr stand-in whose text stays readable after close."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.closed = False

    def write(self, text: str) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def getvalue(self) -> str:
        return "".join(self.parts)
