"""The README's overlays of the shipped CamVid model: image | CamVid's labels | the recipe trained on train
alone (these val images unseen) | the shipped weights (trained on train+val, so these images were seen).

    python benchmarks/model_card_figure.py --val-run runs/cpu60min-train -o docs/images/camvid-cpu60min.jpg

Images: the demo's CamVid val images (demo/camvid-mini, CC BY-NC 4.0). One JPEG, rows of four panels.
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val-run", type=Path, required=True, help="work dir of the recipe trained on train alone")
    p.add_argument("--images", type=int, default=3, help="how many demo val images (rows)")
    p.add_argument("--alpha", type=float, default=0.6, help="opacity of the class colours")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    unseen = dsnet.Predictor("dsnet_head64", weights=str(args.val_run / "final.safetensors"), device="cpu")
    shipped = dsnet.Predictor("dsnet_head64", weights="camvid-cpu60min", device="cpu")
    lines = [line for line in (MINI / "val.txt").read_text().splitlines() if line.strip()]
    picks = [lines[i] for i in np.linspace(0, len(lines) - 1, args.images).round().astype(int)]
    rows = []
    for line in picks:
        image_rel, label_rel = line.split()
        rgb = np.asarray(Image.open(MINI / image_rel).convert("RGB"))
        truth = np.asarray(Image.open(MINI / label_rel))
        panels = [
            rgb,
            blend(rgb, shipped.colorize(truth), args.alpha),
            blend(rgb, unseen.colorize(unseen(rgb)), args.alpha),
            blend(rgb, shipped.colorize(shipped(rgb)), args.alpha),
        ]
        rows.append([_panel(x, t) for x, t in zip(panels, TITLES)])
    h, w = rows[0][0].height, rows[0][0].width
    legend_h = 22
    sheet = Image.new("RGB", (4 * w + 6, len(rows) * (h + 2) + legend_h), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            sheet.paste(panel, (c * (w + 2), r * (h + 2)))
    _legend(ImageDraw.Draw(sheet), shipped, top=len(rows) * (h + 2) + 4, width=sheet.width)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
