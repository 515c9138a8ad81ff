"""Sparse MAE: equality with hiera-transformer's MaskedAutoencoderHiera, sparse = dense where
nothing overlaps, no leakage from deleted units, validation, and encoder transfer."""

from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model, get_config
from mvit_lab.masking import check_sparse, ids_from_keep, keep_from_ids, num_units, random_keep
from mvit_lab.models._layout import window_merge
from mvit_lab.models.mae import (
    DecoderConfig,
    MaskedAutoencoder,
    convert_mae_state_dict,
    load_encoder,
)
from mvit_lab.reference import config_from_reference
from tests.references import perturb_

IMAGE = dict(input_size=(128, 128), embed_dim=32, num_heads=1, stages=(1, 2, 3, 1), q_pool=2)
VIDEO = dict(input_size=(8, 64, 64), q_stride=(1, 2, 2), mask_unit_size=(1, 8, 8),
             patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4), patch_padding=(1, 3, 3),
             sep_pos_embed=True, q_pool=2, embed_dim=32, num_heads=2, stages=(1, 2, 3, 1))


def _official_pair(kwargs: dict, video: bool, decoder: tuple[int, int, int] = (64, 2, 4)):
    from hiera.hiera_mae import MaskedAutoencoderHiera

    torch.manual_seed(0)
    dim, depth, heads = decoder
    ref = MaskedAutoencoderHiera(decoder_embed_dim=dim, decoder_depth=depth,
                                 decoder_num_heads=heads, **kwargs)
    perturb_(ref).eval()
    name = "hiera_base_16x224" if video else "hiera_tiny_224"
    cfg = config_from_reference("hiera", name, **kwargs)
    ours = MaskedAutoencoder(cfg, DecoderConfig(dim=dim, depth=depth, heads=heads)).eval()
    ours.load_state_dict(convert_mae_state_dict(ref.state_dict()), strict=True)
    return ref, ours


def _compare(ref, ours, x: torch.Tensor, ratio: float) -> None:
    torch.manual_seed(3)
    keep = ref.get_random_mask(x, ratio)
    with torch.no_grad():
        loss, pred, label, mask = ref(x, mask=keep)
        out = ours(x, keep=keep)
        latent_ref, _ = ref.forward_encoder(x, ratio, mask=keep)
        latent = ours.forward_encoder(x, ids_from_keep(keep))
    assert torch.equal(out.keep, mask)
    assert abs(loss.item() - out.loss.item()) < 1e-4
    assert out.target.shape == label.shape and (out.target - label).abs().max() < 1e-4
    assert (out.pred - pred).abs().max() < 1e-4
    assert latent.shape == latent_ref.shape and (latent - latent_ref).abs().max() < 1e-4


@pytest.mark.parametrize("variant", [
    {},
    dict(q_pool=3),  # a final mask unit of one token; every stage fused
    dict(mask_unit_attn=(True, False, False, False), stages=(2, 1, 2, 1)),
    dict(q_pool=1, input_size=(128, 96)),  # non-square, 4x3 units of 4x4 final tokens
])
def test_image_equals_official(variant):
    ref, ours = _official_pair({**IMAGE, **variant}, video=False)
    x = torch.randn(2, 3, *ours.cfg.input_size[1:], generator=torch.Generator().manual_seed(1))
    _compare(ref, ours, x, 0.6)


@pytest.mark.parametrize("variant", [{}, dict(q_pool=3)])
def test_video_equals_official(variant):
    ref, ours = _official_pair({**VIDEO, **variant}, video=True)
    x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    _compare(ref, ours, x, 0.9 if not variant else 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mae_hiera_tiny_224", "mae_hiera_base_16x224"])
def test_published_mae_builders_equal_official(name):
    """The published MAE models with their default decoder (512 wide, 8 blocks, 16 heads)."""
    import hiera

    torch.manual_seed(0)
    ref = perturb_(getattr(hiera, name)(pretrained=False)).eval()
    video = "16x" in name
    cfg = config_from_reference("hiera", "hiera_base_16x224" if video else "hiera_tiny_224",
                                **({"q_pool": 2} if video else
                                   dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2),
                                        q_pool=2)))
    ours = MaskedAutoencoder(cfg).eval()
    ours.load_state_dict(convert_mae_state_dict(ref.state_dict()), strict=True)
    shape = (1, 3, 16, 224, 224) if video else (1, 3, 224, 224)
    _compare(ref, ours, torch.randn(shape, generator=torch.Generator().manual_seed(1)),
             0.9 if video else 0.6)


def _raster(maps: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Sparse stage output with every unit kept ``[B, N, *unit, C]`` -> ``[B, C, *grid]``."""
    b, n = maps.shape[:2]
    unit, c = tuple(maps.shape[2:-1]), maps.shape[-1]
    tokens = window_merge(maps.reshape(b * n, 1, -1, c), b, grid, unit)  # [B, L, C]
    return tokens.transpose(1, 2).reshape(b, c, *grid)


@pytest.mark.parametrize("name,changes", [
    ("hiera_t", dict(input_size=(1, 64, 64))),
    # relative positions with global attention, kernel = stride pooling: coordinates of the
    # kept tokens drive the bias
    ("mvitv2_t", dict(input_size=(1, 64, 64), pool_kernel="stride", skip_pool_kernel="stride",
                      mask_unit_size=(1, 8, 8), q_pool_every_block=False,
                      kv_pool_every_block=False)),
    ("hiera_b_16x224", dict(input_size=(8, 64, 64), depths=(1, 1, 2, 1))),
])
def test_sparse_with_every_unit_kept_equals_dense(name, changes):
    cfg = get_config(name, **changes)
    assert check_sparse(cfg) == ()
    model = perturb_(build_model(cfg)).eval()
    b, n = 2, num_units(cfg)
    x = torch.randn(b, 3, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    with torch.no_grad():
        dense = model.forward_intermediates(x)
        sparse = model.forward_sparse(x, torch.arange(n).expand(b, n))
    for d, s in zip(dense, sparse):
        assert (_raster(s, tuple(d.shape[2:])) - d).abs().max() < 1e-4


@pytest.mark.parametrize("name,changes", [
    ("hiera_t", dict(input_size=(1, 64, 64))),
    # MViTv2 as published: overlapping conv pooling runs separate-and-pad
    ("mvitv2_t", dict(input_size=(1, 64, 64), mask_unit_size=(1, 8, 8))),
])
def test_deleted_units_cannot_leak(name, changes):
    """Whatever the masked pixels hold, the kept units' features are the same: overlapping
    kernels are zero-padded per unit, and the stem sees zeros in deleted units."""
    cfg = get_config(name, **changes)
    model = perturb_(build_model(cfg)).eval()
    n = num_units(cfg)
    keep = random_keep(2, n, 0.5, torch.Generator().manual_seed(0))
    ids = ids_from_keep(keep)
    x = torch.randn(2, 3, 64, 64)
    counts = model.units(ids).counts
    pixel_keep = torch.nn.functional.interpolate(keep.float().reshape(2, 1, *counts),
                                                 size=(64, 64))
    noisy = x + (1 - pixel_keep) * torch.randn_like(x) * 10
    with torch.no_grad():
        a = model.forward_sparse(x, ids)
        c = model.forward_sparse(noisy, ids)
        dense_a = model.forward_intermediates(x)[-1]
        dense_c = model.forward_intermediates(noisy)[-1]
    assert all(torch.equal(p, q) for p, q in zip(a, c))
    assert not torch.allclose(dense_a, dense_c)  # the dense model does see them


def test_check_sparse_names_the_problem():
    with pytest.raises(ValueError, match="^mask_unit_size: sparse MAE masking"):
        check_sparse(get_config("mvitv2_t"))
    with pytest.raises(ValueError, match="^cls_token: "):
        check_sparse(get_config("mvitv1_b", mask_unit_size=(1, 8, 8)))
    # 4x4 units: two 2x2 q pools use them up, the third would cross units
    with pytest.raises(ValueError, match=r"^q_stride: stage 3 block \d+: a mask unit is "
                                         r"\(1, 1, 1\) tokens"):
        check_sparse(get_config("hiera_t", mask_unit_size=(1, 4, 4),
                                mask_unit_attn=(False,) * 4))
    notes = check_sparse(get_config("mvitv2_t", mask_unit_size=(1, 8, 8)))
    assert notes and all("separate-and-pad" in n for n in notes)
    assert any("kv pooling kernel (1, 3, 3) stride (1, 4, 4)" in n for n in notes)
    assert any("skip pooling" in n for n in notes)
    with pytest.raises(ValueError, match="^mask_unit_size: "):
        MaskedAutoencoder(get_config("mvitv2_t"))


def test_masks():
    keep = random_keep(3, 49, 0.6, torch.Generator().manual_seed(0))
    assert keep.shape == (3, 49) and keep.sum(1).tolist() == [19, 19, 19]
    ids = ids_from_keep(keep)
    assert ids.shape == (3, 19) and bool((ids.diff(dim=1) > 0).all())
    assert torch.equal(keep_from_ids(ids, 49), keep)
    with pytest.raises(ValueError, match="^mask_ratio: 0.99 keeps no unit of 49"):
        random_keep(1, 49, 0.99)
    with pytest.raises(ValueError, match="^mask_ratio: must be in"):
        random_keep(1, 49, 1.0)
    uneven = torch.zeros(2, 4, dtype=torch.bool)
    uneven[0, :2] = uneven[1, :1] = True
    with pytest.raises(ValueError, match=r"same number .* got \[2, 1\]"):
        ids_from_keep(uneven)


def test_loss_only_on_masked_units_and_training_lowers_it():
    cfg = get_config("hiera_t", input_size=(1, 32, 32), patch_kernel=(1, 3, 3),
                     patch_stride=(1, 2, 2), patch_padding=(0, 1, 1), depths=(1, 1, 1, 1),
                     embed_dim=16, mask_unit_size=(1, 4, 4), q_pool=2)
    torch.manual_seed(0)
    mae = MaskedAutoencoder(cfg, DecoderConfig(dim=32, depth=1, heads=2))
    assert num_units(cfg) == 16 and mae.pred_size == (8, 8)
    x = torch.randn(4, 3, 32, 32)
    out = mae(x, mask_ratio=0.75)
    # 4 of 16 units kept; each unit is one final 8x8-pixel token
    assert out.pred.shape == (4 * 12, 3 * 8 * 8) and out.target.shape == out.pred.shape
    assert torch.allclose(out.target.mean(-1), torch.zeros(48), atol=1e-5)
    opt = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    keep = out.keep
    first = None
    for _ in range(40):
        loss = mae(x, keep=keep).loss
        opt.zero_grad()
        loss.backward()
        if first is None:
            first = loss.item()
            no_grad = [n for n, p in mae.named_parameters() if p.grad is None
                       or not p.grad.abs().sum() > 0]
            assert no_grad == []  # every weight, encoder to predictor, gets a gradient
        opt.step()
    assert loss.item() < 0.85 * first


def test_encoder_loads_straight_into_the_standard_model():
    cfg = get_config("hiera_t", input_size=(1, 64, 64))
    mae = MaskedAutoencoder(cfg, DecoderConfig(dim=32, depth=1, heads=2))
    model = build_model(cfg.replace(num_classes=10))
    fresh = load_encoder(model, mae.state_dict())
    assert sorted(fresh) == ["head.fc.bias", "head.fc.weight", "norm.bias", "norm.weight"]
    for key, value in mae.encoder_state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    wider = build_model(cfg.replace(embed_dim=48))
    with pytest.raises(ValueError, match="^pretrained encoder: does not fit"):
        load_encoder(wider, mae.encoder_state_dict())


def test_every_step_of_the_digits_ladders_pretrains():
    """MViTv2's steps widen in the MLP and pool with overlap (separate-and-pad); Hiera's do
    neither. Each builds, runs sparsely, and gets gradients everywhere."""
    from pathlib import Path

    from mvit_lab.experiment import load_experiment
    from mvit_lab.search.space import resolve_point
    from mvit_lab.search.sweep import parse_sweep

    root = Path(__file__).parents[2] / "experiments"
    for name in ("hiera_ladder_digits_mae", "hiera_ladder_moving_digits_mae"):
        exp = load_experiment(root / f"{name}.yaml")
        space = parse_sweep(exp).space
        for point in space.points():
            cfg = exp.pretrain.encoder_config(resolve_point(space, exp.model, point))
            torch.manual_seed(0)
            mae = MaskedAutoencoder(cfg, DecoderConfig(dim=16, depth=1, heads=2))
            x = torch.randn(2, 3, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
            mae(x, mask_ratio=exp.pretrain.mask_ratio).loss.backward()
            missing = [n for n, p in mae.named_parameters() if p.grad is None]
            assert missing == [], (name, point.name, missing)
