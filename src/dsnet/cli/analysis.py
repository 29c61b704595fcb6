"""The analysis commands of ``dsnet``: ``rf``, ``erf`` and ``atrous-padding`` (parse, call, print)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from ..analysis import TABLE1_SCHEDULES, RFRow, atrous_padding, receptive_fields, schedule_padding
from ..analysis.erf import effective_receptive_field, image_inputs, list_images, random_inputs
from ..analysis.plots import plot_erf, plot_erf_grid, plot_padding
from ..errors import ConfigError
from ..fileio import atomic_write, check_output_dir, check_output_files
from ..models import (
    checkpoint_num_classes,
    create_model,
    get_model_info,
    list_models,
    normalize_state_dict,
    read_checkpoint,
)
from . import flags

__all__ = ["add_analysis_commands"]


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _sizes(values: tuple, limit: int = 6) -> str:
    if not values:
        return "-"
    if len(values) <= limit:
        return ",".join(_num(v) for v in values)
    return f"{len(values)} sizes {_num(values[0])}..{_num(values[-1])}"


def _pair(h: float | None, w: float | None) -> str:
    if h is None:
        return "-"
    return _num(h) if h == w else f"{_num(h)}x{_num(w)}"


def _format_rf(rows: list[RFRow]) -> str:
    head = f"{'module':<30} {'type':<14} {'branch':<8} {'output':<16} {'jump':>5} {'RF':>6}  {'scales':<24} pooled RF"
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r.shape))
        pooled = _pair(r.pooled_rf, max(r.pooled_w, default=None))
        calls = f"  ({r.calls} calls, last shown)" if r.calls > 1 else ""
        lines.append(
            f"{r.name or '(model)':<30} {r.type[:14]:<14} {r.branch:<8} {shape:<16} {_pair(*r.jump):>5} "
            f"{_pair(r.rf, r.rf_w):>6}  {_sizes(r.scales):<24} {pooled}{calls}"
        )
    return "\n".join(lines)


def cmd_rf(args: argparse.Namespace) -> int:
    model = create_model(args.model, num_classes=args.num_classes)
    rows = receptive_fields(model, tuple(args.size), within=args.within)
    branches = sorted({r.branch for r in rows if r.branch})
    if args.branch is not None and args.branch not in branches:
        where = f"{args.model}'s {args.within}" if args.within else args.model
        raise ConfigError(f"--branch {args.branch!r}: no such branch in {where}; branches: {', '.join(branches)}")
    base = args.within.count(".") + 1 if args.within else 0
    shown = [
        r
        for r in rows
        if (r.name.count(".") + 1 if r.name else 0) - base <= args.depth
        and (not args.branch or r.branch == args.branch)
    ]
    if args.json:
        print(json.dumps([r.to_dict() for r in shown], indent=1))
        return 0
    origin = f"pixels of {args.within!r}'s input" if args.within else "input pixels"
    h, w = args.size
    print(f"{args.model}: theoretical receptive fields for a {h}x{w} input, in {origin}")
    print("RF: largest local path; scales: the RF sizes of all local paths; pooled RF: largest path through")
    print("adaptive pooling (MSAF regions/global, SPASPP image pooling). HxW where height and width differ.")
    print(_format_rf(shown))
    return 0


def _label(model: str, weights: str | None) -> str:
    return f"{model} ({'init' if weights is None else Path(weights).name})"


def _erf_runs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    weights = [None if w in ("-", "init", "none") else w for w in (args.weights or [])]
    if not weights:
        return [(m, None) for m in args.models]
    if len(args.models) == 1:
        return [(args.models[0], w) for w in weights]
    if len(weights) == len(args.models):
        return list(zip(args.models, weights))
    raise ConfigError(
        f"--weights: give one per model ({len(args.models)}), or several for one model; got {len(weights)} "
        "(use - for a model at its initialisation)"
    )


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def cmd_erf(args: argparse.Namespace) -> int:
    runs = _erf_runs(args)
    size = tuple(args.size)
    images = list_images(args.images)[: args.num_images] if args.images else None
    args.new_outputs.watch(args.out)
    out = check_output_dir(args.out, args.overwrite)
    # every checkpoint read and every model built first, so a bad one stops the command before any output;
    # the class count: --num-classes, else the checkpoint's (shared with the initialised runs of that model)
    states = [normalize_state_dict(read_checkpoint(w), str(w)) if w else None for _, w in runs]
    found = {name: checkpoint_num_classes(st) for (name, _), st in zip(runs, states) if st}
    models = []
    for (name, _), state in zip(runs, states):
        torch.manual_seed(args.seed)  # the same initialisation for every run of a model
        num_classes = args.num_classes or found.get(name) or 19
        models.append(create_model(name, num_classes=num_classes, weights=state, fine_tuning=False).to(args.device))
    results, summary = [], []
    for i, ((name, weights), model) in enumerate(zip(runs, models)):
        info = get_model_info(name)
        inputs = (
            image_inputs(images, size, info.mean, info.std)
            if images
            else random_inputs(args.num_images, size, seed=args.seed)
        )
        label = _label(name, weights)
        result = effective_receptive_field(
            model, inputs, layer=args.layer, progress=True, total=len(images) if images else args.num_images
        )
        stem = f"erf_{i}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")
        plot_erf(result, out / f"{stem}.png", label)
        atomic_write(out / f"{stem}.npy", lambda tmp, r=result: _save_npy(tmp, r.scores))
        results.append((label, result))
        ratios = {str(t): None if v is None else {"side": v[0], "area_ratio": v[1]} for t, v in result.ratios().items()}
        summary.append({"label": label, "model": name, "weights": weights, "file": f"{stem}.png", "ratios": ratios})
        print(
            f"{label}: high-contribution area ratio "
            + ", ".join(
                f"t={t}: " + ("not reached" if v is None else f"{100 * v['area_ratio']:.2f}% (side {v['side']})")
                for t, v in ratios.items()
            )
        )
    if len(results) > 1:
        plot_erf_grid(results, out / "erf_compare.png")
    meta = {
        "layer": args.layer or "",
        "size": list(size),
        "inputs": [str(p) for p in images] if images else f"{args.num_images} random normal (seed {args.seed})",
        "convention": "log10(erf + 1) scaled to max 1; smallest centred odd square holding share t",
        "runs": summary,
    }
    atomic_write(out / "erf.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    print(
        f"written: {out}/ (erf_*.png heat maps, erf_*.npy maps{', erf_compare.png' if len(results) > 1 else ''}, "
        "erf.json)"
    )
    return 0


def cmd_atrous_padding(args: argparse.Namespace) -> int:
    sizes = [tuple(s) for s in (args.size or [(224, 224), (1024, 2048)])]
    tags = [f"{h}x{w}" for h, w in sizes]
    plots = {}
    if args.plot_dir:
        plots = {"model": Path(args.plot_dir) / f"atrous_padding_{args.model}.png"}
        plots["table1"] = Path(args.plot_dir) / "atrous_padding_table1.png"
        args.new_outputs.watch(args.plot_dir)
        check_output_files(list(plots.values()), args.overwrite)  # existing or unwritable: before any work
    model = create_model(args.model)
    per_size = [atrous_padding(model, s, include_dense=args.all) for s in sizes]
    schedules = {name: [schedule_padding(rates, s) for s in sizes] for name, rates in TABLE1_SCHEDULES.items()}
    if args.json:
        rows = [
            {**r.to_dict(), "shares": {tag: rows[i].share for tag, rows in zip(tags, per_size)}}
            for i, r in enumerate(per_size[0])
        ]
        table1 = {n: {"rates": TABLE1_SCHEDULES[n], **dict(zip(tags, v))} for n, v in schedules.items()}
        print(json.dumps({"model": args.model, "convs": rows, "table1": table1}, indent=1))
    else:
        head = f"{'convolution':<28} {'branch':<8} {'k':>3} {'d':>3} {'pad':>3}  " + "  ".join(
            f"{'map @' + t:>14} {'padding':>8}" for t in tags
        )
        print(f"{args.model}: share of kernel taps that fall on padding")
        print(head)
        print("-" * len(head))
        for i, r in enumerate(per_size[0]):
            cells = "  ".join(
                f"{'x'.join(map(str, rows[i].map_size)):>14} {100 * rows[i].share:>7.1f}%" for rows in per_size
            )
            print(f"{r.name:<28} {r.branch:<8} {r.kernel[0]:>3} {r.dilation[0]:>3} {r.padding[0]:>3}  {cells}")
        print("\nTable 1 rate schedules (3x3 convs, padding = rate, 1/8 resolution): mean share on padding")
        for name, values in schedules.items():
            cells = "  ".join(f"{t:>10} {100 * v:>5.1f}%" for t, v in zip(tags, values))
            print(f"  {name:<16} {TABLE1_SCHEDULES[name]:<20} {cells}")
    if plots:
        shares = {r.name: {t: rows[i].share for t, rows in zip(tags, per_size)} for i, r in enumerate(per_size[0])}
        plot_padding(shares, plots["model"], f"{args.model}: kernel taps on padding")
        table1 = {f"{n} ({TABLE1_SCHEDULES[n]})": dict(zip(tags, v)) for n, v in schedules.items()}
        plot_padding(table1, plots["table1"], "Table 1 rate schedules: mean share of taps on padding")
        if not args.json:
            print("written: " + ", ".join(map(str, plots.values())))
    return 0


def _add_rf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rf", help="theoretical receptive fields per module and branch (scales of every path)")
    flags.add_model(p)
    flags.add_size(p, default=(1024, 2048))
    p.add_argument("--within", default=None, metavar="NAME", help="only this submodule, measured from its input")
    p.add_argument("--depth", type=int, default=2, help="module depth shown (default 2; names with more dots hidden)")
    p.add_argument("--branch", default=None, help="only rows of this branch (spatial, context, fusion, ...)")
    flags.add_num_classes(p, default=19)
    flags.add_json(p, "every row shown, all fields, as JSON")
    p.set_defaults(func=cmd_rf)


def _add_erf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erf", help="effective receptive fields: heat maps and area ratios, several models side by side")
    p.add_argument("models", nargs="+", metavar="MODEL", help=f"one or more of {', '.join(list_models())}")
    flags.add_weights(p, "one per model, or several for one model; - = init", several=True)
    p.add_argument("--images", default=None, metavar="DIR", help="images to average over (default: random inputs)")
    p.add_argument("--num-images", type=int, default=4, help="inputs averaged (default 4)")
    flags.add_size(p, default=(256, 256), help="input size (256 256)")
    p.add_argument("--layer", default=None, help="module whose centre output is traced (default: the model output)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and of the random inputs")
    flags.add_num_classes(p, help="default: the weights' class count, else 19")
    flags.add_device(p, default="cpu", help="cpu (default) or cuda")
    flags.add_threads(p)
    flags.add_out(p, "output folder (one that holds files needs --overwrite)", metavar="DIR", required=True)
    flags.add_overwrite(p, "write into an output folder that holds files")
    p.set_defaults(func=cmd_erf)


def _add_atrous_padding(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("atrous-padding", help="share of atrous kernel taps on padding per input size (Table 1)")
    flags.add_model(p)
    flags.add_size(p, help="repeat (224 224, 1024 2048)", repeated=True)
    p.add_argument("--all", action="store_true", help="also the dense (dilation 1) k>1 convolutions")
    flags.add_out(
        p,
        "write atrous_padding_<model>.png and atrous_padding_table1.png into this folder",
        metavar="DIR",
        aliases=("--plot-dir",),
        dest="plot_dir",
    )
    flags.add_overwrite(p, "replace existing plots")
    flags.add_json(p)
    p.set_defaults(func=cmd_atrous_padding)


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``rf``, ``erf`` and ``atrous-padding`` on the ``dsnet`` sub-command parser."""
    _add_rf(sub)
    _add_erf(sub)
    _add_atrous_padding(sub)
