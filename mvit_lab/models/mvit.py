"""The generator: one ``MultiscaleViT`` class builds any model an ``ArchConfig`` describes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mvit_lab.config import ArchConfig, expand_blocks
from mvit_lab.masking import check_sparse, keep_from_ids, unit_counts
from mvit_lab.models._layout import Units
from mvit_lab.models.block import MultiScaleBlock

__all__ = ["Head", "MultiscaleViT", "PatchEmbed"]


class PatchEmbed(nn.Module):
    """Strided conv stem: ``[B, C, *input]`` -> ``[B, embed_dim, *grid]`` (2-D for images)."""

    def __init__(self, in_chans: int, dim: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...]) -> None:
        super().__init__()
        conv = nn.Conv2d if len(kernel) == 2 else nn.Conv3d
        self.proj = conv(in_chans, dim, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Head(nn.Module):
    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


class MultiscaleViT(nn.Module):
    """MViTv1, MViTv2, Hiera and everything between, from one validated ``ArchConfig``.

    ``forward`` takes ``[B, C, H, W]`` (image configs, ``input_size[0] == 1``) or
    ``[B, C, T, H, W]`` (video) and always returns logits ``[B, num_classes]``.
    """

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        axes = slice(1, None) if cfg.is_image else slice(None)
        self.input_size = cfg.input_size[axes]
        self.grid = cfg.patch_grid[axes]
        self.num_prefix = int(cfg.cls_token)
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.in_chans, dim, cfg.patch_kernel[axes],
                                      cfg.patch_stride[axes], cfg.patch_padding[axes])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cfg.cls_token else None
        self.pos_embed = self.pos_embed_spatial = self.pos_embed_temporal = None
        self.pos_embed_cls = None
        if cfg.abs_pos == "joint":
            n_tokens = self.num_prefix + math.prod(self.grid)
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))
        elif cfg.abs_pos == "separate":
            t, h, w = self.grid
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
            if cfg.cls_token:
                self.pos_embed_cls = nn.Parameter(torch.zeros(1, 1, dim))
        specs = expand_blocks(cfg)
        self.blocks = nn.ModuleList(
            MultiScaleBlock(spec, image=cfg.is_image, pool_mode=cfg.pool_mode,
                            has_cls=cfg.cls_token, residual_pooling=cfg.residual_pooling,
                            residual_pooling_cls=cfg.residual_pooling_cls,
                            qkv_bias=cfg.qkv_bias, norm_eps=cfg.norm_eps,
                            pool_first=cfg.pool_first)
            for spec in specs
        )
        self.stage_ends = tuple(i for i, s in enumerate(specs)
                                if i == len(specs) - 1 or specs[i + 1].stage != s.stage)
        self.stage_grids = tuple(specs[i].q_grid[axes] for i in self.stage_ends)
        self._unit_counts: tuple[int, ...] | None = None  # set by the first sparse forward
        self.grad_checkpointing = False  # set_grad_checkpointing: recompute blocks in backward
        self.norm = nn.LayerNorm(cfg.num_features, eps=cfg.norm_eps)
        self.head = Head(cfg.num_features, cfg.num_classes, cfg.head_dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.cls_token, self.pos_embed, self.pos_embed_spatial,
                  self.pos_embed_temporal, self.pos_embed_cls):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- input ---------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.is_image and x.ndim == 5 and x.shape[2] == 1:
            x = x.squeeze(2)  # a one-frame clip is an image
        want = (self.cfg.in_chans, *self.input_size)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            kind = "[B, C, H, W]" if self.cfg.is_image else "[B, C, T, H, W]"
            raise ValueError(f"input: expected {kind} = [B, {', '.join(map(str, want))}] "
                             f"(input_size {self.cfg.input_size}), got {list(x.shape)}")
        return x

    def _embed(self, x: torch.Tensor, units: Units | None = None) -> torch.Tensor:
        x = self._check_input(x)
        if units is not None:
            # zero the dropped units' pixels, so an overlapping stem kernel cannot see them
            keep = keep_from_ids(units.ids, math.prod(units.counts)).to(x.dtype)
            keep = F.interpolate(keep.reshape(-1, 1, *units.counts), size=x.shape[2:])
            x = x * keep
        x = self.patch_embed(x)  # [B, C, *grid]
        x = x.flatten(2).transpose(1, 2)  # [B, L, C]
        if self.pos_embed_spatial is not None:
            t = self.grid[0]
            pos = (self.pos_embed_spatial.repeat(1, t, 1)
                   + self.pos_embed_temporal.repeat_interleave(x.shape[1] // t, dim=1))
            x = x + pos
        if self.cls_token is not None:
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            if self.pos_embed_cls is not None:
                cls = cls + self.pos_embed_cls
            x = torch.cat((cls, x), dim=1)  # [B, 1 + L, C]
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return x

    # -- forward -------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per block (timm's name): a training forward keeps only each
        block's input and recomputes the block in backward, trading about a third more compute
        for activation memory (the L and H models at large batches)."""
        self.grad_checkpointing = enable

    def _block(self, block: nn.Module, x: torch.Tensor, units: Units | None = None,
               ) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            # non-reentrant: works under torch.compile, and restores the RNG state, so drop
            # path draws the same mask when the block is recomputed
            return checkpoint(block, x, units, use_reentrant=False)
        return block(x, units)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block, ``[B, (1 +) L, num_features]``, before the head's norm."""
        x = self._embed(x)
        for block in self.blocks:
            x = self._block(block, x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.head_norm == "before":
            x = self.norm(x)
        x = x[:, 0] if self.cfg.head_pool == "cls" else x[:, self.num_prefix:].mean(dim=1)
        if self.cfg.head_norm == "after":
            x = self.norm(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def units(self, ids: torch.Tensor) -> Units:
        """The ``Units`` of a sparse forward that keeps mask units ``ids`` (``[B, U]``)."""
        if self._unit_counts is None:
            check_sparse(self.cfg)  # raises, naming the knob, where it cannot run sparsely
            self._unit_counts = unit_counts(self.cfg)[slice(1, None) if self.cfg.is_image
                                                      else slice(None)]
        n = math.prod(self._unit_counts)
        if ids.ndim != 2 or ids.dtype != torch.long or ids.shape[1] > n:
            raise ValueError(f"ids: expected int64 [batch, kept units <= {n}], got {ids.dtype} "
                             f"{list(ids.shape)}")
        return Units(self._unit_counts, ids)

    def forward_sparse(self, x: torch.Tensor, ids: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output when only the mask units ``ids`` (``[B, U]``, ascending raster
        indices, see ``mvit_lab.masking``) are kept: ``[B, U, *unit grid, C]``, the unit grid
        being one unit's tokens at that stage. Dropped units never enter the sequence."""
        units = self.units(ids)
        x = units.gather(self._embed(x, units), self.grid)  # [B * U, Lu, C]
        maps = []
        ends = dict(zip(self.stage_ends, self.stage_grids))
        for i, block in enumerate(self.blocks):
            x = self._block(block, x, units)
            if i in ends:
                maps.append(x.reshape(units.batch, units.kept, *units.grid(ends[i]), -1))
        return maps

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output as a feature map ``[B, C, *grid]`` (cls token dropped)."""
        x = self._embed(x)
        maps = []
        ends = dict(zip(self.stage_ends, self.stage_grids))
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                tokens = x[:, self.num_prefix:]  # [B, L, C]
                maps.append(tokens.transpose(1, 2).reshape(x.shape[0], -1, *ends[i]))
        return maps
