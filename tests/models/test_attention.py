from __future__ import annotations

import itertools

import torch

from mvit_lab.models.attention import MultiScaleAttention, Pool, rel_pos_bias, rel_pos_index


def test_rel_pos_index_scales_the_coarser_side():
    # equal sizes: i - j + (k - 1)
    assert rel_pos_index(3, 3).tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]
    # q at half the resolution of k: q coordinates are doubled
    idx = rel_pos_index(2, 4)
    assert idx.tolist() == [[3, 2, 1, 0], [5, 4, 3, 2]]
    assert idx.max() < 2 * 4 - 1


def test_rel_pos_bias_matches_definition():
    torch.manual_seed(0)
    b, h, d = 1, 2, 3
    q_size, k_size = (2, 3), (4, 3)
    tables = [torch.randn(2 * max(q, k) - 1, d) for q, k in zip(q_size, k_size)]
    q = torch.randn(b, h, 6, d)
    gathered = [t[rel_pos_index(qs, ks)] for t, qs, ks in zip(tables, q_size, k_size)]
    bias = rel_pos_bias(q, q_size, k_size, gathered)
    assert bias.shape == (b, h, 6, 12)
    qi = list(itertools.product(range(2), range(3)))
    ki = list(itertools.product(range(4), range(3)))
    for (i, (qy, qx)), (j, (ky, kx)) in itertools.product(enumerate(qi), enumerate(ki)):
        want = q[0, :, i] @ gathered[0][qy, ky] + q[0, :, i] @ gathered[1][qx, kx]
        torch.testing.assert_close(bias[0, :, i, j], want)


def _manual_attention(attn: MultiScaleAttention, x: torch.Tensor) -> torch.Tensor:
    """Global softmax attention written out, for an unpooled, position-free module."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(-1)
    out = w @ v
    if attn.residual_pooling:
        out = out + q
    return attn.proj(out.transpose(1, 2).reshape(b, n, -1))


def test_unpooled_attention_is_plain_softmax_attention():
    torch.manual_seed(0)
    attn = MultiScaleAttention(16, 16, 2, in_grid=(4, 4), q_grid=(4, 4), kv_grid=(4, 4),
                               residual_pooling=True)
    x = torch.randn(2, 16, 16)
    torch.testing.assert_close(attn(x), _manual_attention(attn, x))


def test_mask_unit_attention_is_attention_within_each_window():
    torch.manual_seed(0)
    kw = dict(in_grid=(4, 4), q_grid=(4, 4), kv_grid=(4, 4))
    windowed = MultiScaleAttention(8, 8, 2, q_window=(2, 2), kv_window=(2, 2), **kw)
    x = torch.randn(1, 16, 8)
    out = windowed(x).reshape(1, 4, 4, 8)
    grid = x.reshape(1, 4, 4, 8)
    for wy, wx in itertools.product(range(2), range(2)):
        tokens = grid[:, 2 * wy:2 * wy + 2, 2 * wx:2 * wx + 2].reshape(1, 4, 8)
        want = _manual_attention(windowed, tokens).reshape(1, 2, 2, 8)
        torch.testing.assert_close(out[:, 2 * wy:2 * wy + 2, 2 * wx:2 * wx + 2], want)


def test_pool_keeps_cls_token_and_pools_grid():
    x = torch.randn(2, 3, 1 + 16, 4)
    pool = Pool("max", 4, (2, 2), (2, 2), 1e-6)
    out = pool(x, (4, 4), has_cls=True)
    assert out.shape == (2, 3, 1 + 4, 4)
    assert torch.equal(out[:, :, 0], x[:, :, 0])
    grid = x[:, :, 1:].reshape(2, 3, 4, 4, 4)
    torch.testing.assert_close(out[:, :, 1], grid[:, :, :2, :2].amax(dim=(2, 3)))


def test_residual_pooling_skips_the_cls_token():
    torch.manual_seed(0)
    kw = dict(in_grid=(4, 4), q_grid=(2, 2), kv_grid=(2, 2), pool_mode="max", q_kernel=(2, 2),
              q_stride=(2, 2), kv_kernel=(2, 2), kv_stride=(2, 2), has_cls=True)
    with_res = MultiScaleAttention(8, 8, 2, residual_pooling=True, **kw)
    without = MultiScaleAttention(8, 8, 2, residual_pooling=False, **kw)
    without.load_state_dict(with_res.state_dict())
    x = torch.randn(1, 17, 8)
    a, b = with_res(x), without(x)
    torch.testing.assert_close(a[:, 0], b[:, 0])  # the cls output is untouched
    assert not torch.allclose(a[:, 1:], b[:, 1:])
    timm_style = MultiScaleAttention(8, 8, 2, residual_pooling=True, residual_pooling_cls=True,
                                     **kw)
    timm_style.load_state_dict(with_res.state_dict())
    c = timm_style(x)
    assert not torch.allclose(c[:, 0], a[:, 0])
    torch.testing.assert_close(c[:, 1:], a[:, 1:])


def test_avg_pool_counts_padding_and_accepts_grids_smaller_than_the_kernel():
    from mvit_lab.models.attention import pool_grid
    x = torch.randn(2, 3, 6, 5)
    torch.testing.assert_close(pool_grid(x, "avg", (3, 3), (2, 1), (1, 1)),
                               torch.nn.functional.avg_pool2d(x, 3, (2, 1), 1))
    # torch's avg_pool3d refuses a 2-frame grid with a 3-frame kernel even with padding 1
    clip = torch.randn(1, 1, 2, 4, 4)
    out = pool_grid(clip, "avg", (3, 1, 1), (2, 1, 1), (1, 0, 0))
    torch.testing.assert_close(out[:, :, 0], clip.sum(2) / 3)
