"""``dsnet list``, ``info`` and ``weights``: what the package offers (parse, call, print)."""

from __future__ import annotations

import argparse
import json

from ..analysis import profile
from ..analysis.ablation_table import ablation_rows, format_ablation_table
from ..errors import WeightsNotFoundError
from ..models import create_model, get_model_info, get_weights, list_models, list_weights
from . import flags

__all__ = ["add_model_commands"]


def _fmt_results(name: str) -> str:
    info = get_model_info(name)
    parts = []
    for r in info.results:
        fps = f" @{r.fps:g} FPS ({r.gpu})" if r.fps else ""
        parts.append(f"{r.dataset} {r.miou:g}%{fps}")
    return "; ".join(dict.fromkeys(parts))


def _list_ablations(args: argparse.Namespace) -> int:
    size = tuple(args.size)
    rows = ablation_rows(size=size, num_classes=args.num_classes)
    print(format_ablation_table(rows, size, markdown=args.markdown))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.ablations:
        return _list_ablations(args)
    size = tuple(args.size)
    header = f"{'model':<15} {'params':>12} {'paper GFLOPs':>13} {'GMACs':>9}  paper results (val mIoU)"
    print(f"DSNet variants, {args.num_classes} classes, input {size[0]}x{size[1]} (params without aux heads)")
    print(header)
    print("-" * len(header))
    for name in list_models():
        p = profile(create_model(name, num_classes=args.num_classes), size)
        print(f"{name:<15} {p['params']:>12,} {p['paper_gflops']:>13.2f} {p['macs'] / 1e9:>9.2f}  {_fmt_results(name)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = get_model_info(args.model)
    args.num_classes = args.num_classes or info.default_num_classes
    model = create_model(args.model, num_classes=args.num_classes)
    p = profile(model, tuple(args.size or info.default_size), by_module=True)
    if args.json:
        print(json.dumps({"model": info.name, "num_classes": args.num_classes, **p}, indent=1))
        return 0
    h, w = p["size"]
    print(f"{info.name}: {info.description}")
    print(f"  input                {h}x{w}, {args.num_classes} classes (H, W multiples of {info.input_multiple})")
    print(f"  params (inference)   {p['params']:,}")
    print(f"  params (with aux)    {p['params_with_aux']:,}")
    print(f"  conv MACs            {p['macs'] / 1e9:.2f} G  ({p['gflops']:.2f} GFLOPs, decimal)")
    print(f"  paper GFLOPs         {p['paper_gflops']:.2f}  (thop MACs / 2^30, the paper's convention)")
    if info.paper_params_m is not None:
        print(f"  paper params         {info.paper_params_m} M")
    if info.paper_gflops is not None and info.paper_gflops_size:
        ph, pw = info.paper_gflops_size
        print(f"  paper GFLOPs (table) {info.paper_gflops} at {ph}x{pw}")
    for r in info.results:
        fps = f", {r.fps} FPS on {r.gpu}" if r.fps else ""
        print(f"  paper result         {r.dataset}: {r.miou}% mIoU at {r.resolution[0]}x{r.resolution[1]}{fps}")
    print(f"  normalisation        mean {info.mean}, std {info.std} (RGB, 0-1)")
    total = sum(p["macs_by_module"].values()) or 1
    share = sorted(p["macs_by_module"].items(), key=lambda kv: -kv[1])
    print("  conv MACs by module  " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in share if v))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    names = list_weights(args.model)
    if not names:
        print(f"no shipped weights{' for ' + args.model if args.model else ''}")
        return 0
    for name in names:
        weights = get_weights(name)
        try:
            print(weights.summary())
        except WeightsNotFoundError as e:
            print(f"{name}: {weights.model} ({e})")
        print(f"  {weights.path}")
    return 0


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``list``, ``info`` and ``weights`` on the ``dsnet`` sub-command parser."""
    p = sub.add_parser("list", help="table of the model variants")
    flags.add_size(p, default=(1024, 2048))
    flags.add_num_classes(p, default=19)
    p.add_argument("--ablations", action="store_true", help="the paper's ablation variants instead")
    p.add_argument("--markdown", action="store_true", help="with --ablations: a Markdown table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="parameters and compute of one variant")
    flags.add_model(p, list_models(task=None))
    flags.add_size(p, help="default 1024 2048, 224 224")
    flags.add_num_classes(p, help="default 19 (ImageNet classifiers 1000)")
    flags.add_json(p, help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("weights", help="the weights shipped with the package (names for --weights)")
    p.add_argument("--model", default=None, help="only the weights of this model variant")
    p.set_defaults(func=cmd_weights)
