from __future__ import annotations

import itertools

import pytest
import torch

from mvit_lab import build_model, count_params, get_config, get_preset, hiera_ladder, list_presets
from mvit_lab.presets import register_preset

PRESETS = list_presets()
LARGE = {"hiera_h", "hiera_l", "hiera_l_16x224", "mvitv2_l"}
ISSUE_PRESETS = {
    "mvitv2_t", "mvitv2_s", "mvitv2_b", "mvitv2_l", "hiera_t", "hiera_s", "hiera_b",
    "hiera_b_plus", "hiera_l", "hiera_h", "mvitv1_b_16x4", "mvitv2_s_16x4", "hiera_b_16x224",
    "hiera_b_plus_16x224", "hiera_l_16x224", "mvitv1_b",
}


def test_registry_has_every_published_model():
    assert ISSUE_PRESETS <= set(PRESETS)


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_preset("mvitv2_t", lambda: get_config("mvitv2_t"), params=1, gflops=1.0,
                        source="dup")


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown name 'mvitv3'.*hiera_b"):
        get_config("mvitv3")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_parameter_count(name):
    preset = get_preset(name)
    n = count_params(preset.config)
    if preset.params_exact:
        assert n == preset.params
    else:  # published figure rounded to 0.1M
        assert abs(n - preset.params) < 50_000
    assert preset.gflops > 0 and preset.source


def _tiny(name: str) -> tuple[dict, tuple[int, ...]]:
    cfg = get_config(name)
    size = (1, 64, 64) if cfg.is_image else (4, 64, 64)
    x_shape = (2, 3, *size[1:]) if cfg.is_image else (2, 3, *size)
    return dict(input_size=size, num_classes=5), x_shape


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in PRESETS])
def test_preset_tiny_forward_backward(name):
    torch.manual_seed(0)
    overrides, x_shape = _tiny(name)
    model = build_model(name, **overrides)
    logits = model(torch.randn(x_shape))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_hiera_ladder_ends_at_hiera_l():
    ladder = hiera_ladder()
    names = [n for n, _ in ladder]
    assert names[0] == "mvitv2_l" and names[-1] == "hiera_l" and len(ladder) == 8
    assert ladder[0][1] == get_config("mvitv2_l")
    # not just the parameter count: the final step is hiera_l's architecture
    assert ladder[-1][1] == get_config("hiera_l")
    assert count_params(ladder[-1][1]) == 213_739_912
    for (_, prev), (name, cfg) in itertools.pairwise(ladder):
        assert cfg != prev, f"ladder step {name} changes nothing"


@pytest.mark.slow
def test_hiera_ladder_every_step_builds_and_runs():
    for name, cfg in hiera_ladder():
        # narrow the widths too, so eight large models stay cheap
        model = build_model(cfg, input_size=(1, 64, 64), embed_dim=16, num_heads=1,
                            num_classes=3)
        logits = model(torch.randn(1, 3, 64, 64))
        assert logits.shape == (1, 3), name
