"""FLOPs of ``pool_first`` attention: SlowFast's formulation by hand, and both backends agree.

Pooling first (SlowFast's ``POOL_FIRST``) pools the block input, ``dim // heads`` channels per
head, and projects the pooled tokens: q costs ``Lq * dim * attn_dim`` and k, v each
``Lk * dim * attn_dim``, against ``3 * L * dim * attn_dim`` when projecting first.
``test_convert_originals.py`` compares the count with fvcore on SlowFast's own model.
"""

from __future__ import annotations

import pytest

from mvit_lab import get_config
from mvit_lab.measure import count_flops


def _one_block(pool_first: bool):
    # one block on an 8 x 8 grid, 2 heads of 48 channels; q pooled with stride 1 (kernel 3),
    # k / v with stride 2
    return get_config("mvitv2_t", depths=(1,), input_size=(1, 32, 32), num_heads=2,
                      kv_stride=(1, 2, 2), rel_pos="none", residual_pooling=False,
                      num_classes=10, pool_first=pool_first)


@pytest.mark.parametrize("pool_first", [False, True])
def test_single_block_by_hand(pool_first):
    report = count_flops(_one_block(pool_first))
    lq, lk, c, heads = 64, 16, 96, 2  # both orders pool c channels in all (here dim == attn_dim)
    expected = dict(
        qkv=(lq + 2 * lk) * c * c if pool_first else 3 * lq * c * c,
        pooling=(lq + 2 * lk) * c * 9,  # depthwise 3 x 3 conv: 9 per output element
        attention=heads * lq * lk * (c // heads + c // heads),
        attn_proj=lq * c * c, mlp=2 * lq * c * 4 * c, head=c * 10,
        patch_embed=lq * c * 3 * 49,
    )
    for kind, macs in expected.items():
        assert report.by_module[kind] == pytest.approx(macs / 1e9, rel=1e-9), kind
    assert report.skipped == {}


def test_pool_first_saves_the_projection_of_pooled_away_tokens():
    first, after = count_flops(_one_block(True)), count_flops(_one_block(False))
    saved = (3 * 64 - (64 + 2 * 16)) * 96 * 96
    assert after.gflops - first.gflops == pytest.approx(saved / 1e9, rel=1e-9)


@pytest.mark.parametrize("cfg", [
    get_config("mvitv2_t", input_size=(1, 64, 64), pool_first=True),
    get_config("mvitv1_b_16x4", input_size=(4, 64, 64), pool_first=True, pool_mode="max"),
], ids=["mvitv2-image", "mvitv1-video-max"])
def test_meta_counter_agrees_with_fvcore(cfg):
    meta = count_flops(cfg, batch_size=2)
    fv = count_flops(cfg, batch_size=2, backend="fvcore")
    assert fv.skipped == {} and meta.skipped == {}
    assert meta.gflops == pytest.approx(fv.gflops, rel=1e-6)  # rel-pos einsums: see test_flops
    for kind, value in fv.by_module.items():
        exact = kind != "attention" or cfg.rel_pos == "none"
        assert meta.by_module[kind] == pytest.approx(value, rel=1e-9 if exact else 1e-5), kind
    assert meta.by_module["qkv"] > 0
