"""The mechanics of one optimiser step, shared by both trainers: the learning rate, the batch on its
device, autocast and gradient accumulation under DDP (gradients synchronised on the last micro-batch
only), AMP loss scaling, gradient clipping; and the resumable stream of training batches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..hardware import resolve_amp
from .distributed import DistEnv
from .sampler import resumable_train_loader

__all__ = ["StepMechanics"]


class StepMechanics:
    """Step helpers for a trainer that has ``cfg`` (``data``, ``optim``, ``model``, ``train`` sections),
    ``env``, ``train_set``, ``model``, the ``ddp`` module to call, ``optimizer`` and ``iteration``."""

    cfg: Any
    env: DistEnv
    train_set: Any
    model: nn.Module
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    iteration: int
    #: an exponential moving average of ``model`` updated after each optimiser step, or None
    ema: Any = None
    #: why ``optim.amp`` is what it is (``auto``'s choice is logged at the start of the run)
    amp_reason = ""

    def _setup_amp(self) -> None:
        """Resolve ``optim.amp`` (``auto``: bf16 where the device computes it natively) and write the choice
        back into the config, so that ``config.yaml``, checkpoints and a resumed run keep it."""
        amp, self.amp_reason = resolve_amp(self.cfg.optim.amp, self.env.device)
        self.cfg.optim.amp = amp
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler(
            self.env.device.type, enabled=(amp == "fp16" and self.env.device.type == "cuda")
        )

    # --- one step ---------------------------------------------------------------------------------
    def _loader(self) -> Iterator[Any]:
        d = self.cfg.data
        batches, self.batches_per_epoch = resumable_train_loader(
            self.train_set,  # indexed by (index, epoch): augmentation seeded per sample
            d.batch_size,
            d.num_workers,
            rank=self.env.rank,
            world_size=self.env.world_size,
            seed=self.cfg.train.seed,
            start_iter=self.iteration * self.cfg.optim.grad_accum,
            pin_memory=self.env.device.type == "cuda",
        )
        return batches

    def _start_step(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.ddp.train()

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.env.device, non_blocking=True)
        labels = labels.to(self.env.device, non_blocking=True)
        if self.cfg.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    def _forward_backward(self, images: torch.Tensor, targets: Any, micro: int, criterion: Callable) -> tuple[Any, Any]:
        """Forward (under autocast), ``criterion(outputs, targets)`` and backward of micro-batch ``micro``
        (DDP syncs gradients on the last one); the outputs and the loss."""
        accum = self.cfg.optim.grad_accum
        last = micro == accum - 1 or not isinstance(self.ddp, DDP)
        with contextlib.nullcontext() if last else self.ddp.no_sync():  # type: ignore[operator]
            with torch.autocast(self.env.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                outputs = self.ddp(images)
            loss = criterion(outputs, targets)
            self.scaler.scale(self._loss_tensor(loss) / accum).backward()
        return outputs, loss

    def _loss_tensor(self, loss: Any) -> torch.Tensor:
        """The tensor to differentiate in what the criterion returned."""
        return loss

    def _optimizer_step(self) -> None:
        """Apply the accumulated gradients (clipped when asked); the caller counts the iteration."""
        clip = self.cfg.optim.clip_grad_norm
        if clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
