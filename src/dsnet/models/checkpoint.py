"""Reading, converting, loading and writing DSNet weights.

Accepted inputs (file or in-memory): the authors' checkpoints in every form their training
script writes (bare state dict; ``{'state_dict': ...}``; keys prefixed ``model.`` by their
``FullModel`` and/or ``module.`` by DDP; with or without the ``seghead_p/d`` auxiliary heads;
with ``sem_loss.*``/``ce_loss.*`` class-weight buffers), their ImageNet encoder checkpoints, and
ours (safetensors or weights-only torch files). After the key mapping, loading is strict: any
missing, unexpected or wrongly shaped key is an error that lists them.

Files are never unpickled with code execution: torch files go through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, CheckpointMismatchError, ConfigError, WeightsNotFoundError
from ..fileio import atomic_write, read_torch_file
from .dsnet import AUX_HEAD_PREFIXES, CLASSIFIER_PREFIXES, DECODER_PREFIXES
from .pretrained import resolve_weights
from .registry import get_model_constructor, list_models

__all__ = [
    "LoadReport",
    "checkpoint_num_classes",
    "check_num_classes",
    "weights_num_classes",
    "read_checkpoint",
    "normalize_state_dict",
    "load_weights",
    "save_weights",
    "to_authors_state_dict",
    "save_authors_checkpoint",
]

logger = logging.getLogger(__name__)

WeightsLike = str | os.PathLike | Mapping[str, Any]

# Containers under which training scripts nest the weights (ours use "model").
_NESTING_KEYS = ("state_dict", "model_state_dict", "model")
# Prefixes added by wrappers: DDP / DataParallel ("module."), the authors' FullModel ("model."),
# torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
# Non-model entries of the authors' FullModel state dict (class-weight buffers of the losses).
_LOSS_PREFIXES = ("sem_loss.", "ce_loss.")


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    source: str
    loaded: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)  # model keys the checkpoint did not cover
    ignored: list[str] = field(default_factory=list)  # checkpoint keys deliberately not used
    kind: str = "full"  # "full", "full-without-aux", "encoder"
    reinitialized: list[str] = field(default_factory=list)  # classifier keys reset for other classes

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.kind})"]
        if self.reinitialized:
            parts.append(f"re-initialised for the new classes: {', '.join(self.reinitialized)}")
        if self.left_at_init:
            parts.append(f"left at initialisation: {', '.join(_summarise(self.left_at_init))}")
        if self.ignored:
            parts.append(f"ignored checkpoint keys: {', '.join(_summarise(self.ignored))}")
        return "; ".join(parts)


def _summarise(keys: Iterable[str]) -> list[str]:
    """Group keys by their top-level module: ``['spp.* (29)', ...]``."""
    groups: OrderedDict[str, int] = OrderedDict()
    for k in keys:
        top = k.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    return [f"{top}.* ({n})" for top, n in groups.items()]


def _describe(weights: WeightsLike) -> str:
    return str(weights) if isinstance(weights, (str, os.PathLike)) else "<in-memory state dict>"


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file without executing pickled code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which accepts the authors' ``.pth``/``.pt``/``.pth.tar``.
    """
    path = Path(resolve_weights(path))
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    obj = read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return dict(obj)


def _unwrap(obj: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """Find the tensor mapping inside a training checkpoint."""
    for _ in range(3):
        if any(isinstance(v, Tensor) for v in obj.values()):
            break
        nested = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            raise CheckpointError(
                f"{source}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]}); "
                f"expected tensors or one of {list(_NESTING_KEYS)}"
            )
        obj = nested
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:10]}")
    return dict(obj)


def normalize_state_dict(weights: Mapping[str, Any], source: str = "<state dict>") -> OrderedDict[str, Tensor]:
    """Map any accepted checkpoint layout onto our (= the authors' model) key names.

    Unwraps ``state_dict``/``model`` nesting, strips ``module.``/``model.``/``_orig_mod.``
    prefixes (in any combination) and drops the loss buffers ``sem_loss.*``/``ce_loss.*``.
    """
    sd = _unwrap(weights, source)
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in sd.items():
        k = key
        while True:
            stripped = next((k[len(p) :] for p in _WRAPPER_PREFIXES if k.startswith(p)), None)
            if stripped is None:
                break
            k = stripped
        if k.startswith(_LOSS_PREFIXES):
            continue
        if k in out:
            raise CheckpointError(f"{source}: key {key!r} maps to {k!r}, which occurs twice")
        out[k] = value
    return out


def _format_list(items: list[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def checkpoint_num_classes(sd: Mapping[str, Tensor]) -> int | None:
    """The class count of a normalised state dict (its classifier's output channels), or None without one."""
    head = sd.get("lastlayer.conv2.weight")
    return int(head.shape[0]) if head is not None and head.dim() == 4 else None


_CLASSIFIER_KEY = "lastlayer.conv2.weight"


def weights_num_classes(weights: WeightsLike) -> int | None:
    """The class count of a checkpoint (its classifier's output channels), None without a classifier.

    A safetensors file is read from its header alone, so the tensors are read once, by the loader.
    """
    weights = resolve_weights(weights)
    if isinstance(weights, (str, os.PathLike)) and Path(weights).suffix == ".safetensors" and Path(weights).is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(weights), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                    parts = key.split(".")
                    wrapped = all(p + "." in _WRAPPER_PREFIXES for p in parts[:-3])
                    if parts[-3:] == _CLASSIFIER_KEY.split(".") and wrapped:
                        shape = f.get_slice(key).get_shape()
                        return int(shape[0]) if len(shape) == 4 else None
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from e
        return None
    raw = read_checkpoint(weights) if isinstance(weights, (str, os.PathLike)) else weights  # (missing file: its error)
    return checkpoint_num_classes(normalize_state_dict(raw, _describe(weights)))


def check_num_classes(
    found: int | None, requested: int | None, source: str | os.PathLike, what: str = "--num-classes"
) -> int | None:
    """The class count to build: the weights' (``found``), which a requested count (``what``, as the
    user named it) must not contradict: a one-line ConfigError naming both."""
    if found is not None and requested is not None and found != requested:
        raise ConfigError(f"{source}: the weights have {found} classes, but {what} is {requested}")
    return found if found is not None else requested


def _guess_variant(sd: Mapping[str, Tensor]) -> tuple[str, int] | None:
    """The registered variant and class count whose shapes this state dict fits."""
    num_classes = checkpoint_num_classes(sd) or 19
    for name in list_models():
        with torch.device("meta"):
            ref = get_model_constructor(name)(num_classes=num_classes).state_dict()
        body = {k: v for k, v in sd.items() if not k.startswith(AUX_HEAD_PREFIXES)}
        ref_body = {k: v for k, v in ref.items() if not k.startswith(AUX_HEAD_PREFIXES)}
        if body.keys() == ref_body.keys() and all(body[k].shape == ref_body[k].shape for k in body):
            return name, num_classes
    return None


def _fit_hint(sd: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> str | None:
    """Which variant the checkpoint fits, and whether only the variant or only the class count differs."""
    fits = _guess_variant(sd)
    if fits is None:
        return None
    name, num_classes = fits
    hint = f"the checkpoint fits {name} with num_classes={num_classes}"
    model = _guess_variant(own)
    if model is not None and model[0] != name and model[1] == num_classes:
        return f"{hint} (the model is {model[0]}, with the same class count): these weights fit {name}"
    if model is not None and model[0] == name and model[1] != num_classes:
        return f"{hint} (the model has {model[1]} classes)"
    return hint


def _guess_encoder(sd: Mapping[str, Tensor]) -> str | None:
    """Names of the segmentation variants whose encoder (every non-decoder key) this checkpoint holds."""
    fits = []
    for name in list_models():
        with torch.device("meta"):
            ref = get_model_constructor(name)(num_classes=1, aux_heads=False).state_dict()
        enc = {k: v.shape for k, v in ref.items() if not k.startswith(DECODER_PREFIXES)}
        if all(k in sd and sd[k].shape == shape for k, shape in enc.items()):
            fits.append(name)
    return f"the checkpoint fits the encoder of {', '.join(fits)}" if fits else None


def load_weights(
    model: nn.Module,
    weights: WeightsLike,
    *,
    part: Literal["auto", "full", "encoder", "compatible"] = "auto",
    reset_classifier: bool = False,
    source: str | None = None,
    fine_tuning: bool = True,
) -> LoadReport:
    """Load weights into ``model`` strictly after mapping the keys.

    Args:
        model: a DSNet (with or without auxiliary heads).
        weights: a checkpoint path or a mapping (see module docstring).
        part: ``"full"`` expects every non-auxiliary key; ``"encoder"`` expects everything except
            the decoder (``spp``, ``layer1_a``, ``up8``, ``lastlayer``) and the auxiliary heads, as
            in the authors' ImageNet checkpoints, and ignores checkpoint keys outside the model
            (their classifier); ``"auto"`` picks ``"encoder"`` when no decoder key is present;
            ``"compatible"`` (ablation variants, which change modules of the base network) loads
            every key the checkpoint and the model share, strictly (a shared key with another shape
            is an error), ignores the checkpoint's other keys and reports the model's keys left at
            initialisation.
        reset_classifier: fine-tuning to other classes: the classifier layers (the last 1x1
            convolution of the main and auxiliary heads) keep their fresh initialisation when the
            checkpoint's class count differs; the report lists them. Without it a class-count
            mismatch is an error.
        source: how to name the weights in messages (default: the path, or "<in-memory state dict>").
        fine_tuning: whether the caller can fine-tune (train): only then does a class-count mismatch
            suggest ``reset_classifier``; inference and export pass False.

    A checkpoint without auxiliary heads loads into a model with them (the heads keep their
    initialisation and a warning says so); auxiliary keys are ignored by a model built with
    ``aux_heads=False``. Anything else that does not match raises
    :class:`CheckpointMismatchError` listing missing, unexpected and wrongly shaped keys.
    """
    weights = resolve_weights(weights)
    source = source or _describe(weights)
    raw = read_checkpoint(weights) if isinstance(weights, (str, os.PathLike)) else weights
    sd = normalize_state_dict(raw, source)
    own = model.state_dict()

    if part == "auto":
        has_decoder = any(k.startswith(DECODER_PREFIXES) and not k.startswith(AUX_HEAD_PREFIXES) for k in sd)
        part = "full" if has_decoder else "encoder"
    if part not in ("full", "encoder", "compatible"):
        raise ValueError(f"part must be 'auto', 'full', 'encoder' or 'compatible', got {part!r}")

    reinitialized: list[str] = []
    if reset_classifier:
        reinitialized = [
            k for k in own if k.startswith(CLASSIFIER_PREFIXES) and k in sd and sd[k].shape[:1] != own[k].shape[:1]
        ]
        sd = OrderedDict((k, v) for k, v in sd.items() if k not in reinitialized)

    if part == "compatible":
        if not any(k in own for k in sd):
            raise CheckpointMismatchError(
                f"checkpoint {source} shares no key with {type(model).__name__}", [], list(sd), []
            )
        expected, optional = [k for k in own if k in sd], []
        ignored = [k for k in sd if k not in own]
    elif part == "encoder":
        expected = [k for k in own if not k.startswith(DECODER_PREFIXES)]
        optional: list[str] = []
        ignored = [k for k in sd if k not in own or k.startswith(DECODER_PREFIXES)]
    else:
        expected = [k for k in own if not k.startswith(AUX_HEAD_PREFIXES) and k not in reinitialized]
        optional = [k for k in own if k.startswith(AUX_HEAD_PREFIXES)]
        # aux-head keys are ignored (not unexpected) when the model has no aux heads
        ignored = [k for k in sd if k.startswith(AUX_HEAD_PREFIXES) and k not in own]

    usable = [k for k in sd if k not in ignored]
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in usable if k not in own]
    if missing and part == "encoder":
        # a foreign state dict: what it holds instead of the encoder is part of the diagnosis
        unexpected = [k for k in sd if k not in own]
    shape_mismatch = [
        (k, tuple(sd[k].shape), tuple(own[k].shape)) for k in usable if k in own and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or shape_mismatch:
        lines = [f"checkpoint {source} does not fit {type(model).__name__} ({part} load):"]
        if part == "encoder":
            fitting = sum(1 for k in expected if k in sd and sd[k].shape == own[k].shape)
            lines[0] += f" {fitting} of the model's {len(expected)} encoder tensors match"
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_format_list(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_format_list(unexpected)}")
        if shape_mismatch:
            shown = [f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in shape_mismatch]
            lines.append(f"  wrongly shaped keys ({len(shape_mismatch)}): {_format_list(shown, 20)}")
            classifier = any(k.startswith(CLASSIFIER_PREFIXES) for k, _, _ in shape_mismatch)
            if classifier and fine_tuning and not reset_classifier:
                lines.append(
                    "  to fine-tune to another number of classes, pass reset_classifier=True "
                    "(config: model.reset_classifier=true)"
                )
        guess = _fit_hint(sd, own) if part == "full" else _guess_encoder(sd)
        if guess:
            lines.append(f"  {guess}")
        raise CheckpointMismatchError("\n".join(lines), missing, unexpected, shape_mismatch)

    to_load = {k: sd[k] for k in usable}
    result = model.load_state_dict(to_load, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    left = [k for k in own if k not in to_load and k not in reinitialized]
    kind = part
    if part == "full" and any(k in left for k in optional):
        kind = "full-without-aux"
    report = LoadReport(
        source=source, loaded=list(to_load), left_at_init=left, ignored=ignored, kind=kind, reinitialized=reinitialized
    )
    if left:
        warnings.warn(
            f"{source}: {kind} checkpoint; these modules stay at their initialisation: {', '.join(_summarise(left))}",
            stacklevel=2,
        )
    logger.info("%s", report)
    return report


class LabelSpaceLike(Protocol):
    """What :func:`save_weights` needs of a label space (:class:`dsnet.data.LabelSpace` is one)."""

    @property
    def num_classes(self) -> int: ...

    def to_metadata(self) -> dict[str, str]: ...


def save_weights(
    model: nn.Module | Mapping[str, Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    *,
    label_space: LabelSpaceLike | None = None,
) -> Path:
    """Write weights atomically: safetensors for ``*.safetensors``, else a weights-only torch file.

    ``metadata`` (string pairs) is stored in the safetensors header or as ``{'meta': ...}`` beside
    ``{'state_dict': ...}`` in a torch file. ``label_space`` (a dataset's
    :class:`~dsnet.data.LabelSpace`) adds its description (keys ``label_space``, ``num_classes``,
    and ``dataset`` unless ``metadata`` names one), so inference names and colours the classes as
    the dataset does; a class count that contradicts the classifier's is a ConfigError.
    """
    path = Path(path)
    sd = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    sd = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in sd.items())
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if label_space is not None:
        described = dict(label_space.to_metadata())
        n = label_space.num_classes
        found = checkpoint_num_classes(normalize_state_dict(sd, str(path)))
        if found is not None and found != n:
            raise ConfigError(f"{path}: the label space has {n} classes but the model's classifier {found}")
        if meta.get("num_classes", str(n)) != str(n):
            raise ConfigError(f"{path}: metadata num_classes={meta['num_classes']} but the label space has {n} classes")
        dataset = meta.get("dataset", described.get("dataset"))
        meta = {**meta, **described, **({"dataset": dataset} if dataset else {})}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta))
    else:
        atomic_write(path, lambda tmp: torch.save({"state_dict": sd, "meta": meta}, tmp))
    return path


def to_authors_state_dict(model: nn.Module, *, full_model: bool = False) -> OrderedDict[str, Tensor]:
    """Our weights in the authors' key layout and order.

    ``full_model=True`` prefixes every key with ``model.`` as their ``FullModel`` training
    wrapper does (the form their resume/fine-tune code expects).
    """
    sd = model.state_dict()
    prefix = "model." if full_model else ""
    return OrderedDict((prefix + k, v.detach().cpu()) for k, v in sd.items())


def save_authors_checkpoint(model: nn.Module, path: str | os.PathLike, *, full_model: bool = True) -> Path:
    """Write ``{'state_dict': ...}`` in the authors' layout (loadable by their ``train.py``)."""
    path = Path(path)
    sd = to_authors_state_dict(model, full_model=full_model)
    atomic_write(path, lambda tmp: torch.save({"state_dict": sd}, tmp))
    return path
