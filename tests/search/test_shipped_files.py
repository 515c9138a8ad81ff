"""Every experiment and search space the project ships parses, and every point builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvit_lab import hiera_ladder
from mvit_lab.configfile import safe_load
from mvit_lab.experiment import load_experiment
from mvit_lab.search.space import parse_space
from mvit_lab.search.sweep import parse_sweep

ROOT = Path(__file__).parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_files_validate(path):
    exp = load_experiment(path)
    if "search" in exp.extra:
        sweep = parse_sweep(exp)  # builds every grid point and ladder step
        assert sweep.objectives


def test_ladder_files_take_the_steps_of_hiera_ladder():
    steps = [name for name, _ in hiera_ladder()]
    for name in ("hiera_ladder_digits", "hiera_ladder_moving_digits"):
        space = parse_space(safe_load((ROOT / "search_spaces" / f"{name}.yaml").read_text()))
        assert [s[0][:2] for s in space.ladder][1:-1] == [s[:2] for s in steps][1:-1]
    imagenet = load_experiment(ROOT / "experiments" / "imagenet_hiera_ladder.yaml")
    points = parse_sweep(imagenet).space.points()
    from mvit_lab.search.space import resolve_point

    last = resolve_point(parse_sweep(imagenet).space, imagenet.model, points[-1])
    assert last.replace(drop_path_rate=0.0) == hiera_ladder()[-1][1]


@pytest.mark.parametrize("name", ["hiera_ladder_digits", "hiera_ladder_moving_digits"])
def test_mae_ladders_are_the_scratch_ladders_plus_pretraining(name):
    scratch = load_experiment(ROOT / "experiments" / f"{name}.yaml")
    mae = load_experiment(ROOT / "experiments" / f"{name}_mae.yaml")
    assert scratch.pretrain is None and mae.pretrain is not None
    assert (mae.data, mae.train, mae.extra) == (scratch.data, scratch.train, scratch.extra)
    assert parse_sweep(mae).space.points() == parse_sweep(scratch).space.points()
