"""One execution layer: ``dsnet predict`` (the Predictor), ``dsnet bench`` and ``dsnet serve`` run runners made by
``dsnet.deploy.build_runner``, for every backend and precision this machine offers, and no other module defines
a "batch in, logits out" type of its own.

The runtime cases export a model twice each (dynamic for predict, static for the bench): marked slow.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import dsnet
from dsnet.bench import VARIANTS
from dsnet.cli import build_parser
from dsnet.cli.predictor import predictor_from_args
from dsnet.deploy import ArrayRunner, ModuleRunner, Runner, RunnerInfo, build_runner
from dsnet.errors import ConfigError
from dsnet.hardware import BACKEND_PRECISIONS, resolve_precision
from dsnet.predict import Predictor
from dsnet.predict import resolve as resolve_module
from dsnet.predict.resolve import ResolvedModel

from .tolerances import assert_close_to_scale

MODEL = "dsnet_head64"
SRC = Path(__file__).resolve().parents[1] / "src" / "dsnet"
#: the bench variant that times what dsnet predict runs, per backend and precision
BENCH_VARIANT = {"torch": "fold_channels_last", "onnxruntime": "onnxruntime", "openvino": "openvino"}
RUNTIME_PACKAGES = {"torch": (), "onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino",)}


def _offered() -> list[tuple[str, str]]:
    """(backend, precision) pairs this machine runs: the precision checks of dsnet predict pass."""
    pairs = []
    for backend, precisions in BACKEND_PRECISIONS.items():
        for precision in precisions:
            try:
                resolve_precision(precision, "cpu", backend)
            except ConfigError:
                continue
            pairs.append((backend, precision))
    return pairs


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = dsnet.create_model(MODEL, num_classes=5, aux_heads=False).eval()
    path = tmp_path_factory.mktemp("execution") / "w.safetensors"
    return dsnet.save_weights(model, path, metadata={"model": MODEL, "num_classes": "5"})


def _calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3, 32, 64)).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize(
    "backend, precision",
    [pytest.param(b, p, marks=[pytest.mark.slow] if b != "torch" else []) for b, p in _offered()],
)
def test_predict_and_bench_build_the_same_runner(weights: Path, backend: str, precision: str) -> None:
    missing = [m for m in RUNTIME_PACKAGES[backend] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    calibration = _calibration() if precision == "int8" else None
    predictor = Predictor(
        MODEL, weights=weights, device="cpu", backend=backend, precision=precision, calibration=calibration
    )
    ran = predictor.runner
    assert isinstance(ran, Runner) and ran.recipe is not None  # made by build_runner
    assert (ran.recipe.backend, ran.recipe.precision, ran.info.precision) == (backend, precision, precision)

    model = dsnet.create_model(MODEL, num_classes=5, weights=str(weights), aux_heads=False, fine_tuning=False).eval()
    example = torch.randn(1, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    variant = VARIANTS["openvino-int8" if precision == "int8" else BENCH_VARIANT[backend]]
    timed = variant.runner(model, example, precision)
    assert isinstance(timed, Runner) and timed.recipe is not None
    # the same code: equal recipes, but for the shape a runtime's export is fixed at (the bench times one shape)
    assert timed.recipe == ran.recipe.__class__(**{**vars(ran.recipe), "export_shape": timed.recipe.export_shape})
    with torch.no_grad():
        a, b = ran(example), timed(example)
    if backend == "torch":
        assert torch.equal(a, b)
    elif precision == "int8":  # two quantizations (other calibration shapes): the same scale of logits
        assert a.shape == b.shape and torch.isfinite(b).all()
    else:  # a static and a dynamic export compile to other kernels; bf16 rounds each (8 bits) on a random model
        assert_close_to_scale(b.numpy(), a.numpy(), rel=5e-2 if precision == "bf16" else 1e-4, what=variant.name)


@pytest.mark.parametrize("backend, precision", [pair for pair in _offered() if pair[1] != "int8"])
def test_serve_and_predict_commands_build_the_same_runner(
    weights: Path, backend: str, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dsnet serve``, ``dsnet predict`` and the Python API make their predictor from the same flags by the
    same builder, called alike (a runtime's export is faked here: the test above runs the real ones)."""
    calls: list[tuple[tuple, dict]] = []

    def recording_builder(*args: object, **kwargs: object) -> Runner:
        calls.append((args[1:], kwargs))  # the model is a fresh module each time
        if backend == "torch":
            return build_runner(*args, **kwargs)  # type: ignore[arg-type]
        runner = ArrayRunner(lambda x: x[:, :1], RunnerInfo(backend, precision, torch.device("cpu")))
        return runner

    monkeypatch.setattr(resolve_module, "build_runner", recording_builder)
    flags = ["--weights", str(weights), "--backend", backend, "--precision", precision, "--device", "cpu"]
    parser = build_parser()
    serve_args = parser.parse_args(["serve", MODEL, *flags])
    serve_args.batch_size = serve_args.max_batch  # as cmd_serve sets it before making the predictor
    predictor_from_args(serve_args)
    predictor_from_args(parser.parse_args(["predict", MODEL, "in", "-o", "out", *flags]))
    api = Predictor(MODEL, weights=weights, device="cpu", backend=backend, precision=precision)
    assert len(calls) == 3 and calls[0] == calls[1] == calls[2]
    assert calls[0][0][:2] == (backend, precision)
    assert api.backend == backend and api.precision == precision


def test_the_torch_variants_are_runner_options(weights: Path) -> None:
    model = dsnet.create_model(MODEL, num_classes=5, weights=str(weights), aux_heads=False, fine_tuning=False).eval()
    example = torch.randn(1, 3, 32, 64)
    recipes = {
        name: VARIANTS[name].runner(model, example, "fp32").recipe for name in ("eager", "fold", "channels_last")
    }
    assert {n: (r.fold, r.channels_last) for n, r in recipes.items()} == {
        "eager": (False, False),
        "fold": (True, False),
        "channels_last": (False, True),
    }
    eager = Predictor(MODEL, weights=weights, device="cpu", deploy_form=False).runner
    assert eager.recipe == recipes["eager"]  # predict's deploy_form=False is the bench's eager row
    with pytest.raises(ConfigError, match="fp16 convolutions are not supported on the CPU"):
        build_runner(model, "torch", "fp16")
    with pytest.raises(ConfigError, match="does not compute in int8; it runs in OpenVINO"):
        build_runner(model, "torch", "int8")


def test_a_predictor_is_made_from_resolved_parts(weights: Path) -> None:
    """The constructor takes parts resolved by Predictor.resolve, or made by hand around any runner."""
    parts = Predictor.resolve(MODEL, weights=weights, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    assert np.array_equal(Predictor(parts)(image), Predictor(MODEL, weights=weights, device="cpu")(image))
    with pytest.raises(ConfigError, match="resolved already; weights, precision cannot change it"):
        Predictor(parts, weights=weights, precision="bf16")

    def two_classes(batch: np.ndarray) -> np.ndarray:  # class 1 where the red channel is above the mean
        return np.concatenate([np.zeros_like(batch[:, :1]), batch[:, :1]], axis=1)

    runner = ArrayRunner(two_classes, RunnerInfo("callable", "fp32", torch.device("cpu")))
    by_hand = Predictor(ResolvedModel(runner, dsnet.predict.label_space(None, 2)))
    image[:20] = 255
    image[20:] = 0
    label = by_hand(image)
    assert (label[:20] == 1).all() and (label[20:] == 0).all()


def _batch_to_logits_types(path: Path) -> list[str]:
    """Classes and aliases in ``path`` that take an array or tensor batch and return one: a Protocol with a
    ``__call__``, an nn.Module subclass with ``forward(self, x)`` named like a runner, or a Callable alias."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b) for b in node.bases}
            methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
            if "Protocol" in bases and "__call__" in methods:
                found.append(node.name)
            if any(word in node.name.lower() for word in ("runner", "logits", "runtime")) and "forward" in methods:
                found.append(node.name)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = ast.unparse(node.value) if node.value is not None else ""
            if value.replace("torch.", "").replace("np.", "") in (
                "Callable[[Tensor], Tensor]",
                "Callable[[ndarray], ndarray]",
            ):
                found.append(ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target))
    return found


def test_only_the_execution_layer_defines_a_batch_to_logits_type() -> None:
    owners = {str(p.relative_to(SRC)): names for p in sorted(SRC.rglob("*.py")) if (names := _batch_to_logits_types(p))}
    assert owners == {"deploy/runner.py": ["LogitsFn", "ModuleRunner", "ArrayRunner"]}
    assert issubclass(ModuleRunner, Runner) and issubclass(ArrayRunner, Runner)
