"""Every recipe run at the hour's length on both sequence-held-out folds, in one table and one plot.

    python benchmarks/heldout_levers.py            # prints the markdown table, writes the two plots
    python benchmarks/heldout_levers.py -o /tmp/levers.png --length-out /tmp/length.png

The figures come from each run's ``summary.json`` (its final weights, scale 2/3 with flip, as the recipes
evaluate) in ``benchmarks/results/camvid_heldout/``; this file only says which folder is which recipe on
which street, and which length of the shipped recipe is whose hour (the second plot: where the hour goes on
other CPUs, issue [5 of 5] item 4). A recipe not run on a fold shows a dash and gets no mean: the daylight
street alone is not the two-fold figure the gates were written for. The CPU flags of the runs are printed
under the table.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/camvid_heldout"
FOLDS = ("0006R0", "0001TP")
FOLD_NAMES = {"0006R0": "held-out-0006R0 (daylight)", "0001TP": "held-out-0001TP (dusk)"}


@dataclass(frozen=True)
class Recipe:
    label: str
    runs: dict[str, str]  # fold -> folder under the results directory


#: the shipped recipe's runs, named because the length plot draws them too
SHIPPED_AT_THE_HOUR = Recipe(
    "+ photometric + BDD100K x4 (`camvid-cpu60min-photometric-bdd100k`'s)",
    {"0006R0": "heldout60_bdd_photometric_iters3121_amd", "0001TP": "heldout60_bdd_dusk_photometric_iters3121_amd"},
)
SHIPPED_AT_AN_AVX2_HOUR = Recipe(
    "+ photometric + BDD100K x4, fp32 (an AVX2-only CPU's hour, as estimated capped)",
    {
        "0006R0": "heldout60_bdd_photometric_iters1960_fp32_amd",
        "0001TP": "heldout60_bdd_dusk_photometric_iters1960_fp32_amd",
    },
)
SHIPPED_ON_AN_AVX2_CPU = Recipe(
    "+ photometric + BDD100K x4 on an AVX2-only CPU (its own hour, fp32)",
    {
        "0006R0": "heldout60_bdd_photometric_iters1512_fp32_avx2",
        "0001TP": "heldout60_bdd_dusk_photometric_iters1563_fp32_avx2",
    },
)
SHIPPED_SECOND_SEED = Recipe(
    "+ photometric + BDD100K x4, train.seed=305", {"0001TP": "heldout60_bdd_dusk_photometric_iters3121_seed305_amd"}
)
SHIPPED_AT_TWICE_THE_HOUR = Recipe(
    "+ photometric + BDD100K x4, twice the hour", {"0006R0": "heldout60_bdd_photometric_iters6242_amd"}
)

#: in the order they were run; folders of runs that were not made for a fold are simply absent
RECIPES = (
    Recipe(
        "recipe (`camvid-cpu60min`'s)",
        {"0006R0": "heldout60_shipped_recipe_iters3121_amd", "0001TP": "heldout60_dusk_recipe_iters3121_amd"},
    ),
    Recipe("recipe, train.seed=305", {"0006R0": "heldout60_shipped_recipe_iters3121_seed305_amd"}),
    Recipe("recipe + boundary term", {"0006R0": "heldout60_boundary_iters3121_amd"}),
    Recipe(
        "+ photometric (`camvid-cpu60min-photometric`'s)",
        {"0006R0": "heldout60_photometric_amd", "0001TP": "heldout60_dusk_photometric_iters3121_amd"},
    ),
    Recipe(
        "+ photometric, scales 0.25-2.25",
        {
            "0006R0": "heldout60_wide_photometric_iters3121_amd",
            "0001TP": "heldout60_wide_dusk_photometric_iters3121_amd",
        },
    ),
    SHIPPED_AT_THE_HOUR,
    Recipe(
        "+ photometric + BDD100K x8",
        {
            "0006R0": "heldout60_bdd8_photometric_iters3121_amd",
            "0001TP": "heldout60_bdd8_dusk_photometric_iters3121_amd",
        },
    ),
    SHIPPED_AT_AN_AVX2_HOUR,
    Recipe(
        "+ photometric + BDD100K x4 + weight EMA 0.998",
        {"0006R0": "heldout60_bdd_ema998_iters3121_amd", "0001TP": "heldout60_bdd_dusk_ema998_iters3121_amd"},
    ),
    Recipe(
        "+ photometric at half strength + BDD100K x4",
        {
            "0006R0": "heldout60_bdd_mild_photometric_iters3121_amd",
            "0001TP": "heldout60_bdd_dusk_mild_photometric_iters3121_amd",
        },
    ),
    Recipe(
        "+ photometric + BDD100K x2",
        {
            "0006R0": "heldout60_bdd2_photometric_iters3121_amd",
            "0001TP": "heldout60_bdd2_dusk_photometric_iters3121_amd",
        },
    ),
    Recipe("+ photometric at 1.5x strength + BDD100K x4", {"0006R0": "heldout60_bdd_strong_photometric_iters3121_amd"}),
    SHIPPED_SECOND_SEED,
    SHIPPED_AT_TWICE_THE_HOUR,
    Recipe(
        "+ photometric + BDD100K x4, 240x320 crops "
        "(the AMD EPYC's hour at that crop; dusk in fp32 on an AVX2-only CPU)",
        {
            "0006R0": "heldout60_bdd_crop240x320_photometric_iters2187_amd",
            "0001TP": "heldout60_bdd_dusk_crop240x320_photometric_iters2187_fp32_avx2",
        },
    ),
    SHIPPED_ON_AN_AVX2_CPU,
)

#: the shipped recipe (photometric + BDD100K x4) at the lengths measured, each named by whose hour it is: the
#: length plot's points (iterations read from each run), and its other seeds drawn apart as open markers
LENGTHS = (
    Recipe("an AVX2-only CPU's hour, run there (fp32)", SHIPPED_ON_AN_AVX2_CPU.runs),
    Recipe("an AVX2-only CPU's hour as estimated capped (fp32)", SHIPPED_AT_AN_AVX2_HOUR.runs),
    Recipe("the AMD EPYC's hour (bf16)", SHIPPED_AT_THE_HOUR.runs),
    Recipe("two of the AMD EPYC's hours (bf16)", SHIPPED_AT_TWICE_THE_HOUR.runs),
)
LENGTH_OTHER_SEEDS = (SHIPPED_SECOND_SEED,)


@dataclass(frozen=True)
class Score:
    miou: float  # % , final weights, the run's own evaluation (scale 2/3 with flip)
    iterations: int
    cpu_flags: str


def read_score(folder: Path) -> Score | None:
    """A run's final score from its summary.json, or None when the run is not there."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        return Score(
            miou=100 * float(summary["final"]["miou"]),
            iterations=int(summary["iterations"]),
            cpu_flags=str((summary.get("hardware") or {}).get("cpu_flags", "unknown")),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a training run's summary (final.miou, iterations): {err!r}") from None


def collect(results: Path, recipes: tuple[Recipe, ...] = RECIPES) -> list[tuple[Recipe, dict[str, Score]]]:
    """Each recipe with the scores of the folds it was run on (recipes with none left out)."""
    rows = []
    for recipe in recipes:
        scores = {fold: s for fold, name in recipe.runs.items() if (s := read_score(results / name)) is not None}
        if scores:
            rows.append((recipe, scores))
    return rows


def two_fold_mean(scores: dict[str, Score]) -> float | None:
    """The mean of the two folds' unrounded figures, as the README gives it (it can differ by 0.01 from the
    mean of the two rounded cells)."""
    if not all(f in scores for f in FOLDS):
        return None
    return sum(scores[f].miou for f in FOLDS) / len(FOLDS)


def markdown(rows: list[tuple[Recipe, dict[str, Score]]]) -> str:
    def cell(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    lines = [
        f"| recipe | iterations | {FOLD_NAMES[FOLDS[0]]} | {FOLD_NAMES[FOLDS[1]]} | mean |",
        "|---|---|---|---|---|",
    ]
    for recipe, scores in rows:
        iterations = "/".join(sorted({f"{s.iterations:,}" for s in scores.values()}))
        folds = [cell(scores[f].miou if f in scores else None) for f in FOLDS]
        lines.append(f"| {recipe.label} | {iterations} | {' | '.join(folds)} | {cell(two_fold_mean(scores))} |")
    flags = sorted({s.cpu_flags for _, scores in rows for s in scores.values()})
    lines.append("")
    lines.append("CPU flags of the runs: " + "; ".join(flags))
    return "\n".join(lines)


def _save(fig: plt.Figure, out: Path) -> None:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot(rows: list[tuple[Recipe, dict[str, Score]]], out: Path) -> None:
    """Horizontal bars per recipe: one per fold and, where both were run, their mean (grey)."""
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(rows) + 1.8))
    height = 0.27
    series = [*((fold, FOLD_NAMES[fold]) for fold in FOLDS), ("mean", "two-fold mean")]
    colours = {"0006R0": "#e8a33d", "0001TP": "#3d5a98", "mean": "#9a9a9a"}
    labelled: set[str] = set()
    for i, (_, scores) in enumerate(rows):
        y = len(rows) - 1 - i
        values = {fold: score.miou for fold, score in scores.items()}
        if (mean := two_fold_mean(scores)) is not None:
            values["mean"] = mean
        for k, (key, name) in enumerate(series):
            if key not in values:
                continue
            offset = (1 - k) * height
            ax.barh(y + offset, values[key], height, color=colours[key], label=None if key in labelled else name)
            ax.text(values[key] + 0.4, y + offset, f"{values[key]:.1f}", va="center", fontsize=7)
            labelled.add(key)
    # wrapped: one long label would otherwise squeeze the axes and push the title and legend off the page
    labels = [textwrap.fill(recipe.label.replace("`", ""), 52, break_on_hyphens=False) for recipe, _ in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("mIoU (%) on a street the run never saw (final weights, scale 2/3 + flip)", fontsize=9)
    ax.set_xlim(0, max(s.miou for _, sc in rows for s in sc.values()) + 6)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8, frameon=False)
    ax.set_title("CamVid sequence-held-out folds, recipes at the hour's length", fontsize=10)
    _save(fig, out)


def plot_length(
    lengths: list[tuple[Recipe, dict[str, Score]]], other_seeds: list[tuple[Recipe, dict[str, Score]]], out: Path
) -> None:
    """Held-out mIoU of one recipe against its iterations, a line per fold, each length named by whose hour it
    is; other seeds as open markers, so the eye can set a step between lengths against one seed's spread."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"0006R0": "#e8a33d", "0001TP": "#3d5a98"}
    text_offset = {"0006R0": (6, -12), "0001TP": (6, 5)}  # dusk above its points, daylight below: no overlap
    for fold in FOLDS:
        points = sorted((s[fold].iterations, s[fold].miou) for _, s in lengths if fold in s)
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o-", color=colours[fold], label=FOLD_NAMES[fold])
        for x, y in points:
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=text_offset[fold], fontsize=8)
        seeds = [(s[fold].iterations, s[fold].miou) for _, s in other_seeds if fold in s]
        for k, (x, y) in enumerate(seeds):
            label = f"{FOLD_NAMES[fold]}, another seed" if k == 0 else None
            ax.plot([x], [y], "o", mfc="none", color=colours[fold], label=label)
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=text_offset[fold], fontsize=8)
    ticks: dict[int, str] = {}
    for recipe, scores in lengths:  # one tick per length, at its shortest run (an hour's plan varies by fold)
        counts = sorted({s.iterations for s in scores.values()})
        ticks.setdefault(counts[0], "/".join(f"{n:,}" for n in counts) + "\n" + textwrap.fill(recipe.label, 16))
    ax.set_xscale("log")  # lengths an hour gives differ by ratios (CPU kinds), and are read as such
    ax.set_xticks(list(ticks), list(ticks.values()), fontsize=7)
    ax.minorticks_off()
    ax.set_xlim(min(ticks) * 0.85, max(ticks) * 1.15)
    ax.margins(y=0.15)
    ax.set_xlabel("training iterations (batch 8), log scale", fontsize=9)
    ax.set_ylabel("mIoU (%) on a street the run never saw", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.34), ncol=3, fontsize=8, frameon=False)
    ax.set_title("The shipped recipe (photometric + BDD100K x4) at the lengths an hour gives", fontsize=10)
    _save(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder holding the runs' folders")
    parser.add_argument("-o", "--out", type=Path, default=RESULTS / "levers_at_the_hour.png", help="the plot (PNG)")
    parser.add_argument(
        "--length-out", type=Path, default=RESULTS / "length_at_the_hour.png", help="the length plot (PNG)"
    )
    args = parser.parse_args(argv)
    rows = collect(args.results)
    if not rows:
        parser.error(f"{args.results}: no run's summary.json found for any recipe")
    print(markdown(rows))
    plot(rows, args.out)
    print(f"plot: {args.out}")
    if lengths := collect(args.results, LENGTHS):
        plot_length(lengths, collect(args.results, LENGTH_OTHER_SEEDS), args.length_out)
        print(f"length plot: {args.length_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
