from __future__ import annotations

import dataclasses

import pytest

from mvit_lab import ArchConfig, expand_blocks, get_config
from mvit_lab.config import knob_names, pool_padding, resolve_kernel


def test_issue_knob_names_exist():
    # search spaces and later issues address the config by these names
    wanted = """input_size in_chans num_classes patch_kernel patch_stride patch_padding depths
    embed_dim num_heads dim_mul head_mul mlp_ratio qkv_bias expand_attn cls_token abs_pos rel_pos
    pool_mode pool_kernel q_stride q_pool q_pool_every_block kv_stride residual_pooling
    skip_pool_kernel mask_unit_size mask_unit_attn drop_path_rate head_dropout norm_eps head_pool
    head_norm""".split()
    assert set(wanted) <= set(knob_names())


def test_config_is_frozen_and_normalised():
    cfg = ArchConfig(depths=[1, 2], input_size=[1, 32, 32], q_stride=[1, 2, 2])
    assert cfg.depths == (1, 2) and cfg.input_size == (1, 32, 32)
    assert cfg.mask_unit_attn is None and cfg.stage_mask_unit_attn == (False, False)
    # all-False is stored as None, so a preset without mask units takes other depths
    assert ArchConfig(depths=(1, 1), mask_unit_attn=[False, False]) == ArchConfig(depths=(1, 1))
    assert get_config("mvitv2_t", depths=(1, 1, 2)).num_stages == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depths = (1,)  # type: ignore[misc]
    assert hash(cfg) == hash(ArchConfig(depths=(1, 2), input_size=(1, 32, 32)))


def test_to_dict_round_trips():
    for name in ("mvitv2_s_16x4", "hiera_b", "mvitv1_b"):
        cfg = get_config(name)
        assert ArchConfig(**cfg.to_dict()) == cfg


def test_replace_rejects_unknown_knob():
    with pytest.raises(ValueError, match=r"^pool_modes: not an ArchConfig field"):
        get_config("mvitv2_t", pool_modes="max")


# -- the derivation against published per-block settings ------------------------------------------
def test_mvit_v1_b_kv_strides_and_heads():
    specs = expand_blocks(get_config("mvitv1_b_16x4"))
    assert [s.kv_stride for s in specs] == (
        [(1, 8, 8)] + [(1, 4, 4)] * 2 + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2)
    # torchvision's mvit_v1_b block table
    assert [s.num_heads for s in specs] == [1, 2, 2] + [4] * 11 + [8, 8]
    assert [s.dim for s in specs] == [96, 192, 192] + [384] * 11 + [768, 768]
    assert [s.dim_out for s in specs] == [192, 192, 384] + [384] * 10 + [768, 768, 768]
    q_pooled = [s.index for s in specs if s.q_kernel is not None]
    assert q_pooled == [1, 3, 14]
    assert all(s.q_kernel == (3, 3, 3) and s.q_stride == (1, 2, 2) for s in specs if s.q_kernel)
    # kv is pooled (kernel 3) in every block, also where its stride is 1
    assert all(s.kv_kernel == (3, 3, 3) for s in specs)
    assert specs[0].in_grid == (8, 56, 56) and specs[-1].q_grid == (8, 7, 7)


def test_mvit_v2_s_video_block_table():
    specs = expand_blocks(get_config("mvitv2_s_16x4"))
    # torchvision's mvit_v2_s: widening happens in attention at each stage's first block
    assert [s.dim for s in specs] == [96, 96, 192, 192] + [384] * 11 + [768]
    assert [s.dim_out for s in specs] == [96, 192, 192] + [384] * 11 + [768, 768]
    assert all(s.q_kernel == (3, 3, 3) for s in specs)  # stride-1 q pooling in every block
    assert [s.q_stride for s in specs].count((1, 2, 2)) == 3
    # rel-pos tables as torchvision sizes them: 2 * max(q, kv) - 1 per axis, time 2 * 8 - 1
    assert specs[0].rel_pos_size == (15, 111, 111)
    assert specs[1].rel_pos_size == (15, 55, 55)


def test_mvitv2_l_widens_in_mlp():
    specs = expand_blocks(get_config("mvitv2_l"))
    ends = [s for s in specs if s.dim != s.dim_out]
    assert [(s.index, s.dim, s.dim_out) for s in ends] == [(1, 144, 288), (7, 288, 576),
                                                            (43, 576, 1152)]
    assert not any(s.project_in_attn for s in specs)
    assert all(s.attn_dim == s.dim for s in specs)


def test_hiera_windows_lag_one_block():
    specs = expand_blocks(get_config("hiera_b"))
    stage_first = [s for s in specs if s.index in (0, 2, 5, 21)]
    # stage 2's first block (index 5) still uses mask-unit attention, stage 3's does not
    assert [s.mask_unit_attn for s in stage_first] == [True, True, True, False]
    assert [s.q_window for s in stage_first] == [(1, 8, 8), (1, 4, 4), (1, 2, 2), None]
    assert [s.kv_window for s in stage_first] == [(1, 8, 8), (1, 8, 8), (1, 4, 4), None]
    assert specs[6].mask_unit_attn is False
    assert {s.num_windows for s in specs if s.mask_unit_attn} == {49}
    assert all(s.kv_kernel is None for s in specs)
    assert [s.skip_kernel for s in specs if s.skip_kernel] == [(1, 2, 2)] * 3


def test_q_pool_limits_transitions_and_kv_division():
    cfg = get_config("mvitv2_t", q_pool=1)
    specs = expand_blocks(cfg)
    assert [s.q_stride for s in specs if s.q_stride != (1, 1, 1)] == [(1, 2, 2)]
    assert specs[-1].q_grid == (1, 28, 28)
    # kv stride is divided only where q pools: 4 -> 2, then stays 2
    assert {s.kv_stride for s in specs[1:]} == {(1, 2, 2)}


def test_drop_path_is_linear_over_blocks():
    specs = expand_blocks(get_config("mvitv2_t", drop_path_rate=0.1))
    assert specs[0].drop_path == 0.0 and specs[-1].drop_path == pytest.approx(0.1)


@pytest.mark.parametrize(("kernel", "stride", "expected"), [
    ((1, 3, 3), (1, 2, 2), (1, 3, 3)),
    ("stride", (1, 2, 2), (1, 2, 2)),
    ("stride+1", (1, 2, 2), (1, 3, 3)),
    ("stride+1", (1, 1, 1), (1, 1, 1)),
])
def test_resolve_kernel(kernel, stride, expected):
    assert resolve_kernel(kernel, stride) == expected


def test_pool_padding_matches_references_and_keeps_sizes():
    assert pool_padding((3, 3, 3), (1, 8, 8)) == (1, 1, 1)  # torchvision: k // 2
    assert pool_padding((2, 2), (2, 2)) == (0, 0)  # non-overlapping
    assert pool_padding((4,), (2,)) == (1,)


# -- validation: every rule names its field ----------------------------------------------------
BAD = [
    (dict(depths=()), "depths"),
    (dict(depths=(2, 0)), "depths"),
    (dict(embed_dim=0), "embed_dim"),
    (dict(embed_dim=96.0), "embed_dim"),
    (dict(num_heads=5), "num_heads"),
    (dict(input_size=(224, 224)), "input_size"),
    (dict(pool_mode="maxx"), "pool_mode"),
    (dict(pool_kernel="overlap"), "pool_kernel"),
    (dict(pool_kernel=(1, 2, 2)), "pool_kernel"),  # even kernel at stride 1 shrinks the grid
    (dict(abs_pos="sinusoidal"), "abs_pos"),
    (dict(rel_pos="spatiotemporal"), "rel_pos"),
    (dict(abs_pos="separate"), "abs_pos"),
    (dict(q_stride=(2, 2, 2)), "q_stride"),  # temporal stride on an image model
    (dict(patch_stride=(2, 4, 4)), "patch_stride"),
    (dict(q_stride=(1, 3, 3)), "q_stride"),  # 56 is not divisible by 3
    (dict(kv_stride=(1, 3, 3)), "kv_stride"),
    (dict(input_size=(1, 200, 200)), "kv_stride"),  # 50x50 grid, kv stride 4
    (dict(q_pool=4), "q_pool"),
    (dict(q_pool=-1), "q_pool"),
    (dict(mask_unit_attn=(True, False)), "mask_unit_attn"),
    (dict(mask_unit_attn=(True, False, False, False)), "mask_unit_size"),
    (dict(mask_unit_size=(1, 5, 5), mask_unit_attn=(True,) * 4), "mask_unit_size"),
    (dict(mask_unit_size=(1, 4, 4), mask_unit_attn=(True, True, True, False)), "mask_unit_size"),
    (dict(mask_unit_size=(1, 8, 8), mask_unit_attn=(True,) * 4, cls_token=True), "cls_token"),
    (dict(head_pool="cls"), "head_pool"),
    (dict(head_norm="middle"), "head_norm"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
    (dict(norm_eps=0.0), "norm_eps"),
    (dict(qkv_bias=1), "qkv_bias"),
    (dict(pool_mode="none"), "q_pool"),
    (dict(pool_mode="none", q_pool=0), "kv_stride"),
    (dict(head_mul=0.1), "head_mul"),
    (dict(dim_mul=1.3), "num_heads"),  # 96 * 1.3 = 124 channels, 2 heads: fine; 161 with 4: not
    (dict(patch_kernel=(1, 300, 300)), "patch_kernel"),
    (dict(mlp_ratio=-1), "mlp_ratio"),
    (dict(skip_pool_kernel=(1, 3, 3)), "skip_pool_kernel"),
]


IDS = [f"{f}-{i}" for i, (_, f) in enumerate(BAD)]


@pytest.mark.parametrize(("overrides", "field"), BAD, ids=IDS)
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}(\[\d+\])?: "):
        ArchConfig(**overrides)


# -- validation accepts only what can be built (bounds, no overflow) ---------------------------
TOO_BIG = [
    (dict(dim_mul=1e308), "dim_mul"),  # was an OverflowError in stage_dims
    (dict(head_mul=1e308), "head_mul"),
    (dict(mlp_ratio=1e308), "mlp_ratio"),
    (dict(embed_dim=2**17, num_heads=1), "embed_dim"),
    (dict(num_classes=2**70), "num_classes"),  # was a torch error deep in nn.Linear
    (dict(depths=(100000,)), "depths"),  # was an endless build
    (dict(depths=(600, 600)), "depths"),
    (dict(norm_eps=1e-50), "norm_eps"),  # 0 in float32: NaN logits for a constant channel
]


@pytest.mark.parametrize(("overrides", "field"), TOO_BIG, ids=[f for _, f in TOO_BIG])
def test_sizes_that_cannot_be_built_are_refused_in_validation(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}(\[\d+\])?: "):
        ArchConfig(**overrides)


def test_bounds_admit_the_largest_published_sizes():
    from mvit_lab.config import MAX_BLOCKS, MAX_CLASSES, MAX_WIDTH

    ArchConfig(num_classes=21841, norm_eps=1e-45, embed_dim=MAX_WIDTH // 8, num_heads=1,
               input_size=(1, 32, 32))
    assert MAX_BLOCKS >= 48 and MAX_CLASSES >= 21841 and MAX_WIDTH >= 4096
