"""dsnet.deploy.export: parity of each format with eager PyTorch, checked by the format's own runtime.

Exports take 10-45 s each on a small CPU, so the ones that export are marked ``slow`` (CI runs
them; ``make test-fast`` does not). Errors are checked before any export work and stay fast.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dsnet
from dsnet.cli import main
from dsnet.deploy import ExportError, MissingBackendError, export, prepare
from dsnet.deploy.signal_stack import keep_signal_stack
from dsnet.errors import ConfigError, DSNetError, OutputError

from .test_deploy_transforms import randomize_batchnorm
from .tolerances import forward_rel

SIZE = (64, 128)
OTHER_SIZES = [(72, 120), (96, 136)]  # 96x136: W not divisible by 16, 9x17 at 1/8 (no region size divides it)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(dsnet.create_model("dsnet_head64", num_classes=7)).eval()


def _run_onnx(path: Path) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]


def _run_openvino(path: Path) -> Any:
    import openvino as ov

    core = ov.Core()
    with keep_signal_stack():  # see dsnet.deploy.signal_stack: else a later signal can crash the suite
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: np.asarray(compiled(x)[0])


def _run_torch(path: Path) -> Any:
    module = torch.export.load(str(path)).module()
    return lambda x: module(torch.from_numpy(x)).detach().numpy()


RUNTIMES = {"onnx": (_run_onnx, ".onnx"), "openvino": (_run_openvino, ".xml"), "torch": (_run_torch, ".pt2")}


# Against the float64 eager model, one float32 run: forward_rel(model) of the output scale (5.8e-4 for
# dsnet_head64; float32 rounding alone, folded or not, measured up to 3.4e-4 in this random-BN network);
# a wrong graph (a baked-in pooling kernel) is off by ~1e-1.


def _errors(model: torch.nn.Module, run: Any, sizes: list[tuple[int, int]], batch: int) -> dict[str, float]:
    reference = copy.deepcopy(model).double()  # the unfolded eval model with nn.AdaptiveAvgPool2d
    errors = {}
    for h, w in sizes:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            ref = reference(x.double()).numpy()
        got = run(x.numpy())
        assert got.shape == ref.shape
        errors[f"{h}x{w}"] = float(np.abs(got - ref).max() / np.abs(ref).max())
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("format", list(RUNTIMES))
def test_export_parity(model: torch.nn.Module, format: str, dynamic: bool, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime" if format == "onnx" else "openvino" if format == "openvino" else "torch")
    runtime, suffix = RUNTIMES[format]
    result = export(model, format, SIZE, out=tmp_path / f"m{suffix}", dynamic=dynamic)
    assert all(f.is_file() for f in result.files) and result.folded_bn == 96
    run = runtime(result.path)
    errors = _errors(model, run, [SIZE], 1)
    if dynamic:
        errors |= _errors(model, run, OTHER_SIZES, 1) | _errors(model, run, [OTHER_SIZES[1]], 2)
        assert len(result.parity) == 2
    print(f"{format} {'dynamic' if dynamic else 'static'} max rel error: {errors}")
    assert max(errors.values()) <= forward_rel(model), errors
    assert max(result.parity.values()) <= forward_rel(model), result.parity


@pytest.mark.slow
def test_every_variant_exports(tmp_path: Path) -> None:
    """Every registered variant through the deploy form and a runtime (OpenVINO: the quickest to convert;
    the ONNX and torch.export paths are covered format by format above)."""
    pytest.importorskip("openvino")
    for name in dsnet.list_models():
        model = randomize_batchnorm(dsnet.create_model(name, num_classes=5)).eval()
        result = export(model, "openvino", (32, 48), out=tmp_path / f"{name}.xml")
        assert result.parity["32x48"] <= forward_rel(model), (name, result.parity)


def test_output_checks_come_before_any_work(model: torch.nn.Module, tmp_path: Path) -> None:
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        export(model, "onnx", SIZE, out=existing)
    assert existing.read_bytes() == b"keep me"
    (tmp_path / "m.bin").write_bytes(b"weights")  # an OpenVINO export writes the .bin too
    with pytest.raises(OutputError, match=r"m\.bin"):
        export(model, "openvino", SIZE, out=tmp_path / "m.xml")
    with pytest.raises(ConfigError, match=r"\.pt2"):
        export(model, "torch", SIZE, out=tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="multiples of 8"):
        export(model, "torch", (60, 128), out=tmp_path / "x.pt2")
    with pytest.raises(ExportError, match="GPU machine with the tensorrt package"):
        export(model, "tensorrt", SIZE, out=tmp_path / "m.plan")


def test_missing_backend_names_the_extra(model: torch.nn.Module, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    with pytest.raises(MissingBackendError, match=r"pip install dsnet-seg\[deploy\]") as info:
        export(model, "openvino", (32, 48), out=tmp_path / "m.xml")
    assert isinstance(info.value, DSNetError) and isinstance(info.value, ImportError)
    assert not (tmp_path / "m.xml").exists()


def test_cli_export_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.safetensors"
    dsnet.save_weights(dsnet.create_model("dsnet_head64", num_classes=3), weights)
    out = tmp_path / "m.pt2"
    args = ["export", "dsnet_head64", "--weights", str(weights), "--num-classes", "3", "--format", "torch"]
    args += ["--size", "32", "48", "-o", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "96 BatchNorms folded" in printed and "at 32x48" in printed
    stamp = out.stat().st_mtime_ns
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err and out.stat().st_mtime_ns == stamp
    assert main(args + ["--overwrite", "--no-check"]) == 0
    assert main(args[:-2] + ["-o", str(tmp_path / "m.plan"), "--format", "tensorrt"]) == 2
    assert "tensorrt" in capsys.readouterr().err


def test_prepared_model_is_what_gets_exported(model: torch.nn.Module) -> None:
    """prepare() is idempotent, so exporting an already prepared model is the same graph."""
    once = prepare(model)
    twice = prepare(once)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(once(x), twice(x))


_TWO_MODELS_THEN_A_SIGNAL = """
import faulthandler, gc, os, signal, sys
import dsnet
from dsnet.deploy import load_export
from dsnet.deploy.signal_stack import current_signal_stack
faulthandler.enable()  # like pytest: the thread has an alternate signal stack before OpenVINO runs
before = current_signal_stack()
first, second = load_export(sys.argv[1], "openvino").run, load_export(sys.argv[1], "openvino").run
del first
gc.collect()
del second
gc.collect()
print("stack kept:", current_signal_stack() == before, flush=True)
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
os.kill(os.getpid(), signal.SIGUSR1)  # a signal handled in Python runs on the alternate stack
print("handled:", got == [1], flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="alternate signal stacks: Linux")
def test_openvino_models_leave_the_threads_signal_stack_alive(tmp_path: Path) -> None:
    """OpenVINO's CPU plugin swaps the thread's signal stack per compiled model; dropping two models
    out of order used to leave it unmapped, and the next handled signal (here SIGUSR1; in the test
    suite, SIGCHLD of a finished child process) killed the process with SIGSEGV."""
    pytest.importorskip("openvino")
    path = export(dsnet.create_model("dsnet_head64", num_classes=3), "openvino", (64, 64), out=tmp_path / "m.xml").path
    run = subprocess.run([sys.executable, "-c", _TWO_MODELS_THEN_A_SIGNAL, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stdout}{run.stderr[-1500:]}"
    assert "stack kept: True" in run.stdout and "handled: True" in run.stdout
