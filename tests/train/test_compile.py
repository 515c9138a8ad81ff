"""torch.compile: every preset family's forward traces as one graph (no graph breaks), on the
CPU at small sizes (dynamo only: nothing is compiled, so this runs in seconds per family)."""

from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model, get_config
from mvit_lab.train.compile import count_graph_breaks

# the smallest members that still have every kind of block of their family
FAMILIES = {
    "mvitv1": get_config("mvitv1_b_16x4", input_size=(4, 32, 32), embed_dim=16,
                         depths=(1, 1, 1, 1), num_classes=4),
    "mvitv2": get_config("mvitv2_t", input_size=(1, 32, 32), embed_dim=16, depths=(1, 1, 1, 1),
                         num_classes=4),
    "hiera": get_config("hiera_t", input_size=(1, 32, 32), embed_dim=16, depths=(1, 1, 1, 1),
                        num_classes=4, mask_unit_size=(1, 4, 4)),
}


def _input(cfg, batch=2):
    return torch.randn(batch, cfg.in_chans,
                       *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_no_graph_breaks_in_a_training_forward(family):
    cfg = FAMILIES[family]
    report = count_graph_breaks(build_model(cfg).train(), _input(cfg))
    assert report["graph_breaks"] == 0, report["reasons"]
    assert report["graphs"] == 1


def test_no_graph_breaks_with_activation_checkpointing():
    cfg = FAMILIES["hiera"]
    model = build_model(cfg).train()
    model.set_grad_checkpointing(True)
    report = count_graph_breaks(model, _input(cfg))
    assert report["graph_breaks"] == 0, report["reasons"]


def test_no_graph_breaks_in_the_sparse_mae_encoder():
    """The MAE's encoder runs the same blocks on the kept units; the mask bookkeeping around
    it (a data-dependent count of kept units, boolean indexing of the masked tokens) breaks
    the graph and stays eager (see benchmarks/results/compile_cpu.md)."""
    from mvit_lab.masking import ids_from_keep, random_keep
    from mvit_lab.models.mae import MaskedAutoencoder

    mae = MaskedAutoencoder(FAMILIES["hiera"].replace(q_pool=2)).train()  # as Hiera's MAE
    keep = random_keep(2, mae.num_units, 0.5, torch.Generator().manual_seed(0))
    report = count_graph_breaks(mae.forward_encoder, _input(FAMILIES["hiera"]),
                                ids_from_keep(keep))
    assert report["graph_breaks"] == 0, report["reasons"]


def test_a_break_is_counted():
    """The counter itself can fail: a forward that calls .item() breaks the graph."""

    class Breaks(torch.nn.Module):
        def forward(self, x):
            n = int(x.sum().item() > 0)
            return x * (n + 1)

    report = count_graph_breaks(Breaks(), torch.randn(3))
    assert report["graph_breaks"] == 1 and "item" in report["reasons"][0]
