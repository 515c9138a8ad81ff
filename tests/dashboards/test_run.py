"""The run panel's data: curves per epoch, cost per stage, config and links of one trial."""

from __future__ import annotations

import pytest
from dashboard_store import BASE

from mvit_lab.dashboards.data import DataError, load_sweep
from mvit_lab.dashboards.run import cost_breakdown, run_details
from mvit_lab.measure import count_flops
from mvit_lab.plots.run import _get_curves_info, _render_cost, _render_curves


def test_run_details_of_a_trial(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    run_id = fixture_store["ablation_runs"][0]  # max, seed 0: the one with curves
    d = run_details(sweep, run_id)
    assert (d["run_id"], d["point"], d["seed"], d["status"]) == \
        (run_id, "pool_mode=max", "0", "finished")
    accuracy, loss = d["curves"]["panels"]
    # final metrics are logged again at the last epoch: one value per epoch all the same
    assert accuracy["series"] == {"val_top1": [(1, 50.0), (2, 70.0), (3, 90.0)]}
    assert loss["series"] == {"train_loss": [(1, 2.0), (2, 1.0), (3, 0.5)]}
    assert d["curves"]["epochs"] == 3
    assert d["config"]["model"]["pool_mode"] == "max" and d["config"]["data"]["dataset"] == \
        "digits"
    assert d["metrics"]["val_top1"] == 90.0 and d["metrics"]["gflops"] == 1.0
    assert d["url"] is None  # a SQLite store has no server: the panel says how to start one
    assert d["ui_command"].startswith("mlflow ui --backend-store-uri sqlite:///")
    assert d["ui_url"].endswith(f"/#/experiments/{sweep.experiment_id}/runs/{run_id}")
    with pytest.raises(DataError, match="run 'nope' is not a trial"):
        run_details(sweep, "nope")


def test_cost_breakdown_per_stage_matches_count_flops():
    cost = cost_breakdown(BASE.to_dict())
    report = count_flops(BASE)
    assert cost["gflops"] == report.gflops and cost["params"] == report.params
    assert list(cost["by_stage"]) == ["stem", "stage0", "stage1", "head"]
    assert sum(cost["by_stage"].values()) == pytest.approx(report.gflops)
    assert [(s["stage"], s["blocks"], s["dim"]) for s in cost["stages"]] == \
        [("stage0", 1, "8->8"), ("stage1", 1, "8->16")]
    # a stage's first block keeps the previous stage's attention (Hiera)
    assert [s["attention"] for s in cost["stages"]] == ["mask unit", "mask unit"]
    wider = cost_breakdown(BASE.replace(depths=(1, 2)).to_dict())
    assert wider["stages"][1]["attention"] == "mask unit then global"
    assert sum(s["share"] for s in cost["stages"]) < 1.0  # stem and head take the rest
    with pytest.raises(DataError, match="does not rebuild.*depths"):
        cost_breakdown(dict(BASE.to_dict(), depths=[]))


def test_curves_and_cost_figures():
    info = _get_curves_info({"val_top1": [(0, 1.0), (1, 50.0), (2, float("nan")), (2, 70.0)],
                             "val_loss": [(1, 2.0)]})
    assert info["panels"][0]["series"] == {"val_top1": [(1, 50.0), (2, 70.0)]}
    fig = _render_curves(info)
    assert [t.name for t in fig.data] == ["val_top1", "val_loss"]
    empty = _render_curves(_get_curves_info({}))
    assert "no epochs logged yet" in empty.layout.annotations[-1].text
    cost = _render_cost(cost_breakdown(BASE.to_dict()))
    assert list(cost.data[0].x) == ["stem", "stage0", "stage1", "head"]
