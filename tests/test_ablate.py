"""``dsnet ablate`` end to end on a tiny synthetic CamVid: two variants, a few iterations, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsnet.engine.ablate as ablate_module
import dsnet.engine.trainer as trainer_module
from dsnet.analysis import profile
from dsnet.cli import main
from dsnet.engine import TrainingInterrupted, load_config
from dsnet.engine.ablate import run_ablation
from dsnet.errors import ConfigError
from dsnet.models import create_model

from .helpers import StopAt, write_tiny_config

VARIANTS = ["dsnet_head64", "dsnet_head128_fusion-add"]


def _iterations(work: Path) -> list[int]:
    lines = (work / "metrics.jsonl").read_text().splitlines()
    return [json.loads(ln)["iter"] for ln in lines if json.loads(ln)["kind"] == "train"]


@pytest.mark.slow
def test_ablate_trains_resumes_and_compares(
    synthetic_camvid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=4, val_interval=4)
    work = tmp_path / "ablate"
    cfg = load_config(config)

    # a shard trains its share only and writes no table
    done = run_ablation(cfg, VARIANTS, work, shard=(1, 2), device="cpu")
    assert done["trained"] == ["dsnet_head128_fusion-add"]
    assert (work / "dsnet_head128_fusion-add" / "summary.json").is_file()
    assert not (work / "dsnet_head64").exists() and not (work / "ablation.md").exists()
    finished_weights = (work / "dsnet_head128_fusion-add" / "final.safetensors").stat().st_mtime_ns

    # the first variant is stopped at iteration 3 ...
    monkeypatch.setattr(trainer_module, "Trainer", StopAt)
    with pytest.raises(TrainingInterrupted):
        run_ablation(cfg, VARIANTS, work, device="cpu")
    monkeypatch.undo()
    assert (work / "dsnet_head64" / "last.pth").is_file()
    assert not (work / "dsnet_head64" / "summary.json").exists()

    # ... and the same command (from the CLI) resumes it, keeps the finished one and compares both
    code = main(
        ["ablate", str(config), "--variants", ",".join(VARIANTS), "--work-dir", str(work), "--device", "cpu"]
        + ["--fps-seconds", "0.05"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "dsnet_head128_fusion-add" in out and "ablation.md" in out
    assert _iterations(work / "dsnet_head64") == [1, 2, 3, 4]  # resumed at 3, no iteration twice
    assert (work / "dsnet_head128_fusion-add" / "final.safetensors").stat().st_mtime_ns == finished_weights

    result = json.loads((work / "ablation.json").read_text())
    assert result["size"] == [72, 96]  # the validation images (72x96) are the eval size
    assert [r["variant"] for r in result["rows"]] == VARIANTS
    for row in result["rows"]:
        summary = json.loads((work / row["variant"] / "summary.json").read_text())
        assert row["miou"] == summary["final"]["miou"] and row["iterations"] == 4
        cost = profile(create_model(row["variant"], num_classes=11, aux_heads=False), (72, 96))
        assert row["params"] == cost["params"] and row["paper_gflops"] == cost["paper_gflops"]
        assert row["fps"] > 0 and row["timed_calls"] >= 1  # --fps-seconds bounds the calls, at least one
    md = (work / "ablation.md").read_text()
    assert "| `dsnet_head128_fusion-add` | fusion = add |" in md
    assert (work / "ablation.png").stat().st_size > 0

    # another budget in the same work dir is refused: the table would mix budgets
    other = load_config(config, ["train.iters=6"])
    with pytest.raises(ConfigError, match="differs in train.iters"):
        run_ablation(other, VARIANTS, work, device="cpu")


def test_a_rerun_with_fewer_variants_keeps_every_finished_row(
    synthetic_camvid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=4, val_interval=4))
    work = tmp_path / "ablate"

    def finish(sub, overwrite, device):  # type: ignore[no-untyped-def]  # a finished run, without the training
        run = Path(sub.train.work_dir)
        run.mkdir(parents=True, exist_ok=True)
        miou = 0.25 if sub.model.name == VARIANTS[0] else 0.5
        summary = {"iterations": 4, "best_miou": miou, "best_iteration": 4, "final": {"miou": miou}}
        (run / "summary.json").write_text(json.dumps(summary))

    monkeypatch.setattr(ablate_module, "_train_variant", finish)
    run_ablation(cfg, VARIANTS, work, device="cpu", fps_size=(32, 32), fps_seconds=0.01)
    (work / "dsnet_head128").mkdir()  # a variant stopped before it finished: no row
    (work / "dsnet_head128" / "last.pth").write_bytes(b"")
    result = run_ablation(cfg, VARIANTS[1:], work, device="cpu", fps_size=(32, 32), fps_seconds=0.01)
    assert [r["variant"] for r in result["rows"]] == [VARIANTS[1], VARIANTS[0]]
    assert [r["miou"] for r in result["rows"]] == [0.5, 0.25]
    md = (work / "ablation.md").read_text()
    assert all(f"| `{v}` |" in md for v in VARIANTS) and "`dsnet_head128`" not in md


def test_ablate_rejects_bad_variant_lists(synthetic_camvid: Path, tmp_path: Path) -> None:
    cfg = load_config(write_tiny_config(tmp_path / "tiny.yaml", synthetic_camvid, iters=1, val_interval=1))
    with pytest.raises(ConfigError, match="unknown model 'dsnet_head128_fusion-sum'"):
        run_ablation(cfg, ["dsnet_head128", "dsnet_head128_fusion-sum"], tmp_path / "w")
    with pytest.raises(ConfigError, match="given twice"):
        run_ablation(cfg, ["dsnet_head128", "dsnet_head128"], tmp_path / "w")
    assert not (tmp_path / "w").exists()  # nothing written before the list is checked


@pytest.mark.slow
def test_list_ablations_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--ablations", "--markdown", "--size", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| model | paper table | change | params |")
    assert out.count("| `dsnet_head128") == 14
