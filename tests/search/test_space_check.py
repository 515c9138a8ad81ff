"""Optuna ``params`` spaces are checked before anything runs, like grids."""

from __future__ import annotations

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search._space_check import check_params_space
from mvit_lab.search.space import parse_space
from mvit_lab.search.sweep import parse_sweep

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _exp(params, **sections):
    return experiment_from_dict(dict(name="space", data=dict(dataset="digits"), model=dict(TINY),
                                     train=dict(epochs=1), search=dict(params=params),
                                     **sections))


def test_a_finite_choice_space_is_enumerated_and_refused_like_a_grid():
    # 3 heads do not divide a width of 8: the same point a grid refuses
    with pytest.raises(ValueError, match=r"search.params: 1 of 2 points cannot build: "
                                         r"num_heads=3: num_heads: stage 0 has 3 heads"):
        parse_sweep(_exp({"num_heads": {"choice": [1, 3]}}))
    # train.* keys cannot break a build: a continuous lr keeps the space enumerable
    with pytest.raises(ValueError, match="1 of 2 points cannot build"):
        parse_sweep(_exp({"num_heads": {"choice": [1, 3]}, "train.lr": {"log": [1e-4, 1e-2]}}))
    assert parse_sweep(_exp({"num_heads": {"choice": [1, 2, 4]}})).warnings == ()


def test_a_continuous_space_is_sampled_and_refused_when_most_cannot_build():
    with pytest.raises(ValueError, match=r"search.params: \d+ of 256 sampled points \(7\d%\) "
                                         "cannot build, e.g. num_heads="):
        parse_sweep(_exp({"num_heads": {"choice": [1, 3, 5, 7]},
                          "mlp_ratio": {"float": [2.0, 4.0]}}))


def test_a_sampled_space_where_some_cannot_build_runs_with_a_warning():
    sweep = parse_sweep(_exp({"num_heads": {"choice": [1, 2, 4, 3]},
                              "mlp_ratio": {"float": [2.0, 4.0]}}))
    (warning,) = sweep.warnings
    assert warning.startswith("search.params: ") and "of 256 sampled points (2" in warning
    assert "num_heads=3" in warning and "recorded as failed trials" in warning


def test_the_check_is_seeded_and_lists_each_distinct_error_once():
    exp = _exp({"num_heads": {"choice": [1, 3, 5]}, "mlp_ratio": {"float": [2.0, 4.0]}})
    space = parse_space(exp.extra["search"])
    a, b = (check_params_space(space, exp.model, draws=64) for _ in range(2))
    assert a == b and not a.exhaustive and a.checked == 64
    assert len(a.problems) == 2 and a.bad > 2  # 3 and 5 heads, each drawn many times
    c = check_params_space(space, exp.model, draws=64, seed=1)
    assert c.bad != a.bad or c.problems != a.problems


def test_pretraining_rules_apply_to_sampled_points():
    # 4 mask units: a mask ratio of 0.9 keeps none, whatever the width
    with pytest.raises(ValueError, match="pretrain.mask_ratio: 0.9 keeps no unit"):
        parse_sweep(_exp({"embed_dim": {"choice": [8, 16]}}, pretrain=dict(mask_ratio=0.9)))
