"""How demo/camvid-mini was made (kept for provenance; the demo itself never needs ../shared).

Every 10th image of SegNet's CamVid train list and every 8th of its val list, halved to 240x320
(images: area interpolation, JPEG quality 90; labels: nearest neighbour, PNG).

    python demo/make_camvid_mini.py ../shared/data/camvid demo/camvid-mini
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

STEPS = {"train": 10, "val": 8}


def main(source: Path, target: Path) -> None:
    for split, step in STEPS.items():
        lines = (source / f"{split}.txt").read_text().split("\n")
        pairs = [line.split() for line in lines if line.strip()][::step]
        listed = []
        for image_rel, label_rel in pairs:
            stem = Path(image_rel).stem
            image = cv2.imread(str(source / image_rel), cv2.IMREAD_COLOR)
            label = cv2.imread(str(source / label_rel), cv2.IMREAD_UNCHANGED)
            h, w = label.shape[0] // 2, label.shape[1] // 2
            image_out = target / "images" / split / f"{stem}.jpg"
            label_out = target / "labels" / split / f"{stem}.png"
            image_out.parent.mkdir(parents=True, exist_ok=True)
            label_out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(image_out), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 90])
            cv2.imwrite(str(label_out), cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST))
            listed.append(f"images/{split}/{stem}.jpg labels/{split}/{stem}.png")
        (target / f"{split}.txt").write_text("\n".join(listed) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
