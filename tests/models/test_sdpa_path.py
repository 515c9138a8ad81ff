"""Configs without a relative-position bias call scaled_dot_product_attention without a mask,
so the flash / cudnn kernels (which take none) can run; the kernel that ran is recorded."""

from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model
from mvit_lab.train.efficiency import attention_kernel


@pytest.mark.parametrize(("preset", "overrides", "bias"), [
    ("hiera_t", dict(input_size=(1, 32, 32), mask_unit_size=(1, 4, 4)), False),
    ("mvitv2_t", dict(input_size=(1, 32, 32), rel_pos="none"), False),
    ("mvitv1_b", dict(input_size=(1, 32, 32)), False),
    ("mvitv2_t", dict(input_size=(1, 32, 32)), True),  # decomposed rel-pos: a bias it needs
])
def test_a_mask_only_where_there_is_a_bias(monkeypatch, preset, overrides, bias):
    model = build_model(preset, embed_dim=16, depths=(1, 1, 1, 1), num_classes=4,
                        **overrides).eval()
    masks = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert len(masks) == len(model.blocks)
    assert all((m is not None) == bias for m in masks)


def test_the_kernel_that_ran_is_named():
    model = build_model("hiera_t", input_size=(1, 32, 32), embed_dim=16, depths=(1, 1, 1, 1),
                        num_classes=4, mask_unit_size=(1, 4, 4)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert attention_kernel(lambda: model(x)) == "flash (cpu)"
        assert attention_kernel(lambda: torch.nn.Linear(2, 2)(torch.ones(2))) == "none"
