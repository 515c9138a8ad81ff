"""Sweeps side by side: fronts, shared reference, hypervolumes and dominance by hand."""

from __future__ import annotations

import pytest

from mvit_lab.dashboards.data import DataError, Sweep, load_sweep
from mvit_lab.dashboards.overlay import (
    _render_overlay,
    format_overlay,
    overlay_info,
    reference_point,
)
from mvit_lab.search.pareto import Objective

OBJECTIVES = (Objective("val_top1", "max"), Objective("gflops", "min"))


def _sweep(name, points, objectives=OBJECTIVES):
    records = [dict(run_id=f"{name}{i}", point=f"p{i}", seed="0", status="finished",
                    truncated=False, gflops=g, val_top1=t) for i, (g, t) in enumerate(points)]
    records.append(dict(run_id=f"{name}-failed", status="failed", truncated=False, gflops=0.1,
                        val_top1=99.0))  # never on a front
    return Sweep(tracking_uri="sqlite://", experiment="exp", experiment_id="1",
                 parent_run_id=f"parent-{name}", name=name, mode="params",
                 objectives=objectives, base=None, base_source="", records=records,
                 counts={}, fingerprint="")


A = _sweep("a", [(1.0, 90.0), (2.0, 95.0), (3.0, 94.0)])  # front a0, a1
B = _sweep("b", [(1.0, 92.0), (3.0, 96.0), (2.0, 91.0)])  # front b0, b1; b2 under b0


def test_fronts_reference_hypervolumes_and_dominance_by_hand():
    info = overlay_info([A, B], "gflops", "val_top1")
    a, b = info["sweeps"]
    assert (a["label"], b["label"]) == ("exp / a", "exp / b")
    assert [p["run_id"] for p in a["front"]] == ["a0", "a1"]
    assert [p["run_id"] for p in b["front"]] == ["b0", "b1"]
    assert len(a["points"]) == 3  # the failed trial is not a point
    # worst gflops 3 + 10% of 2; worst top-1 90 - 10% of 6
    assert info["reference"] == pytest.approx([3.2, 89.4])
    # a: x in [1, 2) at 90, [2, 3.2) at 95 -> 0.6 * 1 + 5.6 * 1.2
    assert a["hypervolume"] == pytest.approx(0.6 + 6.72)
    # b: x in [1, 3) at 92, [3, 3.2) at 96 -> 2.6 * 2 + 6.6 * 0.2
    assert b["hypervolume"] == pytest.approx(5.2 + 1.32)
    # b0 (1, 92) dominates a0 (1, 90); nothing of a's front dominates b's
    assert b["dominates"] == {"exp / a": ["b0"]}
    assert a["dominates"] == {"exp / b": []}
    assert a["marker"] != b["marker"]
    table = format_overlay(info)
    assert table["rows"][0][:4] == ["exp / a", "3", "2", "7.32"]
    assert table["rows"][1][4:] == ["1 of 2", "–"]
    assert "gflops 3.2, val_top1 89.4" in table["note"]


def test_a_given_reference_and_the_figure():
    info = overlay_info([A, B], "gflops", "val_top1", reference=[4.0, 80.0])
    assert info["sweeps"][0]["hypervolume"] == pytest.approx(10.0 * 1 + 15.0 * 2)
    fig = _render_overlay(info, highlight=["b1"])
    names = [t.name for t in fig.data]
    assert names[0].startswith("exp / a (HV 40") and "selected" in names
    selected = next(t for t in fig.data if t.name == "selected")
    assert list(selected.x) == [3.0] and list(selected.y) == [96.0]


def test_what_cannot_be_overlaid_says_why():
    with pytest.raises(DataError, match="pick two or more sweeps"):
        overlay_info([A], "gflops", "val_top1")
    upside = _sweep("c", [(1.0, 1.0)], (Objective("val_top1", "min"), Objective("gflops", "min")))
    with pytest.raises(DataError, match="disagree on whether val_top1 is better large"):
        overlay_info([A, upside], "gflops", "val_top1")
    with pytest.raises(DataError, match="sweep 'a' of experiment 'exp' has no finished trial "
                                        "with both gflops and throughput"):
        overlay_info([A, B], "gflops", "throughput")
    with pytest.raises(ValueError, match="reference: must be 2 numbers"):
        overlay_info([A, B], "gflops", "val_top1", reference=[1.0])
    with pytest.raises(ValueError, match="values: needs at least one point"):
        reference_point([], ["max"])


def test_two_experiments_of_a_store(planted_store):
    sweeps = [load_sweep(planted_store["uri"], e) for e in ("planted", "ablation")]
    info = overlay_info(sweeps, "gflops", "val_top1")
    planted, ablation = info["sweeps"]
    # ablation's front: max seed 2 (1.0 GFLOPs, 94) and avg seed 1 (0.5, 87); planted's top-1
    # is 70 + embed_dim (up to 94) at 0.01-0.04 GFLOPs: its 94 point dominates both
    assert len(ablation["front"]) == 2
    best = [p["run_id"] for p in planted["front"] if p["y"] == 94.0]
    assert len(best) == 1 and best[0] in planted["dominates"][ablation["label"]]
    assert all(p["y"] >= 87.0 for p in planted["front"]
               if p["run_id"] in planted["dominates"][ablation["label"]])
    assert ablation["dominates"][planted["label"]] == []
    assert ablation["hypervolume"] < planted["hypervolume"]
