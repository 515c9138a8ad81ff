from __future__ import annotations

import pytest

from mvit_lab import get_config
from mvit_lab.search.design_spaces import interleave, sample_design_points
from mvit_lab.search.space import parse_space, resolve_point
from mvit_lab.search.trial import trial_id

BASE = {"preset": "mvitv2_t", "input_size": [1, 32, 32], "depths": [1, 1, 1, 1],
        "num_classes": 10}
PARAMS = {"embed_dim": {"choice": [8, 16, 24, 32, 40, 48, 56, 64]},
          "num_heads": {"choice": [1, 2]}, "mlp_ratio": {"float": [2.0, 4.0]}}


def _tree(band=None, **spaces):
    spaces = spaces or {"a": {"base": BASE, "params": PARAMS},
                        "b": {"base": {**BASE, "pool_mode": "max"}, "params": PARAMS}}
    return {"design_spaces": spaces, "band": band or {"gflops": {"min": 0.016, "max": 0.032}}}


def fake_cost(cfg):  # GFLOPs proportional to the width: the band is a width range
    return cfg.embed_dim / 1000, 1000.0 * cfg.embed_dim


def test_rejection_sampling_keeps_every_point_inside_the_band():
    space = parse_space(_tree())
    points = sample_design_points(space, get_config("mvitv2_t"), 6, seed=0, cost=fake_cost)
    assert [p.space for p in points] == ["a"] * 6 + ["b"] * 6
    for p in points:
        cfg = resolve_point(space, get_config("mvitv2_t"), p)
        assert 16 <= cfg.embed_dim <= 32  # the band, through the cost
        assert cfg.pool_mode == ("max" if p.space == "b" else "conv")  # its own base
        assert p.name.startswith(f"{p.space}:")
    assert len({(p.space, str(p.model)) for p in points}) == 12  # distinct within a space
    # seeded: the same draws again; another seed, another population
    again = sample_design_points(space, get_config("mvitv2_t"), 6, seed=0, cost=fake_cost)
    assert again == points
    other = sample_design_points(space, get_config("mvitv2_t"), 6, seed=1, cost=fake_cost)
    assert other != points


def test_a_space_population_does_not_depend_on_the_other_spaces():
    alone = parse_space(_tree(a={"base": BASE, "params": PARAMS}))
    both = parse_space(_tree())
    a1 = sample_design_points(alone, get_config("mvitv2_t"), 4, cost=fake_cost)
    a2 = sample_design_points(both, get_config("mvitv2_t"), 4, cost=fake_cost)[:4]
    assert a1 == a2


def test_the_same_knobs_in_two_spaces_are_two_trials():
    params = {"embed_dim": {"choice": [16, 24, 32]}, "num_heads": {"choice": [1, 2]}}
    space = parse_space(_tree(a={"base": BASE, "params": params},
                              b={"base": {**BASE, "pool_mode": "max"}, "params": params}))
    pts = sample_design_points(space, get_config("mvitv2_t"), 6, cost=fake_cost)
    a = {str(p.model): p for p in pts if p.space == "a"}
    b = {str(p.model): p for p in pts if p.space == "b"}
    assert set(a) == set(b) and len(a) == 6  # every in-band point, in both spaces
    assert len({trial_id(p, 0) for p in pts}) == 12


def test_an_unreachable_band_is_one_error_naming_the_space_and_the_range():
    space = parse_space(_tree(band={"gflops": {"min": 1.0}}))
    with pytest.raises(ValueError, match=r"search.band: unreachable for design space 'a': "
                       r"gflops in \[1.0, inf\], but its \d+ buildable draws had gflops "
                       r"\[0.008, 0.064\]"):
        sample_design_points(space, get_config("mvitv2_t"), 2, cost=fake_cost)


def test_a_band_too_narrow_for_the_samples_says_how_many_fit():
    # only embed_dim 16 fits: 2 heads x the float mlp_ratio are many points; choices only
    # make it finite
    params = {"embed_dim": {"choice": [8, 16, 64]}, "num_heads": {"choice": [1, 2]}}
    space = parse_space(_tree(a={"base": BASE, "params": params},
                              band={"gflops": {"min": 0.012, "max": 0.02}}))
    with pytest.raises(ValueError, match=r"search.design_spaces.a: only 2 distinct points of "
                       r"\d+ draws fall in the band"):
        sample_design_points(space, get_config("mvitv2_t"), 3, cost=fake_cost)


def test_unbuildable_draws_are_rejected_not_kept():
    params = {"embed_dim": {"choice": [16, 24]}, "num_heads": {"choice": [1, 5]}}  # 5 heads
    space = parse_space(_tree(a={"base": BASE, "params": params},
                              band={"gflops": {"max": 1.0}}))
    points = sample_design_points(space, get_config("mvitv2_t"), 2, cost=fake_cost)
    assert all(p.model["num_heads"] == 1 for p in points)


def test_sampling_with_the_real_flop_count():
    space = parse_space(_tree(a={"base": BASE, "params": {"embed_dim": {"choice": [8, 16,
                                                                                   64]}}},
                              band={"gflops": {"min": 0.005, "max": 0.05}}))
    from mvit_lab.measure import count_flops

    (point,) = sample_design_points(space, get_config("mvitv2_t"), 1)
    cost = count_flops(resolve_point(space, get_config("mvitv2_t"), point))
    assert 0.005 <= cost.gflops <= 0.05


@pytest.mark.parametrize("tree, message", [
    (lambda t: t.pop("band"), "search.band: a design_spaces search needs a complexity band"),
    (lambda t: t.update(band={"gflops": {"min": 2, "max": 1}}),
     "search.band.gflops: min 2 must be below max 1"),
    (lambda t: t.update(band={"top1": {"max": 1}}), "search.band.top1: only gflops, params"),
    (lambda t: t["design_spaces"]["a"].update(params={"embed_dm": {"choice": [1]}}),
     "search.design_spaces.a.params.embed_dm: not an ArchConfig knob"),
    (lambda t: t["design_spaces"]["a"].pop("params"),
     r"search.design_spaces.a: must be \{base"),
    (lambda t: t.update(base=BASE), "search.base: a design_spaces search gives each"),
])
def test_bad_design_spaces_name_the_entry(tree, message):
    t = _tree()
    t["design_spaces"] = {k: dict(v) for k, v in t["design_spaces"].items()}
    tree(t)
    with pytest.raises(ValueError, match=message):
        parse_space(t)


def test_a_band_outside_design_spaces_is_refused():
    with pytest.raises(ValueError, match="search.band: only a design_spaces search"):
        parse_space({"grid": {"pool_mode": ["max"]}, "band": {"gflops": {"max": 1}}})


def test_trials_start_with_the_spaces_in_turn():
    space = parse_space(_tree())
    points = sample_design_points(space, get_config("mvitv2_t"), 3, cost=fake_cost)
    order = interleave(points)
    assert [p.space for p in order] == ["a", "b"] * 3
    assert sorted(order, key=points.index) == points
