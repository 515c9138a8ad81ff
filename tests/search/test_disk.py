"""The disk a sweep's checkpoints need, printed before it starts."""

from __future__ import annotations

import torch

from mvit_lab import build_model
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search.disk import estimate_disk, format_disk
from mvit_lab.search.sweep import parse_sweep
from mvit_lab.train.retention import checkpoint_bytes

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _exp(tmp_path, search, **train):
    tree = dict(name="disk", data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=1, **train), search=search,
                budget=dict(samples=5, seeds=2, concurrency=3),
                tracking=dict(uri=str(tmp_path / "mlruns.db")))
    return experiment_from_dict(tree, str(tmp_path / "exp.yaml"))


def _full(**knobs):
    with torch.device("meta"):
        return checkpoint_bytes(build_model(_cfg(**knobs)))


def _cfg(**knobs):
    from mvit_lab.presets import get_config

    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items() if k != "preset"}
    return get_config("hiera_t", **(kw | knobs))


def test_a_grid_sweep_sums_its_points(tmp_path):
    exp = _exp(tmp_path, dict(grid={"embed_dim": [16, 32]}))
    d = estimate_disk(exp, parse_sweep(exp), tmp_path)
    small, large = _full(embed_dim=16), _full(embed_dim=32)
    assert d.exact and d.trials == 4 and d.concurrency == 3
    assert d.largest_checkpoint == large
    assert d.kept_total == 2 * (small + large)  # keep: last keeps each full checkpoint
    assert d.running_peak == 2 * large  # the old checkpoint stays until the new one is whole
    assert d.total == d.kept_total + 3 * d.running_peak
    assert d.free is not None and d.free > 0


def test_keep_none_keeps_nothing_and_weights_are_counted(tmp_path):
    exp = _exp(tmp_path, dict(grid={"embed_dim": [16, 32]}), keep="none")
    assert estimate_disk(exp, parse_sweep(exp)).kept_total == 0
    exp = _exp(tmp_path, dict(grid={"embed_dim": [16]}), keep="best", keep_weights=True)
    d = estimate_disk(exp, parse_sweep(exp))
    with torch.device("meta"):
        model = build_model(_cfg(embed_dim=16))
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert d.kept_total == 2 * 2 * weights  # best.pt + weights.pt, for 2 seeds
    assert d.running_peak == 2 * _full(embed_dim=16) + 2 * weights


def test_an_optuna_space_takes_its_largest_draw_per_sample(tmp_path):
    exp = _exp(tmp_path, dict(params={"embed_dim": {"choice": [16, 32]}}))
    d = estimate_disk(exp, parse_sweep(exp))
    assert not d.exact and d.trials == 5
    assert d.kept_total == 5 * _full(embed_dim=32)


def test_design_spaces_take_the_largest_draw_of_any_space_per_trial(tmp_path):
    # the populations are drawn when the sweep starts, after the estimate is printed
    band = {"gflops": {"min": 0.0, "max": 1.0}}
    exp = _exp(tmp_path, dict(design_spaces=dict(
        small=dict(base=dict(embed_dim=16), params={"num_heads": {"choice": [1, 2]}}),
        wide=dict(base=dict(embed_dim=16), params={"embed_dim": {"choice": [16, 24]}})),
        band=band))
    d = estimate_disk(exp, parse_sweep(exp))
    assert not d.exact and d.trials == 5 * 2 * 2  # samples x spaces x seeds
    assert d.largest_checkpoint == _full(embed_dim=24)
    assert d.kept_total == 20 * _full(embed_dim=24)


def test_the_printed_lines_warn_when_the_disk_is_too_small(tmp_path):
    exp = _exp(tmp_path, dict(grid={"embed_dim": [16, 32]}))
    d = estimate_disk(exp, parse_sweep(exp), tmp_path)
    lines = format_disk(d)
    assert len(lines) == 1 and lines[0].startswith("disk: checkpoints ")
    assert "kept by 4 finished trials (keep: last)" in lines[0] and "free" in lines[0]
    import dataclasses

    lines = format_disk(dataclasses.replace(d, free=d.total - 1))
    assert lines[1].startswith("warning: the sweep may need ") and "train.keep" in lines[1]
