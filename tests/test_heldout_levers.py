"""benchmarks/heldout_levers.py: the one table and plot of every recipe on the sequence-held-out folds, read
from the runs' summary files (runs made up here, with scores chosen so the arithmetic is checkable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "heldout_levers.py"


@pytest.fixture(scope="module")
def levers():
    return load_script(SCRIPT)


def _run(folder: Path, miou: float, iterations: int = 3121, flags: str = "avx2 fma") -> None:
    folder.mkdir(parents=True)
    summary = {"iterations": iterations, "final": {"miou": miou}, "hardware": {"cpu_flags": flags}}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_table_means_only_recipes_run_on_both_folds(levers, tmp_path: Path) -> None:
    _run(tmp_path / "a_day", 0.3778)
    _run(tmp_path / "a_dusk", 0.3916)
    _run(tmp_path / "b_day", 0.40, iterations=1960, flags="avx2 fma avx512f")
    recipes = (
        levers.Recipe("both", {"0006R0": "a_day", "0001TP": "a_dusk"}),
        levers.Recipe("daylight only", {"0006R0": "b_day", "0001TP": "missing"}),
        levers.Recipe("never run", {"0006R0": "nothing"}),
    )
    rows = levers.collect(tmp_path, recipes)
    assert [recipe.label for recipe, _ in rows] == ["both", "daylight only"]
    table = levers.markdown(rows).splitlines()
    assert table[2] == "| both | 3,121 | 37.78 | 39.16 | 38.47 |"
    assert table[3] == "| daylight only | 1,960 | 40.00 | - | - |"
    assert table[-1] == "CPU flags of the runs: avx2 fma; avx2 fma avx512f"


def test_main_writes_the_plot_and_refuses_a_folder_without_runs(levers, tmp_path: Path, capsys) -> None:
    name_day, name_dusk = levers.RECIPES[0].runs["0006R0"], levers.RECIPES[0].runs["0001TP"]
    _run(tmp_path / "results" / name_day, 0.38)
    _run(tmp_path / "results" / name_dusk, 0.14)
    out = tmp_path / "plots" / "levers.png"
    assert levers.main(["--results", str(tmp_path / "results"), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 38.00 | 14.00 | 26.00 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        levers.main(["--results", str(tmp_path / "empty"), "-o", str(tmp_path / "x.png")])
    assert "no run's summary.json found" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_every_recipe_names_runs_the_repository_ships(levers) -> None:
    """The table in benchmarks/README.md is made from these folders: each must be in the results."""
    named = (*levers.RECIPES, *levers.LENGTHS, *levers.LENGTH_OTHER_SEEDS)
    missing = [name for recipe in named for name in recipe.runs.values() if not (levers.RESULTS / name).is_dir()]
    assert not missing, f"named in heldout_levers.py but not in benchmarks/results/camvid_heldout: {missing}"


def test_the_length_plot_is_drawn_from_the_lengths_runs_only(levers, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    both = next(recipe for recipe in levers.LENGTHS if set(recipe.runs) == set(levers.FOLDS))
    day, dusk = both.runs["0006R0"], both.runs["0001TP"]
    _run(results / day, 0.379, iterations=1960)
    _run(results / dusk, 0.418, iterations=1960)
    _run(results / levers.RECIPES[0].runs["0006R0"], 0.38)
    length_png = tmp_path / "length.png"
    assert levers.main(["--results", str(results), "-o", str(tmp_path / "a.png"), "--length-out", str(length_png)]) == 0
    assert length_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"length plot: {length_png}" in capsys.readouterr().out
    lengths = levers.collect(results, levers.LENGTHS)
    assert [(recipe.label, sorted(s)) for recipe, s in lengths] == [(both.label, ["0001TP", "0006R0"])]
    # no run of any length: the table and its plot are still made, the length plot is not
    (results / day / "summary.json").unlink()
    (results / dusk / "summary.json").unlink()
    other = tmp_path / "other.png"
    assert levers.main(["--results", str(results), "-o", str(tmp_path / "b.png"), "--length-out", str(other)]) == 0
    assert not other.exists() and "length plot" not in capsys.readouterr().out


def test_a_summary_without_a_score_is_one_line_naming_the_file(levers, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"iterations": 10}')
    with pytest.raises(SystemExit, match=r"run/summary.json: not a training run's summary"):
        levers.read_score(tmp_path / "run")


def test_the_readme_table_is_the_scripts(levers) -> None:
    """benchmarks/README.md shows the table this script prints from the shipped runs: a new run or recipe
    means printing it again."""
    readme = (REPO / "benchmarks" / "README.md").read_text()
    assert levers.markdown(levers.collect(levers.RESULTS)) in readme
