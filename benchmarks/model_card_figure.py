"""The README's overlays of the shipped CamVid models, one JPEG of rows of four panels.

    python benchmarks/model_card_figure.py --val-run runs/cpu60min-train -o docs/images/camvid-cpu60min.jpg

image | CamVid's labels | the recipe trained on train alone (these val images unseen) | the shipped weights
(trained on train+val, so these images were seen); images: the demo's CamVid val images (demo/camvid-mini).

    python benchmarks/model_card_figure.py --data-root ../shared/data/camvid \\
        --heldout 0001TP runs/levers-heldout-0001TP/cw_sqrt runs/levers-heldout-0001TP/photometric \\
        --heldout 0006R0 runs/heldout60/shipped_recipe runs/heldout60/photometric -o docs/images/camvid-heldout.jpg

image | CamVid's labels | each run trained without the sequence SEQ (one or more, e.g. the recipe and the
recipe with photometric augmentation): frames of whole streets no run saw, spread over the sequence.
Images: CamVid, CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import dsnet
from dsnet.predict.writers import blend

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "demo/camvid-mini"
TITLES = ("image", "CamVid labels", "trained on train (unseen)", "camvid-cpu60min (seen)")
PANEL_WIDTH = 320  # held-out frames are 480x360: four of them side by side are scaled to this width


def _panel(rgb: np.ndarray, title: str) -> Image.Image:
    panel = Image.fromarray(rgb)
    draw = ImageDraw.Draw(panel)
    draw.rectangle((0, 0, 8 + 6 * len(title), 14), fill=(0, 0, 0))
    draw.text((4, 2), title, fill=(255, 255, 255))
    return panel


def _legend(draw: ImageDraw.ImageDraw, predictor: dsnet.Predictor, top: int, width: int) -> None:
    """One line of colour swatches with the class names (black: void, not scored)."""
    names = [*predictor.class_names, "void"]
    colors = [*predictor.palette, (0, 0, 0)]
    step = width // len(names)
    for i, (name, color) in enumerate(zip(names, colors)):
        x = i * step + 4
        draw.rectangle((x, top, x + 14, top + 14), fill=tuple(color), outline=(0, 0, 0))
        draw.text((x + 18, top + 2), name, fill=(0, 0, 0))


def _spread(items: list, count: int) -> list:
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _demo_rows(val_run: Path, count: int, alpha: float) -> tuple[list[list[Image.Image]], dsnet.Predictor]:
    unseen = dsnet.Predictor("dsnet_head64", weights=str(val_run / "final.safetensors"), device="cpu")
    shipped = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu")
    lines = [line for line in (MINI / "val.txt").read_text().splitlines() if line.strip()]
    rows = []
    for line in _spread(lines, count):
        image_rel, label_rel = line.split()
        rgb = np.asarray(Image.open(MINI / image_rel).convert("RGB"))
        truth = np.asarray(Image.open(MINI / label_rel))
        panels = [
            rgb,
            blend(rgb, shipped.colorize(truth), alpha),
            blend(rgb, unseen.colorize(unseen(rgb)), alpha),
            blend(rgb, shipped.colorize(shipped(rgb)), alpha),
        ]
        rows.append([_panel(x, t) for x, t in zip(panels, TITLES)])
    return rows, shipped


def _heldout_rows(
    root: Path, heldout: list[list[str]], count: int, alpha: float
) -> tuple[list[list[Image.Image]], dsnet.Predictor]:
    """``count`` frames of each held-out sequence, predicted by each run trained without it."""
    lines = [line for name in ("train.txt", "val.txt") for line in (root / name).read_text().splitlines()]
    rows, predictor = [], None
    for sequence, *runs in heldout:
        models = [
            dsnet.Predictor("dsnet_head64", weights=str(Path(run) / "final.safetensors"), device="cpu") for run in runs
        ]
        predictor = models[0]
        titles = (f"image ({sequence})", "CamVid labels", *(f"{Path(run).name} (never saw {sequence})" for run in runs))
        frames = [line.split() for line in lines if Path(line.split()[0]).name.startswith(sequence)]
        for image_rel, label_rel in _spread(frames, count):
            rgb = np.asarray(Image.open(root / image_rel).convert("RGB"))
            truth = np.asarray(Image.open(root / label_rel))
            colours = (predictor.colorize(truth), *(m.colorize(m(rgb)) for m in models))
            panels = [rgb, *(blend(rgb, c, alpha) for c in colours)]
            height = round(rgb.shape[0] * PANEL_WIDTH / rgb.shape[1])
            small = [np.asarray(Image.fromarray(x).resize((PANEL_WIDTH, height), Image.BILINEAR)) for x in panels]
            rows.append([_panel(x, t) for x, t in zip(small, titles)])
    return rows, predictor


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val-run", type=Path, help="work dir of the recipe trained on train alone (the demo figure)")
    p.add_argument(
        "--heldout",
        nargs="+",
        action="append",
        metavar="SEQ RUN",
        help="a CamVid sequence and one or more runs trained without it (the held-out figure; repeatable)",
    )
    p.add_argument("--data-root", type=Path, help="CamVid with train.txt and val.txt (for --heldout)")
    p.add_argument("--images", type=int, default=3, help="how many images (rows; per sequence with --heldout)")
    p.add_argument("--alpha", type=float, default=0.6, help="opacity of the class colours")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    if (args.val_run is None) == (args.heldout is None):
        p.error("give --val-run (the demo figure) or --heldout (the held-out figure)")
    if args.heldout is not None and args.data_root is None:
        p.error("--heldout needs --data-root")
    for item in args.heldout or []:
        if len(item) < 2:
            p.error(f"--heldout {' '.join(item)}: give the sequence and at least one run")
    if args.heldout is not None:
        rows, predictor = _heldout_rows(args.data_root, args.heldout, args.images, args.alpha)
    else:
        rows, predictor = _demo_rows(args.val_run, args.images, args.alpha)
    h, w = rows[0][0].height, rows[0][0].width
    legend_h = 22
    columns = max(len(row) for row in rows)
    sheet = Image.new("RGB", (columns * (w + 2) - 2, len(rows) * (h + 2) + legend_h), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            sheet.paste(panel, (c * (w + 2), r * (h + 2)))
    _legend(ImageDraw.Draw(sheet), predictor, top=len(rows) * (h + 2) + 4, width=sheet.width)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
