"""Reading weights files and normalising their keys onto ours (= the authors' model key names).

Accepted inputs (file or in-memory): the authors' checkpoints in every form their training
script writes (bare state dict; ``{'state_dict': ...}``; keys prefixed ``model.`` by their
``FullModel`` and/or ``module.`` by DDP; with or without the ``seghead_p/d`` auxiliary heads;
with ``sem_loss.*``/``ce_loss.*`` class-weight buffers), their ImageNet encoder checkpoints, and
ours (safetensors or weights-only torch files).

Files are never unpickled with code execution: torch files go through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..errors import CheckpointError, ConfigError, WeightsNotFoundError
from ..fileio import read_torch_file
from .pretrained import resolve_weights

__all__ = [
    "WeightsLike",
    "check_num_classes",
    "checkpoint_num_classes",
    "describe_weights",
    "normalize_state_dict",
    "read_checkpoint",
    "read_state_dict",
    "weights_num_classes",
]

WeightsLike = str | os.PathLike | Mapping[str, Any]

# Containers under which training scripts nest the weights (ours use "model").
_NESTING_KEYS = ("state_dict", "model_state_dict", "model")
# Prefixes added by wrappers: DDP / DataParallel ("module."), the authors' FullModel ("model."),
# torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
# Non-model entries of the authors' FullModel state dict (class-weight buffers of the losses).
_LOSS_PREFIXES = ("sem_loss.", "ce_loss.")
# The main head's last convolution: its output channels are the class count.
_CLASSIFIER_KEY = "lastlayer.conv2.weight"


def describe_weights(weights: WeightsLike) -> str:
    """How messages name ``weights``: the path, or ``<in-memory state dict>``."""
    return str(weights) if isinstance(weights, (str, os.PathLike)) else "<in-memory state dict>"


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file without executing pickled code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which accepts the authors' ``.pth``/``.pt``/``.pth.tar``.
    """
    path = Path(resolve_weights(path))
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
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


def _strip_wrapper_prefixes(key: str) -> str:
    """``key`` without any combination of the wrappers' prefixes."""
    while True:
        stripped = next((key[len(p) :] for p in _WRAPPER_PREFIXES if key.startswith(p)), None)
        if stripped is None:
            return key
        key = stripped


def normalize_state_dict(weights: Mapping[str, Any], source: str = "<state dict>") -> OrderedDict[str, Tensor]:
    """Map any accepted checkpoint layout onto our (= the authors' model) key names.

    Unwraps ``state_dict``/``model`` nesting, strips ``module.``/``model.``/``_orig_mod.``
    prefixes (in any combination) and drops the loss buffers ``sem_loss.*``/``ce_loss.*``.
    """
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in _unwrap(weights, source).items():
        k = _strip_wrapper_prefixes(key)
        if k.startswith(_LOSS_PREFIXES):
            continue
        if k in out:
            raise CheckpointError(f"{source}: key {key!r} maps to {k!r}, which occurs twice")
        out[k] = value
    return out


def read_state_dict(weights: WeightsLike, source: str) -> OrderedDict[str, Tensor]:
    """The normalised state dict of a file (read once) or an in-memory mapping."""
    raw = read_checkpoint(weights) if isinstance(weights, (str, os.PathLike)) else weights
    return normalize_state_dict(raw, source)


def checkpoint_num_classes(sd: Mapping[str, Tensor]) -> int | None:
    """The class count of a normalised state dict (its classifier's output channels), or None without one."""
    head = sd.get(_CLASSIFIER_KEY)
    return int(head.shape[0]) if head is not None and head.dim() == 4 else None


def _safetensors_num_classes(path: Path) -> int | None:
    """The classifier's output channels, read from the safetensors header alone."""
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                parts = key.split(".")
                wrapped = all(p + "." in _WRAPPER_PREFIXES for p in parts[:-3])
                if parts[-3:] == _CLASSIFIER_KEY.split(".") and wrapped:
                    shape = f.get_slice(key).get_shape()
                    return int(shape[0]) if len(shape) == 4 else None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    return None


def weights_num_classes(weights: WeightsLike) -> int | None:
    """The class count of a checkpoint (its classifier's output channels), None without a classifier.

    A safetensors file is read from its header alone, so the tensors are read once, by the loader.
    """
    weights = resolve_weights(weights)
    if isinstance(weights, (str, os.PathLike)) and Path(weights).suffix == ".safetensors" and Path(weights).is_file():
        return _safetensors_num_classes(Path(weights))
    # a missing file: read_checkpoint's error
    return checkpoint_num_classes(read_state_dict(weights, describe_weights(weights)))


def check_num_classes(
    found: int | None, requested: int | None, source: str | os.PathLike, what: str = "--num-classes"
) -> int | None:
    """The class count to build: the weights' (``found``), which a requested count (``what``, as the
    user named it) must not contradict: a one-line ConfigError naming both."""
    if found is not None and requested is not None and found != requested:
        raise ConfigError(f"{source}: the weights have {found} classes, but {what} is {requested}")
    return found if found is not None else requested
