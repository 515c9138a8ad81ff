"""Token layout helpers: the only place that reshapes between token lists, grids and windows.

Tokens are kept in raster order over the grid ``(T, H, W)`` (image models drop ``T``: their
grid is ``(H, W)``), after an optional leading cls token. Per-head tensors are
``[B, heads, L, head_dim]``.

Mask-unit attention folds the windows into the batch dimension, so attention runs on plain
4-D tensors and the fused ``scaled_dot_product_attention`` kernels apply::

    [B, heads, n1*w1 * n2*w2 (* n3*w3), hd]           raster order over the grid
        -> [B * n1*n2(*n3), heads, w1*w2(*w3), hd]     one row of the batch per window

where ``n_i = grid_i // window_i``. ``window_merge`` undoes it and also merges the heads,
giving ``[B, L, heads * hd]`` ready for the output projection.

A sparse (MAE) forward keeps only some mask units and drops the rest from the sequence. Its
tokens are unit-major, one row of the batch per kept unit, each unit's tokens in raster order
over the unit's own grid::

    [B * U, prod(unit grid), C]      U kept units per sample, the same U for every sample

``Units`` says which units were kept; the number of units along each axis is the same at
every depth (a unit shrinks with the grid as q is pooled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Units", "from_grid", "heads_merge", "to_grid", "window_merge", "window_partition"]


def to_grid(x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """``[B, heads, L, hd]`` -> ``[B * heads, hd, *grid]`` (channels-first, for conv / pool)."""
    b, h, _, d = x.shape
    # [B, heads, L, hd] -> [B, heads, hd, L] -> [B * heads, hd, *grid]
    return x.transpose(2, 3).reshape(b * h, d, *grid)


def from_grid(x: torch.Tensor, batch: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[B * heads, hd, *grid]`` -> ``([B, heads, L, hd], grid)``."""
    grid = tuple(x.shape[2:])
    bh, d = x.shape[:2]
    # [B * heads, hd, *grid] -> [B, heads, hd, L] -> [B, heads, L, hd]
    return x.reshape(batch, bh // batch, d, -1).transpose(2, 3), grid


def window_partition(x: torch.Tensor, grid: tuple[int, ...],
                     window: tuple[int, ...]) -> torch.Tensor:
    """``[B, heads, L, hd]`` -> ``[B * num_windows, heads, prod(window), hd]``."""
    b, h, _, d = x.shape
    nd = len(grid)
    split = [v for g, w in zip(grid, window) for v in (g // w, w)]
    # [B, heads, n1, w1, n2, w2, (n3, w3), hd]
    x = x.reshape(b, h, *split, d)
    outer = [2 + 2 * i for i in range(nd)]
    inner = [3 + 2 * i for i in range(nd)]
    # -> [B, n1, n2, (n3), heads, w1, w2, (w3), hd]
    x = x.permute(0, *outer, 1, *inner, 2 * nd + 2)
    return x.reshape(-1, h, math.prod(window), d)


def window_merge(x: torch.Tensor, batch: int, grid: tuple[int, ...],
                 window: tuple[int, ...]) -> torch.Tensor:
    """``[B * num_windows, heads, prod(window), hd]`` -> ``[B, L, heads * hd]``."""
    _, h, _, d = x.shape
    nd = len(grid)
    counts = [g // w for g, w in zip(grid, window)]
    # [B, n1, n2, (n3), heads, w1, w2, (w3), hd]
    x = x.reshape(batch, *counts, h, *window, d)
    # -> [B, n1, w1, n2, w2, (n3, w3), heads, hd]
    order = [0]
    for i in range(nd):
        order += [1 + i, 2 + nd + i]
    x = x.permute(*order, 1 + nd, 2 + 2 * nd)
    return x.reshape(batch, -1, h * d)


def heads_merge(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, L, hd]`` -> ``[B, L, heads * hd]``."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)



def pool_tokens(x: torch.Tensor, grid: tuple[int, ...], stride: tuple[int, ...],
                mode: str) -> torch.Tensor:
    """Non-overlapping max / mean pooling (kernel == stride) of tokens ``[..., L, C]``.

    Done in token layout as a reshape and a reduction, the way Hiera pools: no transpose to
    channels-first and no argmax indices::

        [..., n1*s1 * n2*s2 (* n3*s3), C] -> [..., n1, s1, n2, s2, (n3, s3), C] -> [..., L', C]
    """
    lead = x.shape[:-2]
    split = [v for g, s in zip(grid, stride) for v in (g // s, s)]
    x = x.reshape(*lead, *split, x.shape[-1])
    # one axis at a time: a reduction over several non-adjacent dims is ~20x slower on CPU
    for i in range(len(grid)):
        dim = len(lead) + 1 + i  # earlier reductions removed one dim each
        x = x.amax(dim=dim) if mode == "max" else x.mean(dim=dim)
    return x.reshape(*lead, -1, x.shape[-1])


@dataclass(frozen=True, eq=False)
class Units:
    """The mask units a sparse forward keeps: ``ids[b]`` are sample ``b``'s kept units, as
    ascending raster indices over ``counts`` (units per axis)."""

    counts: tuple[int, ...]
    ids: torch.Tensor  # [B, U] int64

    @property
    def batch(self) -> int:
        return self.ids.shape[0]

    @property
    def kept(self) -> int:
        return self.ids.shape[1]

    def grid(self, full: tuple[int, ...]) -> tuple[int, ...]:
        """One unit's token grid when the whole token grid is ``full``."""
        return tuple(g // c for g, c in zip(full, self.counts))

    def coords(self, full: tuple[int, ...]) -> torch.Tensor:
        """``[B, U * prod(unit grid), ndim]``: each kept token's position on ``full``, in the
        unit-major order of sparse tokens."""
        unit = self.grid(full)
        nd = len(unit)
        strides = [math.prod(self.counts[a + 1:]) for a in range(nd)]
        unit_pos = torch.stack([(self.ids // s) % c for s, c in zip(strides, self.counts)], -1)
        inner = torch.stack(torch.meshgrid(*(torch.arange(u, device=self.ids.device)
                                             for u in unit), indexing="ij"), -1)
        size = torch.tensor(unit, device=self.ids.device)
        # [B, U, 1, nd] * unit + [Lu, nd] -> [B, U, Lu, nd]
        pos = unit_pos[:, :, None, :] * size + inner.reshape(1, 1, -1, nd)
        return pos.reshape(self.batch, -1, nd)

    def gather(self, x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Tokens ``[B, L, C]`` in raster order over ``grid`` -> the kept units'
        ``[B * U, prod(unit grid), C]``."""
        unit = self.grid(grid)
        # [B, L, C] -> [B * num_units, 1, Lu, C] -> [B, num_units, Lu, C]
        x = window_partition(x.unsqueeze(1), grid, unit).reshape(
            self.batch, -1, math.prod(unit), x.shape[-1])
        idx = self.ids[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return x.gather(1, idx).flatten(0, 1)

    def scatter(self, x: torch.Tensor, fill: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """The kept units' ``[B * U, Lu, C]`` put back on ``grid`` as raster-ordered
        ``[B, L, C]``, every dropped unit's tokens set to ``fill`` (``[C]``)."""
        unit = self.grid(grid)
        n_units, lu, c = math.prod(self.counts), math.prod(unit), x.shape[-1]
        full = fill.to(x.dtype).expand(self.batch, n_units, lu, c).clone()
        idx = self.ids[:, :, None, None].expand(-1, -1, lu, c)
        full = full.scatter(1, idx, x.reshape(self.batch, -1, lu, c))
        # [B, num_units, Lu, C] -> [B * num_units, 1, Lu, C] -> [B, L, C]
        return window_merge(full.reshape(-1, 1, lu, c), self.batch, grid, unit)
