"""Optimisation: AdamW parameter groups (no weight decay on 1-D parameters and position
tables; layer-wise lr decay per block through timm), the warm-up + cosine schedule, lr scaled
by the global batch, and optimizer steps with gradient accumulation and clipping."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

__all__ = ["Stepper", "accumulation_steps", "build_optimizer", "lr_at", "param_groups",
           "set_lr"]

log = logging.getLogger(__name__)

_POSITION = ("pos_embed", "rel_pos", "cls_token")


def _no_decay(name: str, p: torch.Tensor, no_decay_pos: bool) -> bool:
    if p.ndim <= 1 or name.split(".")[-1] == "mask_token":
        return True
    return no_decay_pos and any(word in name for word in _POSITION)


class _Layers(nn.Module):
    """The model seen by timm's ``param_groups_layer_decay``: the stem is layer 0, block
    ``i`` layer ``i + 1``, the final norm and the head the top layer (BEiT / MAE's layer ids)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^inner\.(?:cls_token|mask_token|pos_embed|patch_embed)",
                    blocks=[(r"^inner\.blocks\.(\d+)", None), (r"^inner\.norm", (99999,))])


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None,
                 no_decay_pos: bool = True) -> list[dict[str, Any]]:
    """AdamW groups; each carries ``lr_scale`` (1 without layer decay) for ``set_lr``."""
    if layer_decay is None:
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if _no_decay(name, p, no_decay_pos) else decay).append(p)
        return [dict(params=decay, weight_decay=weight_decay, lr_scale=1.0),
                dict(params=no_decay, weight_decay=0.0, lr_scale=1.0)]
    from timm.optim import param_groups_layer_decay

    skip = [f"inner.{n}" for n, p in model.named_parameters() if _no_decay(n, p, no_decay_pos)]
    return param_groups_layer_decay(_Layers(model), weight_decay, no_weight_decay_list=skip,
                                    layer_decay=layer_decay)


def build_optimizer(model: nn.Module, cfg: Any, weight_decay: float | None = None,
                    layer_decay: float | None = None, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` with ``cfg.betas`` (a TrainConfig or PretrainConfig);
    ``fused`` picks torch's fused kernel (CUDA)."""
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    groups = param_groups(model, wd, layer_decay, getattr(cfg, "no_decay_pos", True))
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=1.0, betas=tuple(cfg.betas), **extra)  # lr: set_lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float,
          start_lr: float = 0.0) -> float:
    """Linear warm-up from ``start_lr`` to ``lr``, then a cosine to ``min_lr`` at ``total``."""
    if step < warmup:
        return start_lr + (lr - start_lr) * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def accumulation_steps(section: str, batch_size: int, global_batch: int | None,
                       devices: int) -> int:
    """Micro-batches per optimizer step that reach ``global_batch`` on ``devices``."""
    if global_batch is None:
        return 1
    per_step = batch_size * devices
    if global_batch % per_step:
        raise ValueError(f"{section}.global_batch: {global_batch} is not a multiple of "
                         f"{section}.batch_size {batch_size} x {devices} device(s); choose a "
                         f"batch size that divides it")
    return global_batch // per_step


class Stepper:
    """Backward through the (float16) grad scaler; every ``accum`` micro-batches (or at the
    end of an epoch) unscale, clip the gradient norm, step, and zero the gradients."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
                 clip_grad: float | None, accum: int = 1) -> None:
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.clip_grad, self.accum, self.pending = clip_grad, accum, 0
        self.steps = 0  # optimizer steps taken
        optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, last: bool = False) -> bool:
        """Accumulate ``loss``; True when this call stepped the optimizer."""
        self.scaler.scale(loss / self.accum).backward()
        self.pending += 1
        if self.pending < self.accum and not last:
            return False
        if self.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.pending = 0
        self.steps += 1
        return True
