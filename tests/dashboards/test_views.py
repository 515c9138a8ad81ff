"""The dashboard's header line and tables' text, from plain Sweep objects (no store)."""

from __future__ import annotations

from mvit_lab.dashboards.data import Sweep
from mvit_lab.dashboards.tables import format_ablation_view, format_ladder_view, to_html
from mvit_lab.dashboards.views import live_status
from mvit_lab.search.pareto import Objective


def _sweep(experiment="ablation", running=0, parent_status="finished"):
    return Sweep(tracking_uri="sqlite://", experiment=experiment, experiment_id="1",
                 parent_run_id="p", name=experiment, mode="grid",
                 objectives=(Objective("val_top1", "max"),), base=None, base_source="",
                 records=[], counts=dict(running=running, finished=3), fingerprint="",
                 parent_status=parent_status)


def _row(name, running):
    return dict(name=name, counts=dict(running=running, finished=1))


def test_live_line_counts_what_the_experiments_table_shows_running():
    """It said ``live: 0 running`` while the table showed a running sweep."""
    # the shown sweep is an older one; a newer sweep of the experiment, and another
    # experiment, have trials running
    text = live_status(_sweep(), [_row("ablation", 2), _row("ladder", 1), _row("idle", 0)])
    assert text == ("live: 0 running in this sweep; also running: 2 in other sweeps of this "
                    "experiment, 1 in ladder")
    assert live_status(_sweep(running=2), [_row("ablation", 2)]) == \
        "live: 2 running in this sweep"
    # a sweep whose driver runs between trials is live, though no trial runs right now
    assert "its driver is running" in live_status(_sweep(parent_status="running"),
                                                  [_row("ablation", 0)])


def test_one_seed_shows_n_1_and_no_interval():
    """It showed ``± 0.00 (1)`` for one seed."""
    ladder = format_ladder_view([
        dict(step=0, name="a", mean=91.0, std=0.0, seeds=1, gflops=0.5, throughput=100.0,
             speedup=1.0),
        dict(step=1, name="b", mean=90.0, std=1.5, seeds=2, gflops=0.4, throughput=150.0,
             speedup=1.5)])
    assert ladder["rows"][0][2] == "91.00 (n = 1)" and ladder["rows"][1][2] == "90.00 ± 1.50 (2)"
    ablation = format_ablation_view(dict(factor="pool_mode", metric="val_top1", rows=[
        dict(level="max", n=1, mean=92.0, ci95=float("nan"), std=float("nan"), baseline=True,
             diff=0.0),
        dict(level="avg", n=2, mean=86.0, ci95=12.71, std=1.41, baseline=False, diff=-6.0)]))
    assert ablation["rows"][0] == ["max", "1", "92.00", "-", "baseline"]
    assert ablation["rows"][1] == ["avg", "2", "86.00 ± 12.71", "1.41", "-6.00"]


def test_html_tables_scroll_and_wrap_rather_than_overflow_the_page():
    """The export's front table (long points, 32-character run ids) ran off the page."""
    from mvit_lab.dashboards.export import CSS

    html = to_html(dict(title="front", columns=["point"], rows=[["x" * 300]], note=""))
    assert html.startswith('<div class="table-wrap"><table class="data">')
    assert html.endswith("</table></div>")
    assert ".table-wrap { max-width: 100%; overflow-x: auto; }" in CSS
    assert "table.data td { overflow-wrap: anywhere; }" in CSS
