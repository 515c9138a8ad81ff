from __future__ import annotations

from mvit_lab.plots.pareto import _get_front_info, _render_front
from mvit_lab.search.pareto import Objective

ACC, COST, SPEED = Objective("val_top1", "max"), Objective("gflops", "min"), \
    Objective("throughput", "max")
RECORDS = [
    dict(point="a", val_top1=90.0, gflops=1.0, throughput=10.0, status="finished", run_id="r1",
         diff=[("pool_mode", "conv", "max")]),
    dict(point="b", val_top1=80.0, gflops=0.5, throughput=20.0, status="finished", run_id="r2",
         diff=[]),
    # dominated in (gflops, val_top1), but the fastest: on the front of all three objectives
    dict(point="c", val_top1=70.0, gflops=2.0, throughput=50.0, status="finished", run_id="r3"),
    dict(point="d", val_top1=99.0, gflops=0.1, status="failed", run_id="r4"),  # never shown
    dict(point="e", val_top1=None, gflops=0.2, status="finished", run_id="r5"),  # no metric
    dict(point="f", val_top1=60.0, gflops=3.0, throughput=1.0, status="finished", run_id="r6"),
]


def test_front_info_is_plain_data():
    info = _get_front_info(RECORDS, (ACC, COST), x=COST, y=ACC)
    assert [p["label"] for p in info["points"]] == ["a", "b", "c", "f"]
    assert [p["on_front"] for p in info["points"]] == [True, True, False, False]
    assert info["front"] == [(0.5, 80.0), (1.0, 90.0)]  # the staircase, in x order
    assert info["line_shape"] == "hv"  # x is a cost: flat until the next front point
    assert info["missing"] == 1 and info["not_finished"] == {"failed": 1}
    assert info["title"] == "val_top1 (max) vs gflops (min)"
    assert info["points"][0]["diff"] == ["pool_mode: conv → max"]


def test_front_of_the_axes_and_ranks_over_all_objectives():
    info = _get_front_info(RECORDS, (ACC, COST, SPEED), x=COST, y=ACC, color="throughput")
    by_label = {p["label"]: p for p in info["points"]}
    assert by_label["c"]["on_front"] is False and by_label["c"]["rank"] == 0
    assert by_label["f"]["rank"] == 1
    assert info["color_range"] == (1.0, 50.0)
    # two maximised axes: the best y at larger x drops first, then runs flat
    speed = _get_front_info(RECORDS, (ACC, COST, SPEED), x=SPEED, y=ACC)
    assert speed["line_shape"] == "vh"
    assert speed["front"] == [(10.0, 90.0), (20.0, 80.0), (50.0, 70.0)]


def test_render_draws_front_dominated_and_staircase():
    fig = _render_front(_get_front_info(RECORDS, (ACC, COST, SPEED), x=COST, y=ACC,
                                        color="throughput"))
    points = [t for t in fig.data if t.customdata is not None]
    assert [t.name for t in points] == ["dominated", "front of all 3 objectives",
                                        "front of val_top1 vs gflops"]
    assert list(fig.data[-1].customdata) == ["r1", "r2"]
    assert list(points[1].customdata) == ["r3"]
    # one colour scale shared by every trace, so colours compare across them
    assert {(t.marker.cmin, t.marker.cmax) for t in points} == {(1.0, 50.0)}
    assert "pool_mode: conv → max" in fig.data[-1].text[0]
    assert "the search space's base" in fig.data[-1].text[1]
    assert "plotly" in fig.to_html(include_plotlyjs=False)


def test_render_without_points_says_so():
    fig = _render_front(_get_front_info(RECORDS[3:4], (ACC, COST), x=COST, y=ACC))
    assert "no finished trials" in fig.layout.annotations[0].text


def _legend(fig):
    return {t.name: (t.marker.color, t.marker.symbol) for t in fig.data
            if t.showlegend is not False}


def test_legend_swatches_do_not_take_colours_from_the_colour_scale():
    """The front's swatch was the first front point's scale colour (yellow in one view, blue
    in another)."""
    plain = _render_front(_get_front_info(RECORDS, (ACC, COST, SPEED), x=COST, y=ACC))
    scaled = _render_front(_get_front_info(RECORDS, (ACC, COST, SPEED), x=COST, y=ACC,
                                           color="throughput"))
    assert _legend(plain) == _legend(scaled) == {
        "dominated": ("#7f7f7f", "circle"), "front of all 3 objectives": ("#7f7f7f", "diamond"),
        "front of val_top1 vs gflops": ("#1f77b4", "circle")}
    # the points themselves keep the scale, and are not in the legend twice
    front = scaled.data[-1]
    assert list(front.marker.color) == [10.0, 20.0] and front.showlegend is False


def test_equal_values_get_a_range_around_them_not_below_zero():
    """All trials at one GFLOPs drew an axis (and a colour bar) from about -1 to +1."""
    same = [dict(r, gflops=0.0011, throughput=2100.0) for r in RECORDS]
    info = _get_front_info(same, (ACC, COST, SPEED), x=COST, y=ACC, color="throughput")
    lo, hi = info["x_range"]
    assert 0 < lo < 0.0011 < hi < 0.0012 and info["y_range"] is None
    assert info["color_range"] == (1995.0, 2205.0)
    fig = _render_front(info)
    assert tuple(fig.layout.xaxis.range) == info["x_range"]
    assert fig.data[-1].marker.cmin == 1995.0
    zero = _get_front_info([dict(r, gflops=0.0) for r in RECORDS], (ACC, COST), x=COST, y=ACC)
    assert zero["x_range"] == (0.0, 1.0)
    # different values: plotly's autorange
    assert _get_front_info(RECORDS, (ACC, COST), x=COST, y=ACC)["x_range"] is None
