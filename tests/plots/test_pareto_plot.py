from __future__ import annotations

from mvit_lab.plots.pareto import _get_front_info, _render_front
from mvit_lab.search.pareto import Objective

ACC, COST = Objective("val_top1", "max"), Objective("gflops", "min")
RECORDS = [
    dict(point="a", val_top1=90.0, gflops=1.0, status="finished", run_id="r1"),
    dict(point="b", val_top1=80.0, gflops=0.5, status="finished", run_id="r2"),
    dict(point="c", val_top1=70.0, gflops=2.0, status="finished", run_id="r3"),  # dominated
    dict(point="d", val_top1=99.0, gflops=0.1, status="failed", run_id="r4"),  # never shown
    dict(point="e", val_top1=None, gflops=0.2, status="finished", run_id="r5"),
]


def test_front_info_is_plain_data():
    info = _get_front_info(RECORDS, (ACC, COST), x=COST, y=ACC)
    assert [p["label"] for p in info["points"]] == ["a", "b", "c"]
    assert [p["on_front"] for p in info["points"]] == [True, True, False]
    assert info["front"] == [(0.5, 80.0), (1.0, 90.0)]  # the staircase, in x order
    assert info["title"] == "val_top1 (max) vs gflops (min)"


def test_render_draws_front_dominated_and_staircase():
    fig = _render_front(_get_front_info(RECORDS, (ACC, COST), x=COST, y=ACC, color="gflops"))
    names = [t.name for t in fig.data]
    assert names == ["dominated", "Pareto front", "2-D front"]
    assert list(fig.data[1].customdata) == ["r1", "r2"]
    assert "plotly" in fig.to_html(include_plotlyjs=False)
