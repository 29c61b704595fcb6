"""Turn a finished run into the weights shipped with the package (fp16 safetensors under 15 MB).

    python benchmarks/ship_weights.py runs/cpu60min-trainval --val-run runs/cpu60min-train \\
        --recipe configs/dsnet-head64_1xb8-cpu60min_camvid-192x256.yaml \\
        -o src/dsnet/models/weights/dsnet_head64_camvid-cpu60min.safetensors
    python benchmarks/ship_weights.py runs/trainval60/photometric --heldout-run runs/heldout60/photometric \\
        --heldout-run runs/heldout60/dusk_photometric \\
        --recipe configs/dsnet-head64_1xb8-cpu60min-photometric_camvid-192x256.yaml \\
        -o src/dsnet/models/weights/dsnet_head64_camvid-cpu60min-photometric.safetensors

The file keeps the run's metadata (model, label space, amp, config name) and adds what a user of the
weights needs: ``metrics`` (JSON: with ``--val-run`` the val mIoU of the same recipe trained on train alone,
``val_miou*``, and with ``--heldout-run`` the mIoU on a CamVid sequence the same recipe never saw,
``heldout_miou*``, or with the option given once per sequence ``heldout_<SEQ>_miou*`` and their mean
``heldout_mean_miou*``; with and without flip; at least one of the two),
``recipe`` (the config file), ``trained_on`` (with any ``data.extra_train`` part), ``wall_minutes`` and
``cpu_flags`` of the run, ``data_licence`` (CamVid's and every extra dataset's), and ``input_long_side``
(the long side of the training images, ``data.base_size``, to which the Predictor scales images by default).
Float tensors are stored in fp16; loading casts them back to the model's dtype. A dataset whose licence text
must go with every copy (BDD100K) has that text copied beside the output when it is not there already.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

import dsnet
from dsnet.constants import INPUT_LONG_SIDE_KEY
from dsnet.hardware import cpu_flags
from dsnet.inference import InferenceOptions
from dsnet.models import save_weights
from dsnet.models.pretrained import WEIGHTS_DIR

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGES = sorted((REPO / "demo/camvid-mini/images/val").glob("*.jpg"))

DATA_LICENCE = (
    "CamVid (Brostow et al. 2009), SegNet's 11-class release: CC BY-NC 4.0, research and personal use only; "
    "these weights are derived from it and inherit that restriction"
)
#: the licence of each dataset a recipe may add to CamVid (``data.extra_train``); weights inherit every one
EXTRA_DATA_LICENCES = {
    "bdd100k": "BDD100K (Yu et al. 2020), Copyright 2018 The Regents of the University of California (Regents), "
    "All Rights Reserved: educational, research and not-for-profit use only; these weights are derived from it "
    "too; its licence, which must go with every copy, is shipped beside them as BDD100K_DATA_LICENSE.rst",
}


def _extra_datasets(config: dict) -> list[str]:
    """The names of the datasets a recipe adds to CamVid (``data.extra_train``), each once, sorted."""
    return sorted({str(extra["dataset"]) for extra in config["data"].get("extra_train") or []})


def _data_licence(config: dict) -> str:
    """CamVid's licence plus that of every extra training dataset (one the script does not know stops it)."""
    extras = _extra_datasets(config)
    unknown = [name for name in extras if name not in EXTRA_DATA_LICENCES]
    if unknown:
        raise SystemExit(f"data.extra_train: no licence recorded for {', '.join(unknown)} (EXTRA_DATA_LICENCES)")
    return "; ".join([DATA_LICENCE, *(EXTRA_DATA_LICENCES[name] for name in extras)])


#: the licence texts that must go with every copy of weights derived from a dataset (in the package's weights/)
EXTRA_DATA_LICENCE_FILES = {"bdd100k": "BDD100K_DATA_LICENSE.rst"}


def _copy_licence_texts(config: dict, out_dir: Path) -> list[Path]:
    """Put the licence text of every extra training dataset that needs one beside the written weights (the
    package copy is the source; a file already there with the same text is left alone)."""
    copied = []
    for name in (n for n in _extra_datasets(config) if n in EXTRA_DATA_LICENCE_FILES):
        source, dest = WEIGHTS_DIR / EXTRA_DATA_LICENCE_FILES[name], out_dir / EXTRA_DATA_LICENCE_FILES[name]
        if not dest.exists() or dest.read_bytes() != source.read_bytes():
            shutil.copyfile(source, dest)
            copied.append(dest)
    return copied


def _trained_on(config: dict) -> str:
    """The training split, and each extra dataset's split with its repeat (``trainval + bdd100k:train x4``)."""
    parts = [str(config["data"]["train_split"])]
    for extra in config["data"].get("extra_train") or []:
        parts.append(f"{extra['dataset']}:{extra.get('split') or 'default'} x{extra.get('repeat', 1)}")
    return " + ".join(parts)


def _wall_minutes(work: Path) -> float:
    stamps = [line[:19] for line in (work / "train.log").read_text().splitlines() if line[:4].isdigit()]
    return (datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])).total_seconds() / 60


def _val_metrics(val_run: Path, prefix: str = "val") -> dict[str, float]:
    """``<prefix>_miou`` with and without flip: the run's own final validation is at its config's ``eval.flip``,
    the other one comes from ``eval_flip.json`` or ``eval_noflip.json`` (``dsnet eval ... -o``)."""
    summary = json.loads((val_run / "summary.json").read_text())
    flipped = bool(yaml.safe_load((val_run / "config.yaml").read_text())["eval"]["flip"])
    own, other, other_file = (f"{prefix}_miou_flip", f"{prefix}_miou", "eval_noflip.json")
    if not flipped:
        own, other, other_file = (f"{prefix}_miou", f"{prefix}_miou_flip", "eval_flip.json")
    metrics = {own: round(100 * summary["final"]["miou"], 2)}
    if (val_run / other_file).is_file():
        metrics[other] = round(100 * json.loads((val_run / other_file).read_text())["miou"], 2)
    return dict(sorted(metrics.items()))


def _heldout_metrics(runs: list[Path]) -> tuple[dict[str, float], list[str]]:
    """The held-out scores of one run (``heldout_miou*``) or of one run per sequence (``heldout_<SEQ>_miou*``
    and the mean over the sequences, ``heldout_mean_miou*``), with the splits they were scored on."""
    splits = [str(yaml.safe_load((run / "config.yaml").read_text())["data"]["val_split"]) for run in runs]
    if len(set(splits)) != len(splits):
        raise SystemExit(f"--heldout-run: two runs scored on the same split ({', '.join(splits)})")
    if len(runs) == 1:
        return _val_metrics(runs[0], "heldout"), splits
    sequences = [split.removeprefix("held-out-") for split in splits]
    metrics: dict[str, float] = {}
    for run, sequence in zip(runs, sequences):
        metrics |= _val_metrics(run, f"heldout_{sequence}")
    for suffix in ("_miou", "_miou_flip"):
        values = [metrics.get(f"heldout_{sequence}{suffix}") for sequence in sequences]
        if all(v is not None for v in values):
            metrics[f"heldout_mean{suffix}"] = round(sum(values) / len(values), 2)
    return dict(sorted(metrics.items())), splits


def _fp16_parity(model_name: str, source: Path, shipped: Path) -> str:
    """The shipped fp16 file against the fp32 run on the demo images: logits error relative to their
    scale and the share of pixels whose class is kept (storage in fp16 must not change the model)."""
    same = InferenceOptions()  # both at the images' own size: only the stored numbers differ
    ref = dsnet.Predictor(model_name, weights=str(source), device="cpu", deploy_form=False, options=same)
    new = dsnet.Predictor(model_name, weights=str(shipped), device="cpu", deploy_form=False, options=same)
    worst, kept, pixels = 0.0, 0, 0
    for image in DEMO_IMAGES:
        a = torch.from_numpy(ref.predict(str(image), return_probs=True).probs)
        b = torch.from_numpy(new.predict(str(image), return_probs=True).probs)
        worst = max(worst, float((a - b).abs().max() / a.abs().max()))
        kept += int((a.argmax(0) == b.argmax(0)).sum())
        pixels += a[0].numel()
    shown = f"max |dp|/max p {worst:.2e}, labels kept {kept / pixels:.4%}"
    return f"fp16 vs fp32 on {len(DEMO_IMAGES)} demo images: {shown}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="work dir of the run to ship (its final.safetensors)")
    p.add_argument("--val-run", type=Path, help="work dir of the same recipe trained on train alone")
    p.add_argument(
        "--heldout-run",
        type=Path,
        action="append",
        default=[],
        help="work dir of the same recipe trained without one sequence and scored on it (metrics heldout_miou*, "
        "and heldout_split naming the sequence); once per sequence for several (heldout_<SEQ>_miou*, their "
        "mean heldout_mean_miou*, heldout_split listing them)",
    )
    p.add_argument("--recipe", required=True, help="the config file of the recipe, as shipped under configs/")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    if args.val_run is None and not args.heldout_run:
        p.error("the weights need a score: give --val-run, --heldout-run or both")
    source = args.run / "final.safetensors"
    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata() or {})
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    metrics = _val_metrics(args.val_run) if args.val_run is not None else {}
    if args.heldout_run:
        heldout, splits = _heldout_metrics(args.heldout_run)
        metrics |= heldout
        meta["heldout_split"] = ",".join(splits)
    meta.update(
        metrics=json.dumps(metrics),
        recipe=args.recipe,
        trained_on=_trained_on(config),
        iterations=str(config["train"]["iters"]),
        wall_minutes=f"{_wall_minutes(args.run):.1f}",
        cpu_flags=meta.get("cpu_flags") or " ".join(cpu_flags()),  # the run's own, where it recorded them
        data_licence=_data_licence(config),
    )
    if config["data"].get("base_size"):  # the Predictor scales images to the long side the model was trained at
        meta[INPUT_LONG_SIDE_KEY] = str(int(config["data"]["base_size"]))
    save_weights(state, args.out, metadata=meta)
    for licence in _copy_licence_texts(config, args.out.parent):
        print(f"wrote {licence} (the licence text that goes with every copy of these weights)")
    size = args.out.stat().st_size / 1e6
    values = sum(v.numel() for v in state.values())
    print(f"wrote {args.out} ({size:.1f} MB, {values:,} values, torch {torch.__version__})")
    print(_fp16_parity(meta["model"], source, args.out))
    print(json.dumps(meta, indent=1)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
