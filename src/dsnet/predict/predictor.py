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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD, INPUT_LONG_SIDE_KEY, round_up
from ..data.label_space import LabelSpace
from ..data.labels import Color, colorize
from ..devices import check_device
from ..errors import ConfigError, WeightsNotFoundError
from ..hardware import resolve_precision
from ..inference import InferenceOptions, argmax_channels, predict_probs, predict_scores
from ..models import check_num_classes, create_model, get_model_info, load_weights, resolve_weights
from ..models.registry import resolve_model_name
from .backends import RUNTIME_BACKENDS, LogitsFn, LogitsFnModule, check_backend
from .runtimes import Runtime, backend_for_export, export_format, load_exported, runtime_for, torch_module
from .sources import ImageLike, to_rgb
from .weights_labels import label_space, label_space_from_metadata, read_weights_source

__all__ = ["Prediction", "Predictor"]

#: Above this many pixels an image is predicted window by window (unless options say otherwise).
LARGE_IMAGE_PIXELS = 4 * 1024 * 1024


@dataclass(frozen=True)
class Prediction:
    """One image's result: ``label`` (H, W) training ids (uint8; int64 above 256 classes) and, when
    asked for, ``probs`` (C, H, W) float32 class probabilities."""

    label: np.ndarray
    probs: np.ndarray | None = None


def _input_long_side(meta: dict[str, str], source: object) -> int | None:
    """The long side of the weights' training images (``input_long_side`` in their metadata), if given."""
    text = meta.get(INPUT_LONG_SIDE_KEY)
    if text is None:
        return None
    if not text.isdigit() or not 16 <= int(text) <= 16384:
        raise ConfigError(f"{source}: metadata {INPUT_LONG_SIDE_KEY}={text!r} is not a size in 16..16384 pixels")
    return int(text)


class Predictor:
    """Segment RGB images with a DSNet model.

    Args:
        model_or_name: a registered name (``"dsnet_head128"``) or a built ``nn.Module``.
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
            dynamic H/W, to a temporary folder), or a :class:`~dsnet.predict.backends.LogitsFn` for
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
        model_or_name: str | nn.Module,
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
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        weights = resolve_weights(weights)
        if weights is not None and not Path(weights).is_file():
            raise WeightsNotFoundError(f"{weights}: weights file not found")
        backend = check_backend(backend)
        exported = export_format(weights)
        if exported is not None:
            assert weights is not None
            if backend is not None and not isinstance(backend, str):
                raise ConfigError(f"{weights}: an exported file runs in its runtime, not in a LogitsFn backend")
            backend = backend_for_export(weights, exported, backend)
        backend = backend or "torch"
        runtime_backend = isinstance(backend, str) and backend in RUNTIME_BACKENDS
        if runtime_backend and device is not None and str(device).split(":")[0] != "cpu":
            raise ConfigError(f"backend {backend!r} runs on the CPU here, not on {device}")
        check_device(device, "device")  # one line naming it and what is available, not a traceback later
        if threads is not None and backend == "torch":
            raise ConfigError("threads: PyTorch's thread count is process-wide; set it with torch.set_num_threads")
        source = read_weights_source(weights) if weights is not None and exported is None else None
        meta = source.metadata if source is not None else {}
        name = self._model_name(model_or_name, meta)
        info = get_model_info(name) if name is not None else None
        if not isinstance(backend, str) and info is None:
            raise ConfigError("a LogitsFn backend needs the model's registered name (for normalisation)")

        default_device = "cuda" if torch.cuda.is_available() and not runtime_backend else "cpu"
        self.device = torch.device(device or default_device)
        backend_name = backend if isinstance(backend, str) else "callable"
        self.precision, self.precision_reason = resolve_precision(precision, self.device, backend_name)
        float_precision = "fp32" if self.precision == "int8" else self.precision

        runtime: Runtime | None = None
        if exported is not None:
            if info is None:
                raise ConfigError(f"{weights}: an exported file needs the model's registered name (for normalisation)")
            assert isinstance(backend, str) and weights is not None
            runtime = load_exported(weights, backend, info.input_multiple, threads, float_precision)
            if runtime.quantized and precision not in ("auto", "int8"):
                raise ConfigError(f"{weights}: an INT8 export; --precision {precision} needs a float export")
            if self.precision == "int8" and not runtime.quantized:
                raise ConfigError(
                    f"{weights}: a float export; precision int8 needs an INT8 export (dsnet export --int8 "
                    "--calib DATA) or the checkpoint with calibration images (--calib DATA)"
                )
            if runtime.quantized and self.precision != "int8":
                self.precision_reason = f"an INT8 export (its float parts in {self.precision})"
                self.precision = "int8"
            if runtime.model is not None and runtime.model != name:
                raise ConfigError(
                    f"{weights}: exported from {runtime.model}, not {name}; run it as that model "
                    f"(dsnet predict {runtime.model} ... --weights {weights})"
                )
            if num_classes is not None and runtime.num_classes is not None and num_classes != runtime.num_classes:
                raise ConfigError(f"{weights}: the export outputs {runtime.num_classes} classes, not {num_classes}")
            num_classes = num_classes or runtime.num_classes
            meta = runtime.metadata  # the label space of the weights it was exported from
        if source is not None:
            num_classes = check_num_classes(source.num_classes, num_classes, str(weights))
        if num_classes is None and dataset is None and isinstance(model_or_name, nn.Module):
            num_classes = getattr(model_or_name, "num_classes", None)
        described = label_space_from_metadata(meta, num_classes, str(weights)) if dataset is None else None
        if described is not None:
            self.labels: LabelSpace = described
        elif dataset is not None:
            self.labels = label_space(dataset, num_classes)
        else:
            self.labels = label_space(None, num_classes or 19)
        num_classes = self.labels.num_classes

        self.mean: tuple[float, float, float] = info.mean if info else IMAGENET_MEAN
        self.std: tuple[float, float, float] = info.std if info else IMAGENET_STD
        self.backend = backend_name
        if not isinstance(backend, str):
            assert info is not None
            self.model: nn.Module = LogitsFnModule(backend, info.input_multiple)
        elif runtime is None:
            if isinstance(model_or_name, nn.Module):
                model = model_or_name
                if source is not None:
                    load_weights(model, source.weights, fine_tuning=False)
            else:
                assert name is not None
                model = create_model(
                    name, num_classes=num_classes, weights=source.weights if source else None, fine_tuning=False
                )
            if backend == "torch":
                self.model = torch_module(model, self.device, deploy_form, self.precision)
            else:
                runtime = runtime_for(model, backend, threads, self.precision, calibration)
        if runtime is not None:
            self.model = runtime.module
            self._workdir = runtime.workdir  # an on-the-fly export's folder lives as long as the predictor
        self.model.eval()
        self.name = name
        self.batch_size = int(batch_size)
        self.large_image_pixels = large_image_pixels
        self.slide_crop = (int(slide_crop[0]), int(slide_crop[1]))
        self.input_limit: tuple[int, int] | None = getattr(self.model, "size", None)  # a static export's size
        #: scale each image to this long side (the weights' training size) unless options were given; a static
        #: export does so where the scaled image is its size (an export of the shipped model at 240x320 runs
        #: CamVid's 360x480 and 180x240 images as the model was trained), else it runs the image unscaled
        self.input_long_side = _input_long_side(meta, weights) if options is None else None
        self.options = options or InferenceOptions()
        if self.input_limit is not None and tuple(self.options.scales) != (1.0,):
            raise ConfigError(f"{weights}: a static export runs one input size, so no multi-scale views; use --dynamic")
        self._channels_last = self.backend == "torch" and deploy_form and self.device.type == "cpu"
        self._scale = (1.0 / (255.0 * torch.tensor(self.std, dtype=torch.float64))).float().view(1, 3, 1, 1)
        self._offset = -torch.tensor(self.mean, dtype=torch.float64) / torch.tensor(self.std, dtype=torch.float64)
        self._offset = self._offset.float().view(1, 3, 1, 1)

    @staticmethod
    def _model_name(model_or_name: str | nn.Module, meta: dict[str, str]) -> str | None:
        """The registered name: given, or from the metadata; a clash between the two is an error."""
        stored = meta.get("model")
        if isinstance(model_or_name, str):
            name = resolve_model_name(model_or_name)
            if stored and resolve_model_name(stored) != name:
                raise ConfigError(f"weights were trained for model {stored!r}, not {model_or_name!r}")
            return name
        return resolve_model_name(stored) if stored else None

    # ---------------------------------------------------------------------------------- labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.labels.classes

    @property
    def palette(self) -> tuple[Color, ...]:
        return self.labels.palette

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
        if self.input_limit is None:
            return options
        lh, lw = self.input_limit
        multiple = int(getattr(self.model, "input_multiple", 8))
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
        min_size = int(getattr(self.model, "min_size", 0))
        if not min_size:
            return None
        multiple = int(getattr(self.model, "input_multiple", 8))
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
        layout = torch.channels_last if self._channels_last else torch.contiguous_format
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        batch = batch.contiguous(memory_format=layout)
        batch.mul_(self._scale.to(self.device)).add_(self._offset.to(self.device))
        options = self.options_for(*batch.shape[-2:])
        scores = (
            predict_probs(self.model, batch, options) if return_probs else predict_scores(self.model, batch, options)
        )
        dtype = torch.uint8 if scores.shape[1] <= 256 else torch.int64
        labels = argmax_channels(scores).to(dtype).cpu().numpy()
        probs_np = scores.cpu().numpy() if return_probs else None
        return [Prediction(labels[i], probs_np[i] if probs_np is not None else None) for i in range(len(images))]
