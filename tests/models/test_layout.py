from __future__ import annotations

import pytest
import torch

from mvit_lab.models._layout import (
    from_grid,
    heads_merge,
    pool_tokens,
    to_grid,
    window_merge,
    window_partition,
)


@pytest.mark.parametrize(("grid", "window"), [((8, 12), (4, 3)), ((2, 4, 6), (1, 2, 3))])
def test_window_partition_matches_slicing(grid, window):
    b, h, d = 2, 3, 5
    x = torch.randn(b, h, torch.tensor(grid).prod().item(), d)
    parts = window_partition(x, grid, window)
    counts = [g // w for g, w in zip(grid, window)]
    assert parts.shape == (b * torch.tensor(counts).prod().item(), h,
                           torch.tensor(window).prod().item(), d)
    spatial = x.reshape(b, h, *grid, d)
    # window n (raster order over the window grid) of batch 0 is a plain slice of the grid
    idx = [c - 1 for c in counts]  # the last window
    sl = tuple(slice(i * w, (i + 1) * w) for i, w in zip(idx, window))
    expected = spatial[(0, slice(None), *sl)].reshape(h, -1, d)
    assert torch.equal(parts[len(parts) // b - 1], expected)


@pytest.mark.parametrize(("grid", "window"), [((8, 12), (4, 3)), ((2, 4, 6), (2, 2, 3))])
def test_window_merge_inverts_partition(grid, window):
    x = torch.randn(2, 3, torch.tensor(grid).prod().item(), 4)
    merged = window_merge(window_partition(x, grid, window), 2, grid, window)
    assert torch.equal(merged, heads_merge(x))


def test_grid_round_trip():
    x = torch.randn(2, 3, 4 * 6, 5)
    g = to_grid(x, (4, 6))
    assert g.shape == (6, 5, 4, 6)
    assert torch.equal(g[0, :, 1, 2], x[0, 0, 1 * 6 + 2])
    back, grid = from_grid(g, 2)
    assert grid == (4, 6) and torch.equal(back, x)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize(("grid", "stride"), [((4, 6), (2, 3)), ((2, 4, 4), (1, 2, 2))])
def test_pool_tokens_equals_channels_first_pooling(mode, grid, stride):
    from mvit_lab.models.attention import pool_grid

    x = torch.randn(2, 3, torch.tensor(grid).prod().item(), 5)
    want, _ = from_grid(pool_grid(to_grid(x, grid), mode, stride, stride, (0,) * len(grid)), 2)
    torch.testing.assert_close(pool_tokens(x, grid, stride, mode), want)
