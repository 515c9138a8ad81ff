"""Knob importance: Optuna's evaluators over a store where one knob alone drives each
objective, and a grid's main effects against hand-computed values."""

from __future__ import annotations

import pytest

from mvit_lab.dashboards.data import DataError, Sweep, load_sweep
from mvit_lab.dashboards.importance import (
    distributions,
    format_importance,
    importance_info,
)
from mvit_lab.dashboards.meta import parent_params, read_runs, search_space
from mvit_lab.search.pareto import Objective


def _planted(store):
    sweep = load_sweep(store["uri"], "planted")
    space = search_space(sweep, parent_params(read_runs(sweep), sweep.parent_run_id))
    return sweep, space


def test_the_driving_knob_leads_for_its_objective_alone(planted_store):
    sweep, space = _planted(planted_store)
    assert set(space["params"]) == {"embed_dim", "mlp_ratio", "pool_mode"}
    info = importance_info(sweep, space)
    assert info["message"] is None and info["objectives"] == ["val_top1", "gflops"]
    assert info["n"] == dict(val_top1=24, gflops=24)
    assert info["source"] == "the sweep's search space"
    fanova, ped = info["methods"]
    assert (fanova["method"], ped["method"]) == ("fanova", "ped_anova")
    # top-1 = 70 + embed_dim and GFLOPs = 0.01 * mlp_ratio: nothing else moves them
    assert fanova["values"]["val_top1"]["embed_dim"] > 0.95
    assert fanova["values"]["gflops"]["mlp_ratio"] > 0.95
    for objective, knob in (("val_top1", "embed_dim"), ("gflops", "mlp_ratio")):
        values = ped["values"][objective]
        assert max(values, key=values.get) == knob, (objective, values)
        assert sum(values.values()) == pytest.approx(1.0)
    assert info["knobs"][0] == "embed_dim"  # rows: by importance for the first objective
    table = format_importance(info)
    assert table["columns"] == ["knob", "fANOVA: val_top1", "fANOVA: gflops",
                                "PED-ANOVA: val_top1", "PED-ANOVA: gflops"]
    assert table["rows"][0][0] == "embed_dim"
    assert "val_top1: 24 finished trials" in table["note"]
    assert "PED-ANOVA: top 21% of trials" in table["note"]  # 5 of 24, not Optuna's 10%


def test_hidden_below_the_minimum_with_the_count(planted_store):
    sweep, space = _planted(planted_store)
    info = importance_info(sweep, space, min_trials=25)
    assert info["objectives"] == [] and info["knobs"] == []
    assert info["message"] == (
        "not enough trials for knob importance: val_top1: 24 finished trial(s); importance is "
        "shown from 25; gflops: 24 finished trial(s); importance is shown from 25")
    with pytest.raises(ValueError, match="min_trials: must be an integer >= 2"):
        importance_info(sweep, space, min_trials=1)


def test_without_a_space_the_levels_seen_stand_in(planted_store):
    sweep, _ = _planted(planted_store)
    dists, source = distributions(None, sweep.finished, sweep.knobs())
    assert source.startswith("the levels the trials took")
    assert dists["embed_dim"].low == 8 and dists["embed_dim"].high == 24  # numbers: a range
    assert dists["pool_mode"].choices == ('"avg"', '"max"')
    info = importance_info(sweep, None)
    assert info["methods"][0]["values"]["val_top1"]["embed_dim"] > 0.95


def test_grid_main_effects_by_hand(fixture_store):
    """pool_mode max: 90, 92, 94; avg: 85, 87. Grand mean 89.6; SS between 3 * 2.4^2 +
    2 * 3.6^2 = 43.2; SS total 0.16 + 5.76 + 19.36 + 21.16 + 6.76 = 53.2."""
    sweep = load_sweep(fixture_store["uri"], "ablation")
    assert importance_info(sweep)["message"].startswith("not enough trials")  # 5 < 10
    info = importance_info(sweep, min_trials=5)
    (effect,) = info["methods"]
    assert effect["method"] == "main_effect"
    assert effect["values"]["val_top1"]["pool_mode"] == pytest.approx(43.2 / 53.2)
    assert effect["ranges"]["val_top1"]["pool_mode"] == pytest.approx(6.0)
    assert effect["values"]["gflops"]["pool_mode"] == pytest.approx(1.0)  # 1.0 vs 0.5 exactly
    assert format_importance(info)["rows"] == [["pool_mode", "0.81", "1.00"]]


def test_a_ladder_has_no_importance(fixture_store):
    info = importance_info(load_sweep(fixture_store["uri"], "ladder"))
    assert "ladder changes knobs cumulatively" in info["message"]


def test_unknown_method_and_a_value_outside_the_space():
    rec = dict(status="finished", truncated=False, model=dict(embed_dim=32), train={},
               val_top1=1.0, run_id="r")
    sweep = Sweep(tracking_uri="sqlite://", experiment="e", experiment_id="1",
                  parent_run_id="p", name="s", mode="params",
                  objectives=(Objective("val_top1", "max"),), base=None, base_source="",
                  records=[dict(rec, model=dict(embed_dim=v), val_top1=float(v), run_id=str(v))
                           for v in (8, 16, 32)], counts={}, fingerprint="")
    with pytest.raises(ValueError, match=r"methods\[0\]: unknown method 'anova'"):
        importance_info(sweep, methods=["anova"])
    space = dict(base={}, params=dict(embed_dim=dict(int=[8, 16])))
    with pytest.raises(DataError, match="importance of val_top1 in sweep 's'"):
        importance_info(sweep, space, min_trials=3)
