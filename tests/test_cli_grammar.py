"""One command-line grammar (issue 13, section 2): ``-o/--out`` and ``--overwrite`` mean the same in every
command and are checked before any work; ``--device``/``--threads`` are checked up front; a failed command
leaves no empty output folder; our own files in the wrong place get their real name."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import dsnet
from dsnet.cli import main
from dsnet.deploy.export import _quiet_onnx_registry
from dsnet.errors import CheckpointError, CheckpointMismatchError, ConfigError, DSNetError, WeightsNotFoundError
from dsnet.fileio import NewOutputs, atomic_write
from dsnet.models import read_checkpoint
from dsnet.predict import Predictor

from .helpers import write_tiny_config


class _Worked(Exception):
    """Raised by a stand-in for a command's real work: reaching it means the output checks passed."""


def _image(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    return path


def _weights(tmp_path: Path) -> Path:
    return dsnet.save_weights(dsnet.create_model("dsnet_head64", num_classes=3), tmp_path / "w.safetensors")


# command -> (argv for an output path, where its work starts, the output is a folder, its file in the folder)
Case = tuple[Callable[[Path, Path], list[str]], str, bool, str | None]
CASES: dict[str, Case] = {
    "predict": (
        lambda tmp, out: ["predict", "dsnet_head64", str(_image(tmp / "in")), "--weights", "w.pt", "-o", str(out)],
        "dsnet.cli.predictor.Predictor",
        True,
        None,
    ),
    "erf": (
        lambda tmp, out: ["erf", "dsnet_head64", "--num-images", "1", "--size", "32", "32", "--out", str(out)],
        "dsnet.cli.analysis.create_model",
        True,
        None,
    ),
    "atrous-padding": (
        lambda tmp, out: ["atrous-padding", "dsnet_head64", "-o", str(out)],
        "dsnet.cli.analysis.create_model",
        True,
        "atrous_padding_dsnet_head64.png",
    ),
    "export": (
        lambda tmp, out: (
            ["export", "dsnet_head64", "--weights", "w.pt", "--format", "onnx", "--size", "32", "32"]
            + ["-o", str(out.with_suffix(".onnx"))]
        ),
        "dsnet.cli.export._weights_model",
        False,
        None,
    ),
    "eval": (
        lambda tmp, out: (
            ["eval", str(write_tiny_config(tmp / "c.yaml", tmp / "data", iters=1, val_interval=1))]
            + ["--weights", "w.pt", "-o", str(out.with_suffix(".json"))]
        ),
        "dsnet.cli.evaluate.evaluate_weights",
        False,
        None,
    ),
    "bench": (
        lambda tmp, out: ["bench", "dsnet_head64", "--size", "32", "32", "--out", str(out.with_suffix(".json"))],
        "dsnet.cli.bench.run_bench",
        False,
        None,
    ),
}


def _work_must_not_start(monkeypatch: pytest.MonkeyPatch, target: str) -> list[int]:
    calls: list[int] = []

    def work(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise _Worked

    monkeypatch.setattr(target, work)
    return calls


def _output_path(argv: list[str]) -> Path:
    flag = next(i for i, a in enumerate(argv) if a in ("-o", "--out"))
    return Path(argv[flag + 1])


@pytest.mark.parametrize("command", list(CASES))
def test_existing_output_is_refused_before_any_work_and_overwrite_replaces_it(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_argv, target, is_folder, inner = CASES[command]
    argv = make_argv(tmp_path, tmp_path / "out")
    out = _output_path(argv)
    existing = out / (inner or "earlier.png") if is_folder else out
    existing.parent.mkdir(parents=True, exist_ok=True)
    existing.write_bytes(b"an earlier result")
    calls = _work_must_not_start(monkeypatch, target)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0], err
    assert calls == [] and existing.read_bytes() == b"an earlier result"
    with pytest.raises(_Worked):  # accepted: the command gets to its work
        main([*argv, "--overwrite"])


@pytest.mark.parametrize("command", list(CASES))
def test_unwritable_output_is_refused_before_any_work(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"  # a path below a file cannot be created, even by root
    blocker.write_text("")
    make_argv, target, _, _ = CASES[command]
    calls = _work_must_not_start(monkeypatch, target)
    argv = make_argv(tmp_path, blocker / "out")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a-file" in err[0] and "cannot write" in err[0], err
    assert calls == []


def test_bench_report_is_not_overwritten_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert main(["bench", "dsnet_head64", "--size", "32", "32", "--seconds", "0.01", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "{}"
    assert (
        main(["bench", "dsnet_head64", "--size", "32", "32", "--seconds", "0.01", "-o", str(out), "--overwrite"]) == 0
    )
    assert "machine" in out.read_text()


def test_export_takes_out_and_output_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _work_must_not_start(monkeypatch, "dsnet.cli.export._weights_model")
    for flag in ("-o", "--out", "--output"):
        argv = ["export", "dsnet_head64", "--weights", "w.pt", "--format", "onnx", "--size", "32", "32"]
        with pytest.raises(_Worked):
            main([*argv, flag, str(tmp_path / "m.onnx")])


# ------------------------------------------------------------------------------------------------- devices


DEVICE_COMMANDS = {
    "train": ["train", "c.yaml"],
    "pretrain": ["pretrain", "c.yaml"],
    "ablate": ["ablate", "c.yaml", "--variants", "dsnet_head64"],
    "eval": ["eval", "c.yaml", "--weights", "w.pt"],
    "predict": ["predict", "dsnet_head64", "in", "--weights", "w.pt", "-o", "out"],
    "bench": ["bench", "dsnet_head64"],
    "erf": ["erf", "dsnet_head64", "-o", "out"],
}


@pytest.mark.parametrize("command", list(DEVICE_COMMANDS))
@pytest.mark.parametrize("device", ["cuda", "foo"])
def test_device_is_checked_up_front_in_one_line(
    command: str, device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)  # nothing is created: the command stops before reading c.yaml or in/
    assert main([*DEVICE_COMMANDS[command], "--device", device]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--device {device}: not" in err[0] and "available: cpu" in err[0], err
    if device == "cuda":
        assert "no CUDA" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["predict", "bench"])
@pytest.mark.parametrize("threads", ["0", "-2"])
def test_threads_below_one_are_an_error(command: str, threads: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*DEVICE_COMMANDS[command], "--threads", threads]) == 2
    assert f"--threads {threads}: needs a number of threads >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------- failed commands clean up


def test_failed_predict_removes_the_output_folder_it_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _image(tmp_path / "in")
    out = tmp_path / "new" / "out"
    assert main(["predict", "dsnet_head64", str(image), "--weights", str(tmp_path / "gone.pt"), "-o", str(out)]) == 2
    assert "gone.pt: weights file not found" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "kept"
    existing.mkdir()  # a folder the user made stays, even empty
    assert main(["predict", "dsnet_head64", str(image), "--weights", str(tmp_path / "gone.pt"), "-o", str(existing)])
    assert existing.is_dir()


def test_failed_train_leaves_no_work_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_tiny_config(tmp_path / "c.yaml", tmp_path / "no-data", iters=1, val_interval=1)
    work = tmp_path / "runs" / "new"
    assert main(["train", str(config), "--work-dir", str(work), "--device", "foo"]) == 2
    assert "--device foo" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no work dir, no train.log, no lock
    assert main(["train", str(config), "--work-dir", str(work)]) == 2  # fails once the run has started:
    assert "no-data" in capsys.readouterr().err  # said on stderr in one line, so a log holding only it goes too
    assert not (tmp_path / "runs").exists()
    work.mkdir(parents=True)  # a work dir the user made stays, with the log that says why
    assert main(["train", str(config), "--work-dir", str(work)]) == 2
    assert "no-data" in (work / "train.log").read_text()


def test_new_outputs_keep_a_folder_that_holds_a_result(tmp_path: Path) -> None:
    outputs = NewOutputs()
    outputs.watch(tmp_path / "a" / "run")
    outputs.watch(tmp_path / "b" / "x.json", file=True)
    (tmp_path / "a" / "run").mkdir(parents=True)
    (tmp_path / "a" / "run" / ".dsnet.lock").write_text("1")
    (tmp_path / "a" / "run" / "last.pth").write_bytes(b"a checkpoint")
    (tmp_path / "b" / "sub").mkdir(parents=True)
    (tmp_path / "b" / "sub" / ".dsnet.lock").write_text("1")
    assert outputs.remove_unused() == [tmp_path / "b"]
    assert (tmp_path / "a" / "run" / "last.pth").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------------------ our files in the wrong place


def _pt2(path: Path) -> Path:
    program = torch.export.export(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),))
    with open(path, "wb") as f:
        torch.export.save(program, f)
    return path


def test_exports_given_as_checkpoints_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pt2 = _pt2(tmp_path / "model.pt2")
    with pytest.raises(CheckpointError, match=r"model\.pt2: a torch\.export program .*torch\.export\.load"):
        Predictor("dsnet_head64", weights=pt2)
    image = _image(tmp_path / "in")
    assert main(["predict", "dsnet_head64", str(image), "--weights", str(pt2), "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dsnet predict runs .onnx and OpenVINO .xml exports" in err[0]
    assert "corrupted" not in err[0] and "not a readable" not in err[0]

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x0a\x12\x07pytorch\x1a\x052.1")  # an ONNX header
    xml = tmp_path / "model.xml"
    xml.write_text('<?xml version="1.0"?>\n<net name="Model0" version="11">\n</net>\n')
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    for path, what in [(onnx, "an ONNX model"), (xml, "an OpenVINO IR model"), (tmp_path / "model.bin", "OpenVINO")]:
        with pytest.raises(CheckpointError, match=what) as info:
            dsnet.create_model("dsnet_head64", weights=path)
        assert "dsnet predict runs" in str(info.value) and "checkpoint it was exported from" in str(info.value)


def test_eval_names_an_onnx_file_before_reading_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x0a\x12\x07pytorch")
    config = write_tiny_config(tmp_path / "c.yaml", tmp_path / "no-data", iters=1, val_interval=1)
    assert main(["eval", str(config), "--weights", str(onnx), "-o", str(tmp_path / "e" / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "m.onnx: an ONNX model (dsnet export --format onnx), not a checkpoint: dsnet predict runs it" in err
    assert not (tmp_path / "e").exists()


# -------------------------------------------------------------------------------------- weights errors


def test_missing_weights_are_one_error_type_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.safetensors"
    model = dsnet.create_model("dsnet_head64")
    calls: list[Callable[[], Any]] = [
        lambda: dsnet.create_model("dsnet_head64", weights=missing),
        lambda: dsnet.load_weights(model, missing),
        lambda: read_checkpoint(missing.with_suffix(".pth")),
        lambda: Predictor("dsnet_head64", weights=missing),
        lambda: Predictor("dsnet_head64", weights=missing.with_suffix(".onnx")),
    ]
    for call in calls:
        with pytest.raises(WeightsNotFoundError, match="nothere") as info:
            call()
        assert isinstance(info.value, DSNetError) and isinstance(info.value, FileNotFoundError)


def test_mismatch_hint_names_the_variant_and_suggests_reset_only_for_training(tmp_path: Path) -> None:
    head64 = dsnet.create_model("dsnet_head64").state_dict()
    with pytest.raises(CheckpointMismatchError) as info:
        dsnet.create_model("dsnet_head128", weights=head64)
    assert "these weights fit dsnet_head64" in str(info.value) and "the model is dsnet_head128" in str(info.value)

    eleven = dsnet.create_model("dsnet_head64", num_classes=11).state_dict()
    with pytest.raises(CheckpointMismatchError, match="reset_classifier"):  # the library can fine-tune
        dsnet.create_model("dsnet_head64", weights=eleven)
    with pytest.raises(CheckpointMismatchError) as info:  # inference cannot
        dsnet.create_model("dsnet_head64", weights=eleven, fine_tuning=False)
    assert "reset_classifier" not in str(info.value) and "(the model has 19 classes)" in str(info.value)
    path = dsnet.save_weights(eleven, tmp_path / "eleven.pth")  # no metadata
    with pytest.raises(DSNetError) as info:  # the class count contradicts the weights: no fine-tuning hint
        Predictor("dsnet_head64", weights=path, num_classes=19, device="cpu")
    assert "reset_classifier" not in str(info.value) and "11 classes" in str(info.value)


# ------------------------------------------------------------------------------------------ file modes


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_are_written_with_the_users_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        weights = dsnet.save_weights(dsnet.create_model("dsnet_head64", num_classes=3), tmp_path / "w.safetensors")
        text = atomic_write(tmp_path / "x.json", lambda tmp: Path(tmp).write_text("{}"))
    finally:
        os.umask(old)
    for path in (weights, text):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------------------------- torchvision notice


def test_onnx_registry_notices_are_dropped_during_an_export_only() -> None:
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        with _quiet_onnx_registry():
            logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
            logger.warning("another notice")
        logger.warning("torchvision is not installed. Skipping %s", "torchvision::roi_align")
    finally:
        logger.removeHandler(handler)
    assert seen == ["another notice", "torchvision is not installed. Skipping torchvision::roi_align"]


@pytest.mark.slow
def test_onnx_export_is_quiet_keeps_the_umask_and_names_its_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    weights = _weights(tmp_path)
    out = tmp_path / "m.onnx"
    old = os.umask(0o022)
    try:
        argv = ["export", "dsnet_head64", "--weights", str(weights), "--num-classes", "3", "--format", "onnx"]
        assert main([*argv, "--size", "32", "32", "-o", str(out), "--no-check"]) == 0
    finally:
        os.umask(old)
    captured = capfd.readouterr()
    assert "torchvision" not in captured.err + captured.out
    assert out.stat().st_mode & 0o777 == 0o644
    with pytest.raises(ConfigError, match=r"m\.onnx: exported from dsnet_head64, not dsnet_base"):
        Predictor("dsnet_base", weights=out)
    assert Predictor("dsnet_head64", weights=out).label_space.num_classes == 3


# ---------------------------------------------------------------------------------------------- rf


def test_rf_unknown_branch_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rf", "dsnet_head64", "--size", "64", "64", "--branch", "foo"]) == 2
    err = capsys.readouterr().err
    assert "--branch 'foo': no such branch in dsnet_head64" in err and "spatial" in err
    assert main(["rf", "dsnet_head64", "--size", "64", "64", "--branch", "spatial"]) == 0
    assert "spatial" in capsys.readouterr().out


def test_predictor_checks_its_device_in_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match=r"^device cuda: not available \(.*\); available: cpu$"):
        Predictor("dsnet_head64", device="cuda")
