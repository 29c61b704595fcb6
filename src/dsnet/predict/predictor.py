"""``Predictor``: images of any size in, label maps (and optionally probabilities) out.

Size policy: an image is never resized. :func:`dsnet.inference.predict_probs` pads it bottom/right
to the model's multiple (8) with the mean colour and crops the output back, so every output has
its input's size. Images above ``large_image_pixels`` (default 4 MPix) go through sliding-window
inference (``slide_crop`` windows) instead of one pass, unless ``options`` already asks for a mode.
Inputs of one size are stacked into batches of up to ``batch_size`` (one forward pass each).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from ..constants import round_up
from ..data.label_space import LabelSpace
from ..data.labels import Color, colorize
from ..deploy import LogitsFn, Runner
from ..errors import ConfigError
from ..inference import InferenceOptions, argmax_channels, predict_probs, predict_scores
from .resolve import ResolvedModel, resolve_model
from .sources import ImageLike, to_rgb

__all__ = ["Prediction", "Predictor"]

#: Above this many pixels an image is predicted window by window (unless options say otherwise).
LARGE_IMAGE_PIXELS = 4 * 1024 * 1024
#: The arguments that resolve a predictor's parts, at their defaults (unset when parts are passed in).
_RESOLVE_DEFAULTS = dict(
    weights=None, device=None, num_classes=None, dataset=None, backend=None, threads=None, deploy_form=True,
    precision="fp32", calibration=None,
)  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """One image's result: ``label`` (H, W) training ids (uint8; int64 above 256 classes) and, when
    asked for, ``probs`` (C, H, W) float32 class probabilities."""

    label: np.ndarray
    probs: np.ndarray | None = None


class Predictor:
    """Segment RGB images with a DSNet model.

    Made from a model's name (or module) and weights, resolved by :meth:`resolve` (the arguments below), or
    from parts resolved already (a :class:`~dsnet.predict.resolve.ResolvedModel`, e.g. around a runner of
    one's own), so a server or a test can pass them in: ``Predictor(Predictor.resolve(...), options=...)``.

    Args:
        model_or_name: a registered name (``"dsnet_head128"``), a built ``nn.Module``, or a ResolvedModel
            (then the arguments that resolve it, ``weights`` to ``calibration`` but for ``options``,
            ``batch_size``, ``large_image_pixels`` and ``slide_crop``, stay unset).
        weights: checkpoint file, whose metadata (``model``, ``num_classes``, the dataset's
            ``label_space``, or for older weights ``dataset``) fills in what is not given explicitly;
            or an exported ``.onnx`` / OpenVINO ``.xml`` file (then ``model_or_name`` is the
            registered name, for the normalisation and the input multiple).
        device: "cuda", "cpu", ... (default: CUDA when available; ONNX Runtime and OpenVINO: the CPU).
        num_classes: output classes (default: the weights' (metadata, else the classifier's shape) or
            the exported file's, else the dataset's, else 19); one that contradicts the weights is an error.
        dataset: a registered dataset name or a :class:`~dsnet.data.LabelSpace`: the classes' names,
            colours and dataset ids (overrides the metadata's).
        options: whole/slide/multi-scale/flip settings (default: the whole image; when the weights' metadata
            gives the long side of their training images (``input_long_side``, e.g. 320 for the shipped CamVid
            model) and the backend takes any size, each image is scaled to that long side for the forward
            pass; the labels always come back at the input's size).
        batch_size: most inputs of one size per forward pass.
        backend: "torch", "onnxruntime", "openvino" (checkpoint weights are then exported once, with
            dynamic H/W, to a temporary folder), or a :class:`~dsnet.deploy.LogitsFn` for
            another runtime (then ``model_or_name`` must be a name). Default: torch, or for an
            exported file its own runtime.
        threads: intra-op threads of the ONNX Runtime / OpenVINO session (default: the runtime's
            choice). PyTorch's count is process-wide: set it with ``torch.set_num_threads``.
        deploy_form: torch backend: run :func:`dsnet.deploy.prepare`'s form of a copy of the model
            (BN folded, channels_last on the CPU; equal up to float32 rounding), as the bench's
            fastest torch backend; False runs the module as given.
        large_image_pixels: images above this size use sliding windows of ``slide_crop`` (None: never).
        precision: ``fp32``, ``bf16`` (torch: autocast; OpenVINO: its precision hint), ``int8`` (OpenVINO:
            an INT8 export, or the checkpoint quantized once on ``calibration``) or ``auto`` (bf16 where
            the hardware computes it natively, else fp32; an INT8 export runs INT8). The choice and the
            reason are in ``self.precision`` and ``self.precision_reason``.
        calibration: ``precision="int8"`` with checkpoint weights: normalised float32 ``(1, 3, H, W)``
            images to calibrate the quantization on (e.g. :class:`dsnet.data.calibration.CalibrationSet`).
    """

    def __init__(
        self,
        model_or_name: str | nn.Module | ResolvedModel,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        num_classes: int | None = None,
        dataset: str | LabelSpace | None = None,
        options: InferenceOptions | None = None,
        batch_size: int = 4,
        backend: str | LogitsFn | None = None,
        large_image_pixels: int | None = LARGE_IMAGE_PIXELS,
        slide_crop: tuple[int, int] = (1024, 1024),
        threads: int | None = None,
        deploy_form: bool = True,
        precision: str = "fp32",
        calibration: Iterable[np.ndarray] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        resolving = dict(
            weights=weights, device=device, num_classes=num_classes, dataset=dataset, backend=backend,
            threads=threads, deploy_form=deploy_form, precision=precision, calibration=calibration,
        )  # fmt: skip
        if isinstance(model_or_name, ResolvedModel):
            given = [k for k, v in resolving.items() if v != _RESOLVE_DEFAULTS[k]]
            if given:
                raise ConfigError(f"a ResolvedModel is resolved already; {', '.join(given)} cannot change it")
            parts = model_or_name
        else:
            parts = self.resolve(model_or_name, **resolving)  # type: ignore[arg-type]
        self.runner: Runner = parts.runner
        self.label_space: LabelSpace = parts.label_space
        self.name = parts.name
        self.mean, self.std = parts.mean, parts.std
        self.device = parts.device
        self.backend = self.runner.info.backend
        self.precision = self.runner.info.precision
        self.precision_reason = parts.precision_reason
        self.batch_size = int(batch_size)
        self.large_image_pixels = large_image_pixels
        self.slide_crop = (int(slide_crop[0]), int(slide_crop[1]))
        #: the only input size a static export runs (None: any size)
        self.static_size: tuple[int, int] | None = self.runner.info.static_size
        #: scale each image to this long side (the weights' training size) unless options were given; a static
        #: export does so where the scaled image is its size (an export of the shipped model at 240x320 runs
        #: CamVid's 360x480 and 180x240 images as the model was trained), else it runs the image unscaled
        self.input_long_side = parts.input_long_side if options is None else None
        self.options = options or InferenceOptions()
        if self.static_size is not None and tuple(self.options.scales) != (1.0,):
            raise ConfigError(f"{weights}: a static export runs one input size, so no multi-scale views; use --dynamic")
        self._scale = (1.0 / (255.0 * torch.tensor(self.std, dtype=torch.float64))).float().view(1, 3, 1, 1)
        self._offset = -torch.tensor(self.mean, dtype=torch.float64) / torch.tensor(self.std, dtype=torch.float64)
        self._offset = self._offset.float().view(1, 3, 1, 1)

    #: weights, model, label space and runner from names: the constructor's arguments of the same names
    #: (see :func:`~dsnet.predict.resolve.resolve_model`) -> a ResolvedModel to make predictors from
    resolve = staticmethod(resolve_model)

    # ---------------------------------------------------------------------------------- labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.label_space.classes

    @property
    def palette(self) -> tuple[Color, ...]:
        return self.label_space.palette

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) picture of a label map in this model's palette."""
        return colorize(label, self.palette)

    # ---------------------------------------------------------------------------------- prediction

    def __call__(self, image: ImageLike) -> np.ndarray:
        """The label map (H, W) of one image (array, PIL image or path)."""
        return self.predict(image).label

    def predict(self, image: ImageLike, return_probs: bool = False) -> Prediction:
        return next(iter(self.predict_many([image], return_probs)))

    def predict_many(self, images: Iterable[ImageLike], return_probs: bool = False) -> Iterator[Prediction]:
        """Predictions in input order; consecutive inputs of one size share a batch. Lazy, so a
        video's frames can stream through it."""
        pending: list[np.ndarray] = []
        for image in images:
            rgb = to_rgb(image)
            if pending and (rgb.shape != pending[0].shape or len(pending) == self.batch_size):
                yield from self.predict_batch(pending, return_probs)
                pending = []
            pending.append(rgb)
        if pending:
            yield from self.predict_batch(pending, return_probs)

    def options_for(self, height: int, width: int) -> InferenceOptions:
        """The inference options used for an image of this size: sliding windows for very large images.

        A static export runs one input size (its own): an image that pads to it runs whole, one at
        least that large in both sides runs in windows of exactly that size, any other is a
        ConfigError naming both sizes (padding it further would change the result).
        """
        options = self.options
        if self.input_long_side is not None and max(height, width) != self.input_long_side:
            options = replace(options, scales=(self.input_long_side / max(height, width),))
        large = self.large_image_pixels is not None and height * width > self.large_image_pixels
        if large and options.mode == "whole":
            options = replace(options, mode="slide", crop=self.slide_crop, stride=None)
        if self.static_size is None:
            return options
        lh, lw = self.static_size
        multiple = self.runner.input_multiple
        if options.scales != self.options.scales:  # scaled to the weights' training size
            scale = options.scales[0]
            scaled = (max(8, round(height * scale)), max(8, round(width * scale)))  # as predict_scores resizes
            if options.mode == "whole" and (round_up(scaled[0], multiple), round_up(scaled[1], multiple)) == (lh, lw):
                return options
            options = replace(options, scales=self.options.scales)  # not the export's size: run it unscaled
        if options.mode == "whole" and (round_up(height, multiple), round_up(width, multiple)) == (lh, lw):
            return options
        if height >= lh and width >= lw:
            stride = options.stride if options.mode == "slide" and options.crop == (lh, lw) else None
            return replace(options, mode="slide", crop=(lh, lw), stride=stride)
        raise ConfigError(
            f"image {height}x{width} does not fit the static export's input {lh}x{lw}: it runs images of that "
            f"size (up to padding to a multiple of {multiple}) and larger ones in windows of that size; "
            f"export with --dynamic, or run the checkpoint with backend {self.backend!r}"
        )

    def input_problem(self, height: int, width: int) -> str | None:
        """Why an image of this size cannot run on this backend, or None when it can.

        Only runtimes have limits: a static export runs its own size (see :meth:`options_for`) and a
        dynamic one needs ``min_size`` pixels on each side of every (padded) input it is given. A caller
        running many images skips such an image, as an unreadable one, instead of stopping the others.
        """
        try:
            options = self.options_for(height, width)
        except ConfigError as e:
            return str(e)
        min_size = self.runner.info.min_size
        if not min_size:
            return None
        multiple = self.runner.input_multiple
        for scale in options.scales:  # the sizes inference.predict_scores runs (views, windows, padding)
            h, w = (height, width) if scale == 1.0 else (max(8, round(height * scale)), max(8, round(width * scale)))
            if options.mode == "slide" and options.crop is not None:
                h, w = min(h, options.crop[0]), min(w, options.crop[1])
            if min(round_up(h, multiple), round_up(w, multiple)) < min_size:
                return (
                    f"image {height}x{width} is too small for the {self.backend} export, which needs at least "
                    f"{min_size}x{min_size} after padding to a multiple of {multiple}; the torch backend runs it"
                )
        return None

    @torch.no_grad()
    def predict_batch(self, images: Sequence[np.ndarray], return_probs: bool = False) -> list[Prediction]:
        """One forward pass (per view) over RGB uint8 images of one size. Labels alone are the argmax of
        the logits (no full-resolution softmax) unless test-time augmentation averages probabilities."""
        layout = torch.channels_last if self.runner.channels_last else torch.contiguous_format
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        batch = batch.contiguous(memory_format=layout)
        batch.mul_(self._scale.to(self.device)).add_(self._offset.to(self.device))
        options = self.options_for(*batch.shape[-2:])
        scores = (
            predict_probs(self.runner, batch, options) if return_probs else predict_scores(self.runner, batch, options)
        )
        dtype = torch.uint8 if scores.shape[1] <= 256 else torch.int64
        labels = argmax_channels(scores).to(dtype).cpu().numpy()
        probs_np = scores.cpu().numpy() if return_probs else None
        return [Prediction(labels[i], probs_np[i] if probs_np is not None else None) for i in range(len(images))]
