"""The budget view's data: consumed epochs in the order trials ended, the hypervolume of the
finished trials only, and each stopped trial at the epoch it stopped."""

from __future__ import annotations

import pandas as pd
import pytest

from mvit_lab.dashboards.budget import budget_info, render_budget
from mvit_lab.search.pareto import hypervolume, parse_objectives

OBJ = parse_objectives({"val_top1": "max", "gflops": "min"})


def _rec(i, status, epoch, top1, gflops, **extra):
    return {**dict(run_id=f"r{i}", point=f"p{i}", status=status, truncated=status == "stopped",
                   epoch=epoch, val_top1=top1, gflops=gflops,
                   end_time=pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=i)), **extra}


def test_budget_info():
    records = [
        _rec(3, "finished", 9, 80.0, 0.01),
        _rec(1, "finished", 9, 90.0, 0.02),
        _rec(2, "stopped", 1, 99.0, 0.001, stopped_epoch=1.0, stopped_rung=0.0),
        _rec(4, "pruned", None, None, 5.0),
        _rec(5, "stopped", 3, 95.0, 0.0001, stopped_epoch=3.0, stopped_rung=1.0),
        _rec(6, "running", 2, 10.0, 0.1, end_time=None),
    ]
    info = budget_info(records, OBJ)
    # ended in time order: r1 (9), r2 stopped (1), r3 (9), r4 pruned (0), r5 stopped (3)
    assert [s["epochs"] for s in info["steps"]] == [0, 9, 10, 19, 19, 22]
    assert [s["trials"] for s in info["steps"]] == [0, 1, 1, 2, 2, 2]
    assert info["reference"] == pytest.approx([79.0, 0.021])  # worst finished, 10% beyond
    # the stopped trials' better values never count: r2 and r5 would dominate everything
    both = hypervolume([[90.0, 0.02], [80.0, 0.01]], ["max", "min"], [79.0, 0.021])
    assert info["steps"][-1]["hypervolume"] == pytest.approx(both)
    assert info["steps"][1]["hypervolume"] == pytest.approx(11 * 0.001)
    assert [(s["point"], s["epoch"], s["rung"]) for s in info["stopped"]] == [
        ("p2", 1.0, 0.0), ("p5", 3.0, 1.0)]
    assert [f["point"] for f in info["finished"]] == ["p1", "p3"]
    fig = render_budget(info)
    assert [t.name for t in fig.data] == ["hypervolume", "finished", "stopped"]


def test_hypervolume_grows_with_a_dominating_finish():
    records = [_rec(1, "finished", 4, 50.0, 0.5), _rec(2, "finished", 4, 60.0, 0.4),
               _rec(3, "finished", 4, 70.0, 0.2)]
    hv = [s["hypervolume"] for s in budget_info(records, OBJ)["steps"]]
    assert hv[0] == 0.0 and 0 < hv[1] < hv[2] < hv[3]
    assert budget_info([], OBJ)["steps"] == [dict(epochs=0.0, hypervolume=0.0, trials=0)]
