"""The training levers of a time-budget recipe: amp=auto, EMA, cosine schedule, computed class weights,
resolution stages and train.minutes; each changes what it says and keeps resume exact."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from dsnet.data import balanced_class_weights, build_dataset, class_pixel_counts
from dsnet.engine.config import Config, ConfigError, apply_overrides, load_config
from dsnet.engine.config_checks import validate_config
from dsnet.engine.pretrain.config import PretrainConfig
from dsnet.engine.time_budget import BudgetPlan, plan_iterations, replan_iterations
from dsnet.engine.trainer import Trainer, TrainingInterrupted, train
from dsnet.hardware import cpu_flags, native_bf16, resolve_amp

from .helpers import StopAt, write_tiny_config


def _config(tmp_path, root, overrides, iters=4, val_interval=2):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_tiny_config(tmp_path / "tiny.yaml", root, iters=iters, val_interval=val_interval)
    cfg = load_config(path, ["train.max_val_samples=1", *overrides])
    cfg.train.work_dir = str(tmp_path / "run")
    return cfg


def _weights(path):
    return {k: v.clone() for k, v in load_file(str(path)).items()}


# --- amp: auto -------------------------------------------------------------------------------------
def test_amp_bf16_asked_on_a_cpu_without_native_bf16_warns(tmp_path, synthetic_camvid, monkeypatch, caplog):
    """optim.amp=bf16 on an AVX2-only CPU trains several times slower: the log says so, as a warning."""
    amp, why = resolve_amp("bf16", "cpu", ["avx2", "fma", "f16c"])
    assert amp == "bf16" and "emulated on this cpu" in why and "optim.amp=auto or none" in why
    assert resolve_amp("bf16", "cpu", ["avx2", "avx512_bf16"]) == ("bf16", "set in the config")
    monkeypatch.setenv("DSNET_CPU_FLAGS", "avx2 fma f16c")
    cfg = _config(tmp_path, synthetic_camvid, ["optim.amp=bf16"], iters=1)
    with caplog.at_level("INFO", logger="dsnet"):
        train(cfg, device="cpu")
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "optim.amp=bf16" in r.getMessage()]
    assert warned and "emulated" in warned[0].getMessage()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"], "bf16"),
        (["avx2", "fma", "amx_bf16"], "bf16"),
        (["avx2", "fma", "avx512f", "avx512_vnni"], "none"),  # Intel Xeon without bf16: fp32
        (["avx2", "fma"], "none"),
        ([], "none"),
    ],
)
def test_amp_auto_follows_the_cpu_flags(flags, expected):
    assert native_bf16("cpu", flags) == (expected == "bf16")
    amp, why = resolve_amp("auto", "cpu", flags)
    assert amp == expected and why.startswith("auto")
    assert resolve_amp("none", "cpu", flags)[0] == "none"  # an explicit choice is kept
    assert resolve_amp("bf16", "cpu", flags)[0] == "bf16"


def test_amp_auto_is_the_default_and_is_written_into_config_and_weights(tmp_path, synthetic_camvid):
    assert Config().optim.amp == "auto" and PretrainConfig().optim.amp == "auto"
    path = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=2, val_interval=2)
    cfg = load_config(path, ["optim.amp=auto", "train.max_val_samples=1"])
    cfg.train.work_dir = str(tmp_path / "run")
    train(cfg, device="cpu")
    chosen = resolve_amp("auto", "cpu")[0]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["amp"] == chosen
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "best.safetensors"), "pt") as f:
        assert f.metadata()["amp"] == chosen
        assert f.metadata()["config"] == "tiny"


# --- class weights --------------------------------------------------------------------------------
def test_median_frequency_weights_favour_rare_classes():
    pixels = np.array([1000, 100, 10, 0])
    image_pixels = np.array([2000, 2000, 2000, 0])
    w = balanced_class_weights(pixels, image_pixels, "median_frequency")
    assert w[0] < w[1] < w[2]
    assert w[1] == pytest.approx(1.0)  # the median class
    assert w[3] == max(w[:3])  # absent class: the largest weight
    sqrt = balanced_class_weights(pixels, image_pixels, "sqrt_median_frequency")
    np.testing.assert_allclose(sqrt[:3], np.sqrt(w[:3]))
    with pytest.raises(ValueError, match="unknown class balance"):
        balanced_class_weights(pixels, image_pixels, "inverse")


def test_class_pixel_counts_read_the_decoded_labels(synthetic_camvid):
    ds = build_dataset("camvid", synthetic_camvid, "train")
    pixels, image_pixels = class_pixel_counts(ds)
    total = sum(int((ds.load_pair(i)[1] != 255).sum()) for i in range(len(ds)))
    assert pixels.sum() == total
    assert (image_pixels >= pixels).all()


def test_an_unknown_class_weight_preset_names_the_key(tmp_path, synthetic_camvid):
    cfg = _config(tmp_path, synthetic_camvid, [])
    with pytest.raises(ConfigError, match="data.class_weights='median'.*median_frequency"):
        validate_config(apply_overrides(cfg, ["data.class_weights=median"]))


# --- stages, EMA, schedule, resume -----------------------------------------------------------------
LEVERS = [
    "optim.ema_decay=0.9",
    "optim.schedule=cosine",
    "data.class_weights=sqrt_median_frequency",
    "data.stages=[{start: 0.5, crop_size: [72, 96], base_size: 96}]",
    "data.photometric=streets",
    "loss.label_smoothing=0.1",
    "loss.boundary_weight=1.0",
]


def test_levers_together_resume_bit_for_bit(tmp_path, synthetic_camvid, synthetic_bdd100k):
    extra = f"data.extra_train=[{{dataset: bdd100k, root: {synthetic_bdd100k}, class_map: cityscapes-to-camvid}}]"
    levers = [*LEVERS, extra]
    whole = _config(tmp_path / "a", synthetic_camvid, levers, iters=6, val_interval=3)
    train(whole, device="cpu")
    cut = _config(tmp_path / "b", synthetic_camvid, levers, iters=6, val_interval=3)
    run = StopAt(cut, device="cpu")
    run.stop_at = 4  # inside the second stage (it starts at iteration 3)
    with pytest.raises(TrainingInterrupted):
        run.run()
    run.close()
    train(cut, resume=True, device="cpu")
    a, b = _weights(tmp_path / "a/run/final.safetensors"), _weights(tmp_path / "b/run/final.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    summary = json.loads((tmp_path / "b/run/summary.json").read_text())  # what the run's iterations depended on
    assert summary["hardware"]["device"] == "cpu" and int(summary["hardware"]["threads"]) >= 1
    assert summary["hardware"]["cpu_flags"] == (" ".join(cpu_flags()) or "(unknown)")
    with safe_open(str(tmp_path / "b/run/final.safetensors"), framework="pt") as f:
        assert f.metadata()["cpu_flags"] == summary["hardware"]["cpu_flags"]


def test_stages_change_the_crop_at_their_start(tmp_path, synthetic_camvid):
    cfg = _config(tmp_path, synthetic_camvid, ["data.stages=[{start: 0.5, crop_size: [72, 96]}]"], iters=4)
    run = Trainer(cfg, device="cpu")
    try:
        assert run.stage_starts() == [2]
        shapes = []
        batches = run._loader()
        for _ in range(4):
            images, _ = next(batches)
            shapes.append(tuple(images.shape[-2:]))
            run.iteration += 1
        assert shapes == [(64, 64), (64, 64), (72, 96), (72, 96)]
    finally:
        run.close()


def test_ema_weights_are_what_is_saved(tmp_path, synthetic_camvid):
    cfg = _config(tmp_path, synthetic_camvid, ["optim.ema_decay=0.5"], iters=3, val_interval=3)
    run = Trainer(cfg, device="cpu")
    try:
        run.run()
        saved = _weights(tmp_path / "run/final.safetensors")
        ema = run.ema.module.state_dict()
        raw = run.model.state_dict()
        key = next(k for k in saved if k.endswith("weight") and raw[k].dtype.is_floating_point)
        assert torch.equal(saved[key], ema[key].cpu())
        assert not torch.equal(saved[key], raw[key].cpu())
    finally:
        run.close()


def test_a_bad_stage_names_its_key(tmp_path, synthetic_camvid):
    bad = _config(tmp_path, synthetic_camvid, ["data.stages=[{start: 1.5}]"])
    with pytest.raises(ConfigError, match=r"data.stages\[0\].start=1.5"):
        validate_config(bad)
    bad = _config(tmp_path, synthetic_camvid, ["data.stages=[{start: 0.5, crop_size: [70, 96]}]"])
    with pytest.raises(ConfigError, match=r"data.stages\[0\].crop_size"):
        validate_config(bad)


# --- train.minutes ---------------------------------------------------------------------------------
def test_plan_iterations_fills_the_budget():
    plan = plan_iterations(600, 20, [0.5, 2.0], [0.75], validation_s=10, val_interval=100)
    per_iteration = 0.75 * 0.5 + 0.25 * 2.0
    used = plan.iterations * per_iteration + plan.validations * 10 + 20
    assert used <= 600 * 0.98 < used + per_iteration + 10
    with pytest.raises(ValueError, match="no time to train"):
        plan_iterations(60, 59, [1.0], [], validation_s=1, val_interval=10)


def test_a_minutes_run_is_the_run_its_iteration_count_gives(tmp_path, synthetic_camvid, monkeypatch):
    """The measuring steps leave no trace: a minutes run equals the train.iters=N run it planned (N is
    pinned to 3 here to keep the test short; plan_iterations has its own test)."""
    import dataclasses

    from dsnet.engine import trainer as trainer_module

    real = trainer_module.plan_iterations
    monkeypatch.setattr(
        trainer_module, "plan_iterations", lambda *a, **k: dataclasses.replace(real(*a, **k), iterations=3)
    )
    timed = _config(tmp_path / "a", synthetic_camvid, ["train.minutes=10", "optim.ema_decay=0.9"], iters=1000)
    run = Trainer(timed, device="cpu")
    try:
        summary = run.run()
    finally:
        run.close()
    assert summary["iterations"] == 3 and "3 iterations" in run.plan.describe()
    saved = yaml.safe_load((tmp_path / "a/run/config.yaml").read_text())
    assert saved["train"]["iters"] == 3 and saved["train"]["minutes"] == 10
    fixed = _config(tmp_path / "b", synthetic_camvid, ["optim.ema_decay=0.9"], iters=3)
    train(fixed, device="cpu")
    a, b = _weights(tmp_path / "a/run/final.safetensors"), _weights(tmp_path / "b/run/final.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    records = [json.loads(x) for x in (tmp_path / "a/run/metrics.jsonl").read_text().splitlines()]
    assert records[0]["iter"] == 1  # the measuring steps left no record


def test_replan_iterations_fills_what_is_left_at_the_pace_so_far():
    plan = BudgetPlan(1000, budget_s=1000, spent_s=20, step_s=(1.0, 2.0), validation_s=10, validations=10)
    at = dict(done=100, spent_s=150, stage_starts=[0.5], val_interval=100)
    slower = replan_iterations(plan, pace_s=1.2, **at)

    def used(n):  # steps 101..n/2 in the first stage at 1.2 s, the rest at 2.4 (its measured ratio), validations
        return (round(n / 2) - 100) * 1.2 + (n - round(n / 2)) * 2.4 + ((n - 100) / 100 + 1) * 10 + 150

    assert used(slower) <= 1000 * 0.98 < used(slower + 1)
    assert replan_iterations(plan, pace_s=0.8, **at) > replan_iterations(plan, pace_s=1.0, **at) > slower
    assert replan_iterations(plan, pace_s=2.4, stage=1, **at) == slower  # the same slow-down seen in stage 2
    assert replan_iterations(plan, pace_s=1.0, **{**at, "spent_s": 2000}) == 101  # out of time: one more


def test_the_pace_is_checked_three_times_over_the_steps_since_the_last_check(monkeypatch):
    """A machine that slows down after the first check is seen at the next one: each pace is measured since
    the previous check, validations left out; a window that crosses into another stage is not judged."""
    from dsnet.engine import time_budget

    clock = [0.0]
    monkeypatch.setattr(time_budget.time, "perf_counter", lambda: clock[0])
    monitor = time_budget.PaceMonitor()
    seen = {}
    for iteration in range(1, 101):
        clock[0] += 1.0 if iteration <= 30 else 1.5
        if iteration == 60:
            monitor.pause(7.0)  # a validation
            clock[0] += 7.0
        paced = monitor.after_step(iteration, 100, [])
        if paced is not None:
            seen[iteration] = paced
    assert seen == {10: (1.0, 0), 50: (pytest.approx((20 * 1.0 + 20 * 1.5) / 40), 0), 80: (1.5, 0)}

    monitor, clock[0] = time_budget.PaceMonitor(), 0.0
    results = {}
    for iteration in range(1, 101):
        clock[0] += 1.0
        results[iteration] = monitor.after_step(iteration, 100, [45])  # a second stage from iteration 46
    assert results[10] == (1.0, 0) and results[50] is None and results[80] == (1.0, 1)
    assert [i for i, r in results.items() if r is not None] == [10, 80]


def test_a_minutes_run_slower_than_its_measured_step_is_replanned(tmp_path, synthetic_camvid, monkeypatch, caplog):
    """The measured step said 1 ms, the run takes 0.15 s a step: at a tenth of the 40 planned iterations the
    pace check cuts the run to what fits in the 3 s left, says so and rewrites config.yaml (the checks at half
    and four fifths of the new count may trim it again)."""
    from dsnet.engine import trainer as trainer_module

    monkeypatch.setattr(
        trainer_module,
        "plan_iterations",
        lambda budget, spent, steps, *a, **k: BudgetPlan(40, spent + 3.0, spent, (1e-3,), 0.0, 1),
    )
    real_step = Trainer._step

    def slow_step(self, batches):
        time.sleep(0.15)
        return real_step(self, batches)

    monkeypatch.setattr(Trainer, "_step", slow_step)
    cfg = _config(tmp_path, synthetic_camvid, ["train.minutes=10", "train.val_interval=1000"], iters=1000)
    run = Trainer(cfg, device="cpu")
    try:
        with caplog.at_level("INFO", logger="dsnet"):
            iterations = run.run()["iterations"]
    finally:
        run.close()
    assert 4 < iterations < 40
    said = [r.getMessage() for r in caplog.records if "pace at iteration" in r.getMessage()]
    assert "pace at iteration 4:" in said[0] and "iterations instead of 40" in said[0]
    assert f"{iterations} iterations instead of" in [m for m in said if "instead of" in m][-1]  # later checks too
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["train"]["iters"] == iterations


@pytest.mark.parametrize(("minutes", "step_delay", "measured"), [(10, 0.0, 3 + 10), (0.5, 1.6, 1 + 2)])
def test_measuring_the_step_is_a_bounded_share_of_the_budget(
    tmp_path, synthetic_camvid, monkeypatch, minutes, step_delay, measured
):
    """A long budget times 3 warm-up and 10 real steps; a short one on a slow CPU stops at one warm-up and two
    timed steps once its share (5 %) is spent, so a 75-second demo still trains on an AVX2-only CPU."""
    from dsnet.engine import trainer as trainer_module
    from dsnet.engine.time_budget import BudgetPlan

    real_step = Trainer._step
    # 2 iterations whatever the measurement found (a slow CI machine must not turn this into "no time to train")
    monkeypatch.setattr(
        trainer_module,
        "plan_iterations",
        lambda budget, spent, steps, *a, **k: BudgetPlan(2, budget, spent, tuple(steps), 0.0, 1),
    )
    calls = []

    def slow_step(self, batches):
        calls.append(self.iteration)
        time.sleep(step_delay)
        return real_step(self, batches)

    monkeypatch.setattr(Trainer, "_step", slow_step)
    cfg = _config(tmp_path, synthetic_camvid, [f"train.minutes={minutes}"], iters=1000)
    run = Trainer(cfg, device="cpu")
    try:
        assert run.run()["iterations"] == 2
    finally:
        run.close()
    assert len(calls) == measured + 2


def test_a_budget_that_cannot_hold_a_step_stops_at_once_and_says_why(tmp_path, synthetic_camvid, monkeypatch, caplog):
    """train.minutes=0.05 with 2-second steps: one measured step, then the error, not minutes of measuring."""
    real_step, calls = Trainer._step, []

    def slow_step(self, batches):
        calls.append(self.iteration)
        time.sleep(2.0)
        return real_step(self, batches)

    monkeypatch.setattr(Trainer, "_step", slow_step)
    cfg = _config(tmp_path, synthetic_camvid, ["train.minutes=0.05"], iters=1000)
    run = Trainer(cfg, device="cpu")
    try:
        with caplog.at_level("INFO", logger="dsnet"), pytest.raises(ConfigError, match="no time to train: a step"):
            run.run()
    finally:
        run.close()
    assert len(calls) == 1
    assert any("warm-up step 1 took" in r.getMessage() for r in caplog.records)  # progress while measuring


def test_color_jitter_changes_colours_only_after_the_geometric_draws():
    from dsnet.data.transforms import TrainTransform, jitter_colors

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (48, 64), dtype=np.uint8)
    plain = TrainTransform((32, 32), 64)(image, label, np.random.default_rng(7))
    jittered = TrainTransform((32, 32), 64, color_jitter=0.4)(image, label, np.random.default_rng(7))
    assert torch.equal(plain[1], jittered[1])  # same scale, crop and flip: the labels agree
    assert not torch.equal(plain[0], jittered[0])
    assert np.array_equal(jitter_colors(image, np.random.default_rng(1), 0.0), image)
    with pytest.raises(ValueError, match="color_jitter"):
        TrainTransform((32, 32), 64, color_jitter=1.5)
