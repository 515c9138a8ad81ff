from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model


@pytest.fixture(scope="module")
def tiny_hiera():
    torch.manual_seed(0)
    return build_model("hiera_t", input_size=(1, 64, 64), num_classes=4).eval()


def test_forward_returns_logits_not_probabilities(tiny_hiera):
    logits = tiny_hiera(torch.randn(3, 3, 64, 64))
    assert logits.shape == (3, 4)
    assert not torch.allclose(logits.sum(-1), torch.ones(3))


def test_image_model_accepts_one_frame_clips(tiny_hiera):
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(tiny_hiera(x.unsqueeze(2)), tiny_hiera(x))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 64, 64), (2, 3, 4, 64, 64), (3, 64, 64)])
def test_wrong_input_shape_is_a_clear_error(tiny_hiera, shape):
    with pytest.raises(ValueError, match=r"^input: expected \[B, C, H, W\] = \[B, 3, 64, 64\]"):
        tiny_hiera(torch.randn(shape))


def test_intermediates_per_stage():
    torch.manual_seed(0)
    for name, size, x_shape, grids in [
        ("mvitv2_t", (1, 64, 64), (1, 3, 64, 64), [(16, 16), (8, 8), (4, 4), (2, 2)]),
        ("mvitv2_s_16x4", (4, 64, 64), (1, 3, 4, 64, 64), [(2, 16, 16), (2, 8, 8), (2, 4, 4),
                                                           (2, 2, 2)]),
    ]:
        model = build_model(name, input_size=size).eval()
        maps = model.forward_intermediates(torch.randn(x_shape))
        assert [tuple(m.shape[2:]) for m in maps] == grids
        assert [m.shape[1] for m in maps] == [96, 192, 384, 768]
        # the last map is the last block's output, without the cls token
        tokens = model.forward_features(torch.randn(x_shape))
        assert tokens.shape[1] == model.num_prefix + torch.tensor(grids[-1]).prod()


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    model = build_model("hiera_t", input_size=(1, 64, 64), drop_path_rate=0.5)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))
