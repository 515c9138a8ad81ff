"""Ladders side by side: hand-computed means and differences, and the messages."""

from __future__ import annotations

import pytest

from mvit_lab.dashboards.compare import (
    comparison_figure,
    comparison_table,
    ladder_comparison,
    ladder_groups,
)
from mvit_lab.dashboards.data import Sweep
from mvit_lab.dashboards.export import ladders_section
from mvit_lab.search.pareto import Objective


def _sweep(experiment, tops, mode="ladder", base=None):
    records = [dict(status="finished", truncated=False, ladder_step=str(step), point=name,
                    seed=seed, val_top1=top1, gflops=2.0 - step, throughput=100.0)
               for step, (name, values) in enumerate(tops) for seed, top1 in enumerate(values)]
    return Sweep(tracking_uri="sqlite://", experiment=experiment, experiment_id="1",
                 parent_run_id="p", name=experiment, mode=mode,
                 objectives=(Objective("val_top1", "max"),), base=base, base_source="",
                 records=records, counts=dict(finished=len(records)), fingerprint="")


def test_two_ladders_side_by_side():
    scratch = _sweep("scratch", [("mvitv2", [90.0, 92.0]), ("hiera", [85.0, 87.0])])
    mae = _sweep("mae", [("mvitv2", [93.0]), ("hiera", [94.0])])
    info = ladder_comparison([scratch, mae])
    assert info["message"] is None and info["labels"] == ["scratch", "mae"]
    assert [r["delta"]["mae"] for r in info["rows"]] == [pytest.approx(2.0), pytest.approx(8.0)]
    table = comparison_table(info)
    assert table["columns"] == ["step", "GFLOPs", "val_top1: scratch", "val_top1: mae",
                                "mae − scratch"]
    assert table["rows"][1] == ["hiera", "1", "86.00 ± 1.41 (2)", "94.00 (n = 1)", "+8.00"]
    fig = comparison_figure(info)
    assert [t.name for t in fig.data] == ["scratch", "mae"]
    assert list(fig.data[0].y) == [91.0, 86.0] and list(fig.data[1].x) == ["mvitv2", "hiera"]


def test_fewer_than_two_ladders_is_a_message():
    grid = _sweep("grid", [("a", [1.0])], mode="grid")
    one = _sweep("scratch", [("mvitv2", [90.0])])
    info = ladder_comparison([grid, one])
    assert info["rows"] == [] and "needs two ladder sweeps" in info["message"]
    assert "found: scratch" in info["message"]
    assert "found: none" in ladder_comparison([])["message"]


def test_only_ladders_of_the_same_steps_and_base_are_compared():
    steps = [("mvitv2", [90.0]), ("hiera", [85.0])]
    digits = dict(input_size=[1, 32, 32])
    video = dict(input_size=[8, 32, 32])
    sweeps = [_sweep("digits", steps, base=digits), _sweep("video", steps, base=video),
              _sweep("digits-mae", steps, base=digits), _sweep("video-mae", steps, base=video),
              _sweep("other-steps", [("mvitv2", [1.0])], base=digits),
              _sweep("grid", steps, mode="grid", base=digits)]
    groups = ladder_groups(sweeps)
    assert [[s.experiment for s in g] for g in groups] == [["digits", "digits-mae"],
                                                           ["video", "video-mae"]]
    html = ladders_section(sweeps)
    assert html.count("<h2>Ladders side by side: ") == 2
    assert "Ladders side by side: digits, digits-mae" in html
    assert ladders_section(sweeps[:2]) == ""
