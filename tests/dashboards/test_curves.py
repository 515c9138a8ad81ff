"""Curves of selected trials overlaid, and a sweep's progress over wall time, by hand."""

from __future__ import annotations

import pytest

from mvit_lab.dashboards.curves import (
    MAX_CURVES,
    _render_curves_overlay,
    _render_progress,
    curve_metrics,
    curves_info,
    progress_info,
)
from mvit_lab.dashboards.data import DataError, Sweep, load_sweep
from mvit_lab.search.pareto import Objective
from mvit_lab.tracking import metric_history


def test_selected_curves_from_the_store(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    first = next(r for r in sweep.records if r["point"] == "pool_mode=max" and r["seed"] == "0")
    other = next(r for r in sweep.records if r["point"] == "pool_mode=avg" and r["seed"] == "0")
    ids = [first["run_id"], other["run_id"]]
    assert curve_metrics(sweep, ids)[:2] == ["val_top1", "train_loss"]

    def history(run_id, metric):
        return metric_history(sweep.tracking_uri, run_id, metric)

    info = curves_info(sweep, ids, "val_top1", history)
    (series,) = [s for s in info["series"] if s["run_id"] == first["run_id"]]
    assert series["points"] == [(1, 50.0), (2, 70.0), (3, 90.0)]  # final re-log at 3 kept once
    other_series = [s for s in info["series"] if s["run_id"] == other["run_id"]]
    assert other_series[0]["points"] == [(3, 85.0)]  # only its final value
    loss = curves_info(sweep, ids, "train_loss", history)
    assert loss["missing"] == ["pool_mode=avg (seed 0)"]
    fig = _render_curves_overlay(info)
    assert [t.name for t in fig.data] == ["pool_mode=max (seed 0)", "pool_mode=avg (seed 0)"]
    with pytest.raises(DataError, match="run 'nope' is not a trial of sweep 'ablation'"):
        curves_info(sweep, ["nope"], "val_top1", history)


def _sweep(records):
    return Sweep(tracking_uri="sqlite://", experiment="e", experiment_id="1", parent_run_id="p",
                 name="s", mode="params",
                 objectives=(Objective("val_top1", "max"), Objective("gflops", "min")),
                 base=None, base_source="", records=records, counts={}, fingerprint="")


def test_progress_by_hand():
    records = [dict(run_id="a", status="finished", val_top1=80.0, gflops=2.0),
               dict(run_id="b", status="failed", val_top1=None, gflops=None),
               dict(run_id="c", status="finished", val_top1=70.0, gflops=1.0),
               dict(run_id="d", status="finished", val_top1=90.0, gflops=3.0, truncated=True),
               dict(run_id="e", status="running")]
    times = dict(a=(1000.0, 1120.0), b=(1000.0, 1060.0), c=(1060.0, 1300.0),
                 d=(1120.0, 1240.0), e=(1240.0, None))
    info = progress_info(_sweep(records), times)
    assert info["start"] == 1000.0 and info["running"] == 1
    assert info["minutes"] == [1.0, 2.0, 4.0, 5.0]  # b, a, d, c
    assert info["finished"] == [1, 2, 3, 4]
    assert info["best"]["val_top1"] == [None, 80.0, 80.0, 80.0]  # truncated d does not count
    assert info["best"]["gflops"] == [None, 2.0, 2.0, 1.0]
    assert len(_render_progress(info).data) == 3
    with pytest.raises(DataError, match="no trial start times yet"):
        progress_info(_sweep(records), {})


def test_more_selected_than_drawn_is_said():
    records = [dict(run_id=str(i), status="finished", point=f"p{i}", seed="0",
                    metric_names=["val_top1"]) for i in range(MAX_CURVES + 3)]
    info = curves_info(_sweep(records), [r["run_id"] for r in records], "val_top1",
                       lambda run_id, metric: [(1, 1.0)])
    assert len(info["series"]) == MAX_CURVES and info["dropped"] == 3
