"""The batch on the device: uint8 pixels to normalised floats, then (training) timm's random
erasing and mixup / cutmix with soft targets, and the loss that goes with them.

Images are ``[B, C, H, W]``, clips ``[B, C, T, H, W]``; evaluation views add a view axis after
the batch. Erasing and cutmix act on the last two (spatial) axes and treat a clip's channels
and frames as one stack, so a clip gets one box, the same in every frame.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy

__all__ = ["BatchPrep"]


class BatchPrep:
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 cfg: Any = None, num_classes: int = 0, repeated: int = 1) -> None:
        """``cfg``: the TrainConfig whose erasing, mixup and label smoothing apply in
        ``train``; None for inputs only (evaluation, MAE pretraining). ``repeated``: the
        augmented copies per sample (``[B, k, ...]`` batches)."""
        self.mean = torch.tensor(mean, device=device) * 255
        self.std = torch.tensor(std, device=device) * 255
        self.device, self.repeated = device, repeated
        self.erasing = self.mixup = None
        self.smoothing = 0.0
        self.soft_loss = SoftTargetCrossEntropy()
        if cfg is None:
            return
        self.smoothing = cfg.label_smoothing
        if cfg.random_erasing > 0:
            from timm.data.random_erasing import RandomErasing

            self.erasing = RandomErasing(cfg.random_erasing, mode="pixel", max_count=1,
                                         device=str(device))
        if cfg.mixes:
            from timm.data import Mixup

            self.mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix,
                               prob=cfg.mixup_prob, switch_prob=cfg.mixup_switch_prob,
                               mode="batch", label_smoothing=cfg.label_smoothing,
                               num_classes=num_classes)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 on the host -> normalised float32 on the device."""
        x = x.to(self.device, non_blocking=True)
        if x.dtype != torch.uint8:
            return x
        shape = (-1, 1, 1, 1) if x.ndim >= 5 else (-1, 1, 1)  # channels before [T,] H, W
        return x.float().sub_(self.mean.reshape(shape)).div_(self.std.reshape(shape))

    def train(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch: repeated views flattened into it, normalised, erased, mixed.
        The targets are class indices, or soft ``[B, classes]`` rows under mixup."""
        if self.repeated > 1:  # [B, k, ...] -> [B * k, ...]
            x = x.flatten(0, 1)
            y = y.repeat_interleave(self.repeated)
        x, y = self.inputs(x), y.to(self.device, non_blocking=True)
        if self.erasing is None and self.mixup is None:
            return x, y
        flat = x.flatten(1, 2) if x.ndim == 5 else x  # [B, C * T, H, W]: one box per clip
        if self.erasing is not None:
            flat = self.erasing(flat)
        if self.mixup is not None:
            flat, y = self.mixup(flat, y)
        return flat.view_as(x), y

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 2:  # soft targets from mixup, label smoothing included
            return self.soft_loss(logits, y)
        return F.cross_entropy(logits, y, label_smoothing=self.smoothing)
