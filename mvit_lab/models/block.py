"""The transformer block of the whole family: pooling attention + MLP, with a pooled skip path."""

from __future__ import annotations

import torch
from torch import nn

from mvit_lab.config import BlockSpec, pool_padding
from mvit_lab.models._layout import Units, from_grid, pool_tokens, to_grid
from mvit_lab.models.attention import MultiScaleAttention, pool_grid

__all__ = ["DropPath", "Mlp", "MultiScaleBlock"]


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, rows_per_sample: int = 1) -> torch.Tensor:
        """``rows_per_sample``: consecutive rows of ``x`` that belong to one sample (the kept
        units of a sparse forward) and are dropped together."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0] // rows_per_sample,) + (1,) * (x.ndim - 1))
        mask = mask.bernoulli_(keep).repeat_interleave(rows_per_sample, dim=0)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MultiScaleBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, widening and pooling as the spec says.

    Where the width changes, the skip path is ``proj(norm(x))`` of the branch that widens
    (attention: MViTv2 / Hiera; MLP: MViTv1). Where q is strided, the skip path is max-pooled to
    the new grid (overlapping kernel ``s + 1`` as in MViT, or kernel == stride as in Hiera).
    """

    def __init__(self, spec: BlockSpec, *, image: bool, pool_mode: str, has_cls: bool,
                 residual_pooling: bool, qkv_bias: bool, norm_eps: float,
                 residual_pooling_cls: bool = False, pool_first: bool = False) -> None:
        super().__init__()
        axes = slice(1, None) if image else slice(None)

        def per_axis(value: tuple[int, ...] | None) -> tuple[int, ...] | None:
            return None if value is None else tuple(value[axes])

        self.has_cls = has_cls
        self.in_grid = per_axis(spec.in_grid)
        self.project_in_attn = spec.project_in_attn
        self.norm1 = nn.LayerNorm(spec.dim, eps=norm_eps)
        self.attn = MultiScaleAttention(
            spec.dim, spec.attn_dim, spec.num_heads,
            in_grid=self.in_grid, q_grid=per_axis(spec.q_grid), kv_grid=per_axis(spec.kv_grid),
            pool_mode=pool_mode,
            q_kernel=per_axis(spec.q_kernel), q_stride=per_axis(spec.q_stride),
            kv_kernel=per_axis(spec.kv_kernel), kv_stride=per_axis(spec.kv_stride),
            q_window=per_axis(spec.q_window), kv_window=per_axis(spec.kv_window),
            rel_pos_size=per_axis(spec.rel_pos_size), residual_pooling=residual_pooling,
            residual_pooling_cls=residual_pooling_cls,
            has_cls=has_cls, qkv_bias=qkv_bias, norm_eps=norm_eps, pool_first=pool_first,
        )
        self.skip_pool = None
        if spec.skip_kernel is not None:
            kernel, stride = per_axis(spec.skip_kernel), per_axis(spec.q_stride)
            self.skip_pool = (kernel, stride, pool_padding(kernel, stride))
        self.proj = nn.Linear(spec.dim, spec.dim_out) if spec.dim != spec.dim_out else None
        self.norm2 = nn.LayerNorm(spec.attn_dim, eps=norm_eps)
        self.mlp = Mlp(spec.attn_dim, spec.mlp_hidden, spec.dim_out)
        self.drop_path = DropPath(spec.drop_path)

    def _pool_skip(self, x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        cls = None
        if self.has_cls:
            cls, x = x[:, :1], x[:, 1:]
        kernel, stride, padding = self.skip_pool
        if kernel == stride:
            x = pool_tokens(x, grid, stride, "max")  # [B, L', C]
        else:
            # [B, L, C] -> [B, 1, L, C] -> [B, C, *grid] -> pooled -> [B, L', C]
            g = pool_grid(to_grid(x.unsqueeze(1), grid), "max", kernel, stride, padding)
            x = from_grid(g, x.shape[0])[0].squeeze(1)
        return x if cls is None else torch.cat((cls, x), dim=1)

    def forward(self, x: torch.Tensor, units: Units | None = None) -> torch.Tensor:
        """Dense ``[B, (1 +) L, dim]`` tokens, or with ``units`` the sparse layout
        ``[B * U, Lu, dim]`` (pooling then runs inside each unit)."""
        x_norm = self.norm1(x)
        skip = self.proj(x_norm) if self.proj is not None and self.project_in_attn else x
        if self.skip_pool is not None:
            skip = self._pool_skip(skip, self.in_grid if units is None else
                                   units.grid(self.in_grid))
        rows = 1 if units is None else units.kept
        x = skip + self.drop_path(self.attn(x_norm, units), rows)
        x_norm = self.norm2(x)
        skip = self.proj(x_norm) if self.proj is not None and not self.project_in_attn else x
        return skip + self.drop_path(self.mlp(x_norm), rows)
