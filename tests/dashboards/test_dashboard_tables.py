"""Ablation, ladder and front tables over the fixture store, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from mvit_lab.dashboards.data import load_sweep, overview
from mvit_lab.dashboards.tables import (
    ablation_views,
    counts_table,
    format_ablation_view,
    format_front,
    format_ladder_view,
    front_rows,
    ladder_view,
    to_html,
)


def test_ablation_means_intervals_and_differences(fixture_store):
    (view,) = ablation_views(load_sweep(fixture_store["uri"], "ablation"))
    assert view["factor"] == "pool_mode" and view["metric"] == "val_top1"
    rows = {r["level"]: r for r in view["rows"]}
    assert set(rows) == {"max", "avg"}  # the failed avg and the pruned / running conv: out
    # max: 90, 92, 94 -> mean 92, s = 2, t(0.975, 2 dof) = 4.303, half-width 4.303 * 2 / sqrt 3
    assert rows["max"]["n"] == 3 and rows["max"]["mean"] == pytest.approx(92.0)
    assert rows["max"]["std"] == pytest.approx(2.0)
    assert rows["max"]["ci95"] == pytest.approx(4.303 * 2 / math.sqrt(3))
    assert rows["max"]["baseline"]  # the search space's base level
    # avg: 85, 87 -> mean 86, s = sqrt 2, t(0.975, 1 dof) = 12.706, half-width 12.706
    assert rows["avg"]["mean"] == pytest.approx(86.0)
    assert rows["avg"]["ci95"] == pytest.approx(12.706)
    assert rows["avg"]["diff"] == pytest.approx(-6.0) and not rows["avg"]["baseline"]
    text = format_ablation_view(view)
    assert text["columns"][:3] == ["pool_mode", "n", "val_top1 (mean ± 95% CI)"]
    assert ["max", "3", "92.00 ± 4.97", "2.00", "baseline"] in text["rows"]
    assert ["avg", "2", "86.00 ± 12.71", "1.41", "-6.00"] in text["rows"]


def test_ladder_table_in_the_form_of_hiera_table_1(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ladder")
    assert sweep.mode == "ladder" and ablation_views(sweep) == []
    rows = ladder_view(sweep)
    assert [(r["step"], r["name"], r["seeds"]) for r in rows] == \
        [(0, "a_first", 2), (1, "b_max", 2), (2, "c_avg", 2)]
    assert [r["mean"] for r in rows] == pytest.approx([91.0, 91.0, 82.0])
    assert [r["speedup"] for r in rows] == pytest.approx([1.0, 1.5, 3.0])
    text = format_ladder_view(rows)
    assert text["columns"] == ["step", "name", "val_top1 (mean ± std, n)", "GFLOPs",
                               "throughput (/s)", "speed-up"]
    assert text["rows"][2] == ["2", "c_avg", "82.00 ± 2.83 (2)", "0.02", "300.0", "3.00x"]
    assert ladder_view(load_sweep(fixture_store["uri"], "ablation")) == []


def test_front_table_and_counts(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    assert [(r["point"], r["seed"], r["val_top1"]) for r in front_rows(sweep)] == \
        [("pool_mode=max", "2", 94.0), ("pool_mode=avg", "1", 87.0)]
    table = format_front(sweep)
    assert table["columns"] == ["point", "seed", "val_top1", "gflops", "params", "MLflow run"]
    assert table["note"] == "2 of 5 finished trials"
    counts = counts_table(overview(fixture_store["uri"]))
    assert counts["columns"] == ["experiment", "sweeps", "trials", "running", "finished",
                                 "failed", "pruned"]
    assert ["ablation", "1", "8", "1", "5", "1", "1"] in counts["rows"]


def test_html_tables_are_escaped():
    html = to_html(dict(title="a<b", columns=["x&y"], rows=[["<script>"]], note="n"))
    assert "<caption>a&lt;b</caption>" in html and "<th>x&amp;y</th>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
