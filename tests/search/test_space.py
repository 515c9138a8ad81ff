from __future__ import annotations

import pytest

from mvit_lab import get_config
from mvit_lab.search.space import parse_space, resolve_point, validate_points

BASE = {"preset": "mvitv2_t", "input_size": [1, 32, 32], "kv_stride": [1, 2, 2]}


def test_grid_is_a_full_factorial():
    space = parse_space(dict(base=BASE, grid={"pool_mode": ["conv", "max"],
                                              "train.lr": [0.1, 0.01, 0.001]}))
    points = space.points()
    assert len(points) == 6
    assert points[0].model == {"pool_mode": "conv"} and points[0].train == {"lr": 0.1}
    assert len({p.name for p in points}) == 6


def test_ladder_steps_accumulate():
    space = parse_space(dict(ladder=[{"name": "base"}, {"name": "a", "set": {"rel_pos": "none"}},
                                     {"name": "b", "set": {"pool_mode": "max"}}]))
    steps = space.points()
    assert [p.step for p in steps] == [0, 1, 2]
    assert steps[2].model == {"rel_pos": "none", "pool_mode": "max"}


def test_constraints():
    space = parse_space(dict(grid={"pool_mode": ["max"]},
                             constraints={"gflops": {"max": 1.0}, "params": {"min": 10}}))
    assert space.check_constraints(dict(gflops=0.5, params=100)) == []
    broken = space.check_constraints(dict(gflops=2.0, params=5))
    assert broken == ["gflops 2 > max 1", "params 5 < min 10"]


def test_points_resolve_on_the_base_and_invalid_ones_are_all_listed():
    space = parse_space(dict(base=BASE, grid={"num_heads": [1, 5, 7], "pool_mode": ["max"]}))
    problems = validate_points(space, get_config("hiera_t"))
    assert len(problems) == 2 and all("num_heads:" in p for p in problems)
    cfg = resolve_point(space, get_config("hiera_t"), space.points()[0])
    assert cfg.pool_mode == "max" and cfg.input_size == (1, 32, 32)


@pytest.mark.parametrize(("tree", "message"), [
    ([], "search: must be a mapping"),
    ({"grid": {"pool_mode": ["max"]}, "params": {"embed_dim": {"choice": [8]}}},
     "exactly one of grid, ladder, params"),
    ({}, "exactly one of"),
    ({"grid": {"pool_modes": ["max"]}}, r"search.grid.pool_modes: not an ArchConfig knob"),
    ({"grid": {"train.lrr": [1]}}, r"search.grid.train.lrr: not a train key"),
    ({"grid": {"pool_mode": []}}, "must be a non-empty list"),
    ({"ladder": [{"name": "a"}, {"name": "a"}]}, "used twice"),
    ({"ladder": [{"set": {}}]}, r"search.ladder\[0\]: must be"),
    ({"params": {"embed_dim": {"uniform": [1, 2]}}}, "unknown distribution 'uniform'"),
    ({"params": {"mlp_ratio": {"float": [4, 2]}}}, "low 4 must be below high 2"),
    ({"params": {"train.lr": {"log": [0, 1]}}}, r"log: bounds must be > 0"),
    ({"params": {"embed_dim": {"int": [8.5, 16]}}}, "bounds must be integers"),
    ({"params": {"embed_dim": {"choice": [8]}}, "constraints": {"val_top1": {"min": 1}}},
     "only gflops, params can be constrained"),
    ({"params": {"embed_dim": {"choice": [8]}}, "constraints": {"gflops": {"max": "x"}}},
     r"constraints.gflops.max: must be a number"),
    ({"grid": {"pool_mode": ["max"]}, "base": {"depth": 3}}, r"search.base.depth"),
    ({"grid": {"pool_mode": ["max"]}, "extra": 1}, r"search.extra: unknown key"),
])
def test_bad_spaces_name_the_entry(tree, message):
    with pytest.raises(ValueError, match=message):
        parse_space(tree)
