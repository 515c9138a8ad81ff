from __future__ import annotations

import pytest
import torch
from torch import nn

from mvit_lab import build_model
from mvit_lab.presets import get_config
from mvit_lab.train.loop import scaled_lrs
from mvit_lab.train.optim import Stepper, accumulation_steps, lr_at, param_groups

TINY = get_config("hiera_t", input_size=(1, 16, 16), patch_kernel=(1, 2, 2),
                  patch_stride=(1, 2, 2), patch_padding=(0, 0, 0), depths=(1, 1), embed_dim=16,
                  mask_unit_size=(1, 4, 4), mask_unit_attn=(True, False), num_classes=10)


def _by_name(model, groups):
    ids = {id(p): n for n, p in model.named_parameters()}
    return {ids[id(p)]: (g["weight_decay"], g["lr_scale"]) for g in groups for p in g["params"]}


def test_no_weight_decay_on_1d_params_and_position_tables():
    model = build_model(TINY)
    groups = _by_name(model, param_groups(model, 0.05))
    assert groups["pos_embed"][0] == 0.0 and groups["blocks.0.norm1.weight"][0] == 0.0
    assert groups["blocks.0.attn.qkv.weight"][0] == 0.05 and groups["head.fc.weight"][0] == 0.05
    decayed = _by_name(model, param_groups(model, 0.05, no_decay_pos=False))
    assert decayed["pos_embed"][0] == 0.05 and decayed["blocks.0.norm1.bias"][0] == 0.0


def test_layer_decay_per_block():
    model = build_model(TINY)  # 2 blocks: stem 0, blocks 1 and 2, norm + head 3
    groups = _by_name(model, param_groups(model, 0.05, layer_decay=0.5))
    assert groups["patch_embed.proj.weight"] == (0.05, 0.5 ** 3)
    assert groups["pos_embed"] == (0.0, 0.5 ** 3)
    assert groups["blocks.0.attn.qkv.weight"] == (0.05, 0.5 ** 2)
    assert groups["blocks.1.mlp.fc1.bias"] == (0.0, 0.5)
    assert groups["head.fc.weight"] == (0.05, 1.0)
    assert len(groups) == len(list(model.parameters()))


def test_two_accumulated_halves_step_like_the_whole_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 1)
    a = nn.Linear(5, 1)
    b = nn.Linear(5, 1)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    whole = Stepper(a, opt_a, scaler, clip_grad=None)
    assert whole.backward(nn.functional.mse_loss(a(x), y))
    halves = Stepper(b, opt_b, scaler, clip_grad=None, accum=2)
    assert not halves.backward(nn.functional.mse_loss(b(x[:4]), y[:4]))
    assert halves.backward(nn.functional.mse_loss(b(x[4:]), y[4:]))
    torch.testing.assert_close(a.weight, b.weight)
    assert halves.steps == 1


def test_accumulation_reaches_the_global_batch():
    assert accumulation_steps("train", 128, 2048, 1) == 16
    assert accumulation_steps("train", 128, 2048, 8) == 2
    assert accumulation_steps("train", 64, None, 1) == 1
    with pytest.raises(ValueError, match="train.global_batch: 2048 is not a multiple of "
                                         "train.batch_size 96"):
        accumulation_steps("train", 96, 2048, 1)


def test_lr_is_per_reference_batch():
    from mvit_lab.experiment import TrainConfig

    cfg = TrainConfig(lr=2.5e-4, lr_batch=256, min_lr=1e-6, warmup_start_lr=1e-8,
                      batch_size=128, global_batch=2048)
    lr, min_lr, start = scaled_lrs(cfg, accum=16, devices=1)
    assert (lr, min_lr, start) == pytest.approx((2e-3, 8e-6, 8e-8))
    assert scaled_lrs(TrainConfig(lr=1e-3), 1, 1) == (1e-3, 1e-5, 0.0)  # no lr_batch: as given


def test_warm_up_starts_from_the_start_lr():
    assert lr_at(0, 100, 10, 1.0, 0.0, start_lr=0.5) == pytest.approx(0.55)
    assert lr_at(9, 100, 10, 1.0, 0.0, start_lr=0.5) == pytest.approx(1.0)
    assert lr_at(100, 100, 10, 1.0, 0.1, start_lr=0.5) == pytest.approx(0.1)
