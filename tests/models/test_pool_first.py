"""``pool_first`` attention against SlowFast's formulation, written out here as the oracle.

SlowFast's ``MultiScaleAttention.forward`` with ``pool_first=True`` (slowfast/models/attention.py,
the same in facebookresearch/mvit): split the input into heads of ``dim // heads`` channels,
pool q, k and v on the token grid (cls token kept aside, LayerNorm after a conv pool), merge
the heads, project with three linears, attend, add the pooled q (residual pooling), project.
``test_convert_originals.py`` runs the original classes themselves where their sources exist.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mvit_lab import ArchConfig, build_model
from mvit_lab.models.attention import MultiScaleAttention


def slowfast_pool_first(attn: MultiScaleAttention, x: torch.Tensor, grid: tuple[int, ...],
                        has_cls: bool, mode: str) -> torch.Tensor:
    """The reference formula, using ``attn``'s weights (no relative positions)."""
    b, n, c = x.shape
    h = attn.num_heads
    x = x.reshape(b, n, h, c // h).permute(0, 2, 1, 3)  # [B, heads, N, C / heads]

    def pool(t, p):
        if p is None:
            return t
        if has_cls:
            cls, t = t[:, :, :1], t[:, :, 1:]
        t = t.reshape(b * h, *grid, c // h).movedim(-1, 1)  # [B * heads, C / heads, *grid]
        if mode == "conv":
            t = p.conv(t)
        else:
            pad = [k // 2 for k in p.kernel]
            fn = {(2, "max"): F.max_pool2d, (3, "max"): F.max_pool3d,
                  (2, "avg"): F.avg_pool2d, (3, "avg"): F.avg_pool3d}[(len(grid), mode)]
            t = fn(t, p.kernel, p.stride, pad)
        t = t.reshape(b, h, c // h, -1).transpose(2, 3)
        if has_cls:
            t = torch.cat((cls, t), dim=2)
        return p.norm(t) if p.norm is not None else t

    q, k, v = pool(x, attn.pool_q), pool(x, attn.pool_k), pool(x, attn.pool_v)

    def project(t, linear):
        t = linear(t.permute(0, 2, 1, 3).reshape(b, t.shape[2], -1))
        return t.reshape(b, t.shape[1], h, -1).permute(0, 2, 1, 3)

    q, k, v = project(q, attn.q), project(k, attn.k), project(v, attn.v)
    scores = (q * attn.head_dim**-0.5) @ k.transpose(-2, -1)
    out = scores.softmax(dim=-1) @ v
    if attn.residual_pooling:
        if has_cls:
            out[:, :, 1:] += q[:, :, 1:]
        else:
            out = out + q
    return attn.proj(out.transpose(1, 2).reshape(b, -1, attn.attn_dim))


def _perturb(module: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module


@pytest.mark.parametrize(("grid", "mode", "has_cls", "kernel", "q_stride", "kv_stride"), [
    ((8, 8), "conv", True, (3, 3), (2, 2), (4, 4)),
    ((8, 8), "conv", False, (3, 3), (1, 1), (2, 2)),
    ((8, 8), "max", True, (3, 3), (2, 2), (2, 2)),
    ((8, 8), "avg", False, (3, 3), (2, 2), (4, 4)),
    ((4, 8, 8), "conv", True, (3, 3, 3), (1, 2, 2), (1, 4, 4)),
    ((4, 8, 8), "max", False, (1, 3, 3), (1, 1, 1), (2, 2, 2)),
], ids=["conv-cls", "conv-stride1", "max-cls", "avg", "video-conv-cls", "video-max"])
@pytest.mark.parametrize("residual_pooling", [False, True])
def test_pool_first_attention_is_slowfasts(grid, mode, has_cls, kernel, q_stride, kv_stride,
                                           residual_pooling):
    dim, attn_dim, heads = 24, 48, 4  # widening in attention: pooled width 24 / 4, head_dim 12
    q_grid = tuple(g // s for g, s in zip(grid, q_stride))
    kv_grid = tuple(g // s for g, s in zip(grid, kv_stride))
    attn = _perturb(MultiScaleAttention(
        dim, attn_dim, heads, in_grid=grid, q_grid=q_grid, kv_grid=kv_grid, pool_mode=mode,
        q_kernel=kernel, q_stride=q_stride, kv_kernel=kernel, kv_stride=kv_stride,
        residual_pooling=residual_pooling, has_cls=has_cls, pool_first=True)).eval()
    assert attn.q.in_features == dim and attn.q.out_features == attn_dim
    if mode == "conv":
        assert attn.pool_q.conv.weight.shape[0] == dim // heads  # pools input channels
    n = int(has_cls) + torch.Size(grid).numel()
    x = torch.randn(2, n, dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = attn(x)
        ref = slowfast_pool_first(attn, x, grid, has_cls, mode)
    assert ours.shape == (2, int(has_cls) + torch.Size(q_grid).numel(), attn_dim)
    # float32 rounding relative to outputs of ~20; a wrong pooled token moves them by ~1
    assert (ours - ref).abs().max().item() < 1e-6 * ref.abs().max().item() * 10


def test_pool_first_is_a_different_model_with_its_own_weights():
    cfg = ArchConfig(input_size=(1, 32, 32), depths=(1, 1), embed_dim=16, num_heads=2,
                     num_classes=5, pool_first=True)
    model = build_model(cfg)
    keys = model.state_dict().keys()
    assert "blocks.0.attn.q.weight" in keys and "blocks.0.attn.qkv.weight" not in keys
    # stage 1's first block widens 16 -> 32 in attention: its pool convs see 16 / 4 channels
    assert model.blocks[1].attn.pool_q.conv.weight.shape[0] == 16 // 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_pool_first_needs_heads_that_divide_the_block_input():
    # stage 1 has 3 heads: they divide its width 24 but not the input width 16 it pools
    cfg = dict(input_size=(1, 32, 32), depths=(1, 1), embed_dim=16, dim_mul=1.5,
               num_heads=1, head_mul=3.0)
    ArchConfig(**cfg)  # projecting first, only the attention width matters
    with pytest.raises(ValueError, match=r"^num_heads: stage 1 block 0: pool_first pools"):
        ArchConfig(**cfg, pool_first=True)
    with pytest.raises(ValueError, match=r"^pool_first: must be true or false"):
        ArchConfig(pool_first="yes")


def test_pool_first_runs_sparse_and_in_mask_units():
    """The switch sits where q, k and v are made, so windows and sparse MAE forwards work."""
    cfg = ArchConfig(input_size=(1, 32, 32), depths=(1, 1, 1), embed_dim=16, num_heads=2,
                     num_classes=3, pool_mode="max", pool_kernel="stride", rel_pos="none",
                     q_pool_every_block=False, kv_stride=None, residual_pooling=False,
                     skip_pool_kernel="stride", mask_unit_size=(1, 4, 4),
                     mask_unit_attn=(True, True, False), pool_first=True, head_norm="after")
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, 32, 32)
    ids = torch.arange(4).expand(2, -1)  # a 2 x 2 grid of mask units, all kept
    with torch.no_grad():
        dense = model.forward_intermediates(x)
        sparse = model.forward_sparse(x, ids)  # [B, units, 1, 1, C] at the last stage
    last = sparse[-1].reshape(2, 2, 2, -1).permute(0, 3, 1, 2)  # [B, C, 2, 2]
    assert torch.allclose(last, dense[-1], atol=1e-5)
