"""Weights shipped with the package, loaded by a short name (in the spirit of torchvision's weights enums).

``dsnet.create_model("dsnet_head64", weights="camvid-cpu60min")`` and every command's ``--weights
camvid-cpu60min`` mean the file registered here. The file is a safetensors checkpoint whose header carries
what a user needs beside the tensors: the label space (class names, palette, the dataset's ids), the
recipe (the config it was trained with), the val mIoU and the data's licence. A path that exists always
wins over a name, so a user's file called like a shipped one is never shadowed.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ..errors import ConfigError, WeightsNotFoundError

__all__ = [
    "PretrainedWeights",
    "WEIGHTS_DIR",
    "get_weights",
    "list_weights",
    "register_weights",
    "resolve_weights",
]

#: where the shipped files live inside the package
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class PretrainedWeights:
    """One shipped checkpoint: its short ``name``, the ``model`` it belongs to and its file."""

    name: str
    model: str
    filename: str
    description: str = ""
    directory: Path = WEIGHTS_DIR

    @property
    def path(self) -> Path:
        return self.directory / self.filename

    @cached_property
    def metadata(self) -> dict[str, str]:
        """The string metadata in the file's header (read once; the tensors are not read)."""
        if not self.path.is_file():
            raise WeightsNotFoundError(f"{self.name}: shipped weights file {self.path} missing from this install")
        with safe_open(str(self.path), framework="pt") as f:
            return dict(f.metadata() or {})

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def metrics(self) -> dict[str, Any]:
        """What the file says it scores (``metrics`` JSON in its header; e.g. ``val_miou``)."""
        return dict(json.loads(self.metadata.get("metrics", "{}")))

    def summary(self) -> str:
        """One line for listings: name, model, classes and the scores the file records."""
        scores = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.metrics.items())
        head = f"{self.name}: {self.model}, {self.num_classes} classes ({self.description})"
        return f"{head}; {scores}" if scores else head


_REGISTRY: dict[str, PretrainedWeights] = {}


def register_weights(weights: PretrainedWeights) -> PretrainedWeights:
    """Add shipped weights under ``weights.name`` (a name already taken is an error)."""
    if weights.name in _REGISTRY and _REGISTRY[weights.name] != weights:
        raise ConfigError(f"weights name {weights.name!r} is already registered")
    _REGISTRY[weights.name] = weights
    return weights


def list_weights(model: str | None = None) -> list[str]:
    """The names of the shipped weights (of ``model`` only, when given)."""
    return sorted(n for n, w in _REGISTRY.items() if model is None or w.model == model)


def get_weights(name: str) -> PretrainedWeights:
    """The shipped weights called ``name``; an unknown name is an error listing the known ones."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise WeightsNotFoundError(f"{name}: no shipped weights of that name (known: {', '.join(list_weights())}){hint}")


def resolve_weights(spec: Any) -> Any:
    """``spec`` with a shipped weights name replaced by its file; a bare word close to a shipped name (a typo
    such as ``camvid-cpu60mn``) is an error that suggests it; anything else (an existing path, a state dict,
    a name of nothing) unchanged, for the caller's own checks and messages."""
    if isinstance(spec, (str, os.PathLike)) and str(spec) in _REGISTRY and not Path(spec).exists():
        weights = _REGISTRY[str(spec)]
        weights.metadata  # noqa: B018 - a missing file is reported by its shipped name
        return weights.path
    if isinstance(spec, str) and _looks_like_a_misspelled_name(spec):
        get_weights(spec)  # raises: no shipped weights of that name; did you mean ...?
    return spec


def _looks_like_a_misspelled_name(spec: str) -> bool:
    """A bare word (no folder, no file suffix) that is no file here and is close to a shipped name."""
    bare = "/" not in spec and os.sep not in spec and not Path(spec).suffix
    return bare and not Path(spec).exists() and bool(difflib.get_close_matches(spec, list(_REGISTRY), n=1))


#: dsnet_head64 trained from scratch on CamVid train+val in one hour on a 2-core CPU (bf16), by the recipe
#: configs/dsnet-head64_1xb8-cpu60min_camvid-192x256.yaml; model card in the README. CC BY-NC 4.0 data.
CAMVID_CPU60MIN = register_weights(
    PretrainedWeights(
        name="camvid-cpu60min",
        model="dsnet_head64",
        filename="dsnet_head64_camvid-cpu60min.safetensors",
        description="CamVid 11 classes, trained from scratch in 60 min on a 2-core CPU; CC BY-NC 4.0 data",
    )
)

#: the same recipe with photometric augmentation (configs/dsnet-head64_1xb8-cpu60min-photometric_camvid-192x256.yaml):
#: chosen on the sequence-held-out protocols for streets in other light; shipped beside camvid-cpu60min, not
#: replacing it (benchmarks/README.md, "Unseen streets"). CC BY-NC 4.0 data.
CAMVID_CPU60MIN_PHOTOMETRIC = register_weights(
    PretrainedWeights(
        name="camvid-cpu60min-photometric",
        model="dsnet_head64",
        filename="dsnet_head64_camvid-cpu60min-photometric.safetensors",
        description="CamVid 11 classes, 60 min on a 2-core CPU with photometric augmentation (streets in other "
        "light); CC BY-NC 4.0 data",
    )
)

#: the photometric recipe plus BDD100K's pairs relabelled into CamVid's classes as extra training data
#: (configs/dsnet-head64_1xb8-cpu60min-photometric-bdd100k_camvid-192x256.yaml): ahead of both siblings on each
#: sequence-held-out protocol (benchmarks/README.md, "Unseen streets"). CC BY-NC 4.0 and BDD100K licence data
#: (its text ships beside the file: weights/BDD100K_DATA_LICENSE.rst).
CAMVID_CPU60MIN_PHOTOMETRIC_BDD100K = register_weights(
    PretrainedWeights(
        name="camvid-cpu60min-photometric-bdd100k",
        model="dsnet_head64",
        filename="dsnet_head64_camvid-cpu60min-photometric-bdd100k.safetensors",
        description="CamVid 11 classes, 60 min on a 2-core CPU with photometric augmentation and BDD100K streets "
        "as extra data (unseen streets); CC BY-NC 4.0 and BDD100K licence (not-for-profit) data",
    )
)
