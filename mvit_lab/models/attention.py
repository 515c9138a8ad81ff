"""Multiscale attention: one class for MViTv1, MViTv2 and Hiera, with switches.

q, k and v can each be pooled on their token grid (depthwise conv + LayerNorm, max or avg);
attention can be global or restricted to mask-unit windows; MViTv2's decomposed relative
positions enter ``scaled_dot_product_attention`` as an additive bias; residual pooling adds
the pooled q to the output (not to the cls token, as in the original MViTv2; timm adds it to
the cls token too, which ``residual_pooling_cls`` reproduces).

``pool_first`` switches the order of pooling and projection (MViT's ``POOL_FIRST``): the input
is split into heads of ``dim // num_heads`` channels, pooled for q, k and v, and each pooled
tensor is projected by its own linear (``q``, ``k``, ``v``: the token counts differ), as in
SlowFast's ``MultiScaleAttention``. Everything after the projection is shared.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mvit_lab.config import pool_padding
from mvit_lab.models._layout import (
    Units,
    from_grid,
    heads_merge,
    pool_tokens,
    to_grid,
    window_merge,
    window_partition,
)

__all__ = ["MultiScaleAttention", "Pool", "pool_grid", "rel_pos_bias", "rel_pos_bias_at",
           "rel_pos_index"]

_AXES = "xyz"


def pool_grid(x: torch.Tensor, mode: str, kernel: tuple[int, ...], stride: tuple[int, ...],
              padding: tuple[int, ...]) -> torch.Tensor:
    """Parameter-free max / avg pooling of ``[N, C, *grid]`` with a 2-D or 3-D kernel.

    Average pooling counts the zero padding (``count_include_pad``, as the references).
    """
    if mode == "max":
        pool = F.max_pool2d if len(kernel) == 2 else F.max_pool3d
        return pool(x, kernel, stride, padding)
    if any(padding):
        # avg_pool3d rejects a grid smaller than the kernel even when padding covers it;
        # explicit zero padding gives the same count_include_pad result without that check
        x = F.pad(x, [p for p in reversed(padding) for _ in range(2)])
    pool = F.avg_pool2d if len(kernel) == 2 else F.avg_pool3d
    return pool(x, kernel, stride)


class Pool(nn.Module):
    """Pools per-head tokens ``[B, heads, (1 +) L, hd]`` on their grid; the cls token is kept."""

    def __init__(self, mode: str, head_dim: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                 norm_eps: float) -> None:
        super().__init__()
        self.mode, self.kernel, self.stride = mode, kernel, stride
        self.padding = pool_padding(kernel, stride)
        self.conv: nn.Module | None = None
        self.norm: nn.Module | None = None
        if mode == "conv":
            conv = nn.Conv2d if len(kernel) == 2 else nn.Conv3d
            self.conv = conv(head_dim, head_dim, kernel, stride, self.padding, groups=head_dim,
                             bias=False)
            self.norm = nn.LayerNorm(head_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], has_cls: bool) -> torch.Tensor:
        cls = None
        if has_cls:
            cls, x = x[:, :, :1], x[:, :, 1:]
        if self.conv is None and self.kernel == self.stride:
            x = pool_tokens(x, grid, self.stride, self.mode)  # [B, heads, L', hd]
        else:
            g = to_grid(x, grid)  # [B * heads, hd, *grid]
            g = self.conv(g) if self.conv is not None else pool_grid(
                g, self.mode, self.kernel, self.stride, self.padding)
            x, _ = from_grid(g, x.shape[0])  # [B, heads, L', hd]
        if cls is not None:
            x = torch.cat((cls, x), dim=2)
        if self.norm is not None:
            x = self.norm(x)
        return x


def rel_pos_index(q_size: int, k_size: int) -> torch.Tensor:
    """``[q_size, k_size]`` indices into a table of length ``2 * max(q, k) - 1``.

    When q and k have different resolutions, the coarser side's coordinates are scaled up so
    that distances are measured on the finer grid (MViTv2).
    """
    q_ratio = max(k_size / q_size, 1.0)
    k_ratio = max(q_size / k_size, 1.0)
    dist = (torch.arange(q_size)[:, None] * q_ratio - torch.arange(k_size)[None, :] * k_ratio
            + (k_size - 1) * k_ratio)
    return dist.long()


def rel_pos_bias(q: torch.Tensor, q_size: tuple[int, ...], k_size: tuple[int, ...],
                 tables: list[torch.Tensor | None]) -> torch.Tensor:
    """Decomposed relative-position bias ``[B, heads, Lq, Lk]`` from un-scaled queries.

    ``q`` is ``[B, heads, Lq, hd]`` over the grid ``q_size``; ``tables[a]`` is the already
    gathered ``[q_a, k_a, hd]`` embedding of axis ``a`` (None: the axis has no term).
    bias[i, j] = sum_a q_i . R_a[pos_a(i) - pos_a(j)].
    """
    b, h, _, d = q.shape
    nd = len(q_size)
    letters = _AXES[:nd]
    r_q = q.reshape(b, h, *q_size, d)  # [B, heads, *q_size, hd]
    bias = None
    for axis, table in enumerate(tables):
        if table is None:
            continue
        a = letters[axis]
        # [B, heads, *q_size, k_a]
        term = torch.einsum(f"bn{letters}c,{a}kc->bn{letters}k", r_q, table)
        shape = [b, h, *q_size] + [1] * nd
        shape[2 + nd + axis] = k_size[axis]
        term = term.reshape(shape)  # broadcastable to [B, heads, *q_size, *k_size]
        bias = term if bias is None else bias + term
    assert bias is not None
    bias = bias.expand(b, h, *q_size, *k_size)
    return bias.reshape(b, h, math.prod(q_size), math.prod(k_size))


def rel_pos_bias_at(q: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor,
                    tables: list[torch.Tensor | None]) -> torch.Tensor:
    """The decomposed relative-position bias ``[B, heads, Lq, Lk]`` of tokens at arbitrary
    positions (a sparse forward keeps only some of the grid).

    ``q_pos`` ``[B, Lq, ndim]`` and ``k_pos`` ``[B, Lk, ndim]`` are positions on the full grids
    that ``tables[a]`` (``[q_a, k_a, hd]``, as for ``rel_pos_bias``) were gathered for.
    """
    b, h, lq, _ = q.shape
    lk = k_pos.shape[1]
    bias = None
    for axis, table in enumerate(tables):
        if table is None:
            continue
        rows = table[q_pos[..., axis]]  # [B, Lq, k_a, hd]: each query's row of the table
        term = torch.einsum("bhqc,bqkc->bhqk", q, rows)  # [B, heads, Lq, k_a]
        term = term.gather(-1, k_pos[:, None, None, :, axis].expand(b, h, lq, lk))
        bias = term if bias is None else bias + term
    assert bias is not None
    return bias


class MultiScaleAttention(nn.Module):
    """Pooling attention over ``[B, (1 +) L, dim]`` tokens, returning ``[B, (1 +) L', attn_dim]``.

    Grids, strides, kernels and windows are per axis, 2 entries for image models ``(H, W)``
    and 3 for video ``(T, H, W)``; ``rel_pos_size`` has an entry per axis, 0 for no term.
    """

    def __init__(
        self,
        dim: int,
        attn_dim: int,
        num_heads: int,
        *,
        in_grid: tuple[int, ...],
        q_grid: tuple[int, ...],
        kv_grid: tuple[int, ...],
        pool_mode: str = "conv",
        q_kernel: tuple[int, ...] | None = None,
        q_stride: tuple[int, ...] | None = None,
        kv_kernel: tuple[int, ...] | None = None,
        kv_stride: tuple[int, ...] | None = None,
        q_window: tuple[int, ...] | None = None,
        kv_window: tuple[int, ...] | None = None,
        rel_pos_size: tuple[int, ...] | None = None,
        residual_pooling: bool = False,
        residual_pooling_cls: bool = False,
        has_cls: bool = False,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        pool_first: bool = False,
    ) -> None:
        super().__init__()
        self.pool_first = pool_first
        self.num_heads = num_heads
        self.head_dim = attn_dim // num_heads
        self.attn_dim = attn_dim
        self.in_grid, self.q_grid, self.kv_grid = in_grid, q_grid, kv_grid
        self.q_window, self.kv_window = q_window, kv_window
        self.residual_pooling = residual_pooling
        self.residual_pooling_cls = residual_pooling_cls
        self.has_cls = has_cls
        if pool_first:  # pooled q and k / v have different token counts: three linears
            self.q = nn.Linear(dim, attn_dim, bias=qkv_bias)
            self.k = nn.Linear(dim, attn_dim, bias=qkv_bias)
            self.v = nn.Linear(dim, attn_dim, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, 3 * attn_dim, bias=qkv_bias)
        self.proj = nn.Linear(attn_dim, attn_dim)
        self.pool_q = self.pool_k = self.pool_v = None
        pool_dim = dim // num_heads if pool_first else self.head_dim  # channels per head pooled
        if q_kernel is not None:
            self.pool_q = Pool(pool_mode, pool_dim, q_kernel, q_stride, norm_eps)
        if kv_kernel is not None:
            self.pool_k = Pool(pool_mode, pool_dim, kv_kernel, kv_stride, norm_eps)
            self.pool_v = Pool(pool_mode, pool_dim, kv_kernel, kv_stride, norm_eps)
        # windows can be cut before the projection when no pooling reaches across them
        self._windows_first = (
            q_window is not None and self.pool_k is None and not has_cls and not pool_first
            and (self.pool_q is None or (self.pool_q.conv is None and q_kernel == q_stride)))
        self.rel_pos_h = self.rel_pos_w = self.rel_pos_t = None
        self._rel_axes: list[str | None] = []
        if rel_pos_size is not None:
            names = ("rel_pos_h", "rel_pos_w") if len(q_grid) == 2 else (
                "rel_pos_t", "rel_pos_h", "rel_pos_w")
            q_span, k_span = q_window or q_grid, kv_window or kv_grid
            for axis, (name, length) in enumerate(zip(names, rel_pos_size)):
                if length == 0:
                    self._rel_axes.append(None)
                    continue
                table = nn.Parameter(torch.zeros(length, self.head_dim))
                nn.init.trunc_normal_(table, std=0.02)
                setattr(self, name, table)
                self.register_buffer(f"{name}_index", rel_pos_index(q_span[axis], k_span[axis]),
                                     persistent=False)
                self._rel_axes.append(name)

    def _rel_tables(self) -> list[torch.Tensor | None]:
        return [None if name is None else getattr(self, name)[getattr(self, f"{name}_index")]
                for name in self._rel_axes]

    def forward(self, x: torch.Tensor, units: Units | None = None) -> torch.Tensor:
        """``[B, (1 +) L, dim]`` -> ``[B, (1 +) L', attn_dim]``; with ``units``, the sparse
        layout ``[B * U, Lu, dim]`` -> ``[B * U, Lu', attn_dim]`` (see ``Units``)."""
        if units is not None:
            return self._forward_units(x, units)
        b = x.shape[0]
        if self._windows_first:
            return self._forward_windows_first(x)
        # each [B, heads, (1 +) L', hd], L' the pooled token count
        q, k, v = self._pooled_qkv(x, self.in_grid, self.has_cls)
        if self.q_window is None:
            out = self._attend(q, k, v, self._bias(q, self.q_grid, self.kv_grid))
            return self.proj(heads_merge(out))  # [B, (1 +) Lq, attn_dim]
        # [B * windows, heads, tokens per window, hd]; no cls token here (validation).
        # Three plain copies: one rank-10 permute of the whole qkv measured 5x slower.
        q = window_partition(q, self.q_grid, self.q_window)
        k = window_partition(k, self.kv_grid, self.kv_window)
        v = window_partition(v, self.kv_grid, self.kv_window)
        out = self._attend(q, k, v, self._bias(q, self.q_window, self.kv_window))
        return self.proj(window_merge(out, b, self.q_grid, self.q_window))  # [B, Lq, attn_dim]

    def _pooled_qkv(self, x: torch.Tensor, grid: tuple[int, ...], has_cls: bool,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B', (1 +) N, dim]`` on ``grid`` -> q, k, v, each ``[B', heads, (1 +) L', hd]``
        after their pooling: project then pool, or with ``pool_first`` pool then project."""
        if not self.pool_first:
            q, k, v = self._qkv(x)
            if self.pool_q is not None:
                q = self.pool_q(q, grid, has_cls)
            if self.pool_k is not None:
                k = self.pool_k(k, grid, has_cls)
                v = self.pool_v(v, grid, has_cls)
            return q, k, v
        b, n, dim = x.shape
        xh = x.reshape(b, n, self.num_heads, dim // self.num_heads).transpose(1, 2)
        pooled = []  # [B', heads, (1 +) L', dim / heads] each
        for pool in (self.pool_q, self.pool_k, self.pool_v):
            if pool is None:
                pooled.append(xh)
            elif pool is self.pool_v and pool.conv is None:
                pooled.append(pooled[1])  # parameter-free: v's pooled input is k's
            else:
                pooled.append(pool(xh, grid, has_cls))
        out = []
        for t, linear in zip(pooled, (self.q, self.k, self.v)):
            t = linear(heads_merge(t))  # [B', (1 +) L', attn_dim]
            out.append(t.reshape(b, t.shape[1], self.num_heads, self.head_dim).transpose(1, 2))
        return out[0], out[1], out[2]

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B', N, dim]`` -> q, k, v, each ``[B', heads, N, hd]``."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def _forward_windows_first(self, x: torch.Tensor) -> torch.Tensor:
        """Mask-unit attention where nothing pools across windows (Hiera's case): the input
        tokens go to windows once ([B, L, C] -> [B * windows, tokens per window, C], one copy
        of the block input instead of three of q, k and v) and q is pooled inside each window
        (windows align with the stride)."""
        b = x.shape[0]
        window = self.kv_window  # k and v are not pooled: the input window
        xw = window_partition(x.unsqueeze(1), self.in_grid, window).squeeze(1)
        q, k, v = self._qkv(xw)  # [B * windows, heads, Lw, hd]
        if self.pool_q is not None:
            q = pool_tokens(q, window, self.pool_q.stride, self.pool_q.mode)
        out = self._attend(q, k, v, self._bias(q, self.q_window, window))
        return self.proj(window_merge(out, b, self.q_grid, self.q_window))

    def _forward_units(self, x: torch.Tensor, units: Units) -> torch.Tensor:
        """The sparse forward: pooling runs inside each kept unit (zero-padded at its border:
        the separate-and-pad treatment), attention within a unit where this block uses
        mask-unit attention (a window is exactly one unit) and over all kept tokens of a
        sample otherwise."""
        in_grid, q_grid, kv_grid = (units.grid(g) for g in (self.in_grid, self.q_grid,
                                                              self.kv_grid))
        q, k, v = self._pooled_qkv(x, in_grid, False)  # [B * U, heads, Lu', hd]
        if self.q_window is not None:
            out = self._attend(q, k, v, self._bias(q, q_grid, kv_grid))
            return self.proj(heads_merge(out))  # [B * U, Lq_u, attn_dim]
        b, u, lq = units.batch, units.kept, q.shape[2]

        def per_sample(t: torch.Tensor) -> torch.Tensor:
            # [B * U, heads, Lu, hd] -> [B, heads, U * Lu, hd]
            return t.reshape(b, u, self.num_heads, -1, self.head_dim).transpose(1, 2).flatten(
                2, 3)

        q, k, v = per_sample(q), per_sample(k), per_sample(v)
        bias = None
        if self._rel_axes:
            bias = rel_pos_bias_at(q, units.coords(self.q_grid), units.coords(self.kv_grid),
                                   self._rel_tables())
        out = heads_merge(self._attend(q, k, v, bias))  # [B, U * Lq_u, attn_dim]
        return self.proj(out.reshape(b * u, lq, self.attn_dim))

    def _bias(self, q: torch.Tensor, q_span: tuple[int, ...],
              k_span: tuple[int, ...]) -> torch.Tensor | None:
        """The relative-position bias of dense (or windowed) queries; None without one."""
        if not self._rel_axes:
            return None
        bias = rel_pos_bias(q[:, :, 1:] if self.has_cls else q, q_span, k_span,
                            self._rel_tables())
        if self.has_cls:
            bias = F.pad(bias, (1, 0, 1, 0))  # the cls row and column get no bias
        return bias

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        """Attention of ``[B', heads, Lq, hd]`` queries plus residual pooling; same shape out."""
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if self.residual_pooling:
            if self.has_cls and not self.residual_pooling_cls:
                out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
            else:
                out = out + q
        return out
