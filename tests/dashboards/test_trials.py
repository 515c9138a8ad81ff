"""The trials table: its rows from a fixture store, and the filters by hand."""

from __future__ import annotations

import pytest

from mvit_lab.dashboards.data import load_sweep
from mvit_lab.dashboards.meta import read_runs, run_times
from mvit_lab.dashboards.trials import filter_trials, parse_filter, trial_table


@pytest.fixture(scope="module")
def table(fixture_db):
    sweep = load_sweep(fixture_db["uri"], "ablation")
    times = run_times(read_runs(sweep), [r["run_id"] for r in sweep.records])
    return trial_table(sweep, times)


def _ids(rows):
    return sorted((r["point"], r["seed"]) for r in rows)


def test_every_trial_with_knobs_objectives_status_seed_duration(table):
    columns = [c["id"] for c in table["columns"]]
    assert columns == ["point", "status", "seed", "pool_mode", "val_top1", "gflops", "params",
                       "duration_s", "device", "run_id"]
    kinds = {c["id"]: (c["type"], c["kind"]) for c in table["columns"]}
    assert kinds["pool_mode"] == ("text", "knob") and kinds["val_top1"] == ("numeric",
                                                                            "objective")
    rows = {(r["point"], r["seed"]): r for r in table["rows"]}
    assert len(rows) == 8
    assert rows[("pool_mode=max", 2)]["val_top1"] == 94.0
    assert rows[("pool_mode=avg", 2)]["status"] == "failed"
    assert rows[("pool_mode=conv", 1)]["status"] == "running"
    assert rows[("pool_mode=conv", 1)]["duration_s"] is None  # still running
    assert rows[("pool_mode=max", 0)]["duration_s"] >= 0
    assert all(r["id"] == r["run_id"] for r in table["rows"])


def test_filters_by_status_knob_and_objective_range(table):
    cols = [c["id"] for c in table["columns"]]
    rows = table["rows"]
    assert _ids(filter_trials(rows, "{status} s= finished", cols)) == [
        ("pool_mode=avg", 0), ("pool_mode=avg", 1), ("pool_mode=max", 0),
        ("pool_mode=max", 1), ("pool_mode=max", 2)]
    # range on an objective: failed 99 counts too (a filter is not a front)
    assert _ids(filter_trials(rows, "{val_top1} >= 92", cols)) == [
        ("pool_mode=avg", 2), ("pool_mode=max", 1), ("pool_mode=max", 2)]
    assert _ids(filter_trials(rows, '{pool_mode} contains "AV" && {val_top1} < 90', cols)) == [
        ("pool_mode=avg", 0), ("pool_mode=avg", 1)]
    assert _ids(filter_trials(rows, "{gflops} eq 9", cols)) == [("pool_mode=conv", 0)]
    assert len(filter_trials(rows, "{val_top1} != 90", cols)) == 7  # no value: kept by !=
    assert filter_trials(rows, "", cols) == rows
    assert filter_trials(rows, "{pool_mode} > 3", cols) == []  # a range on text keeps none


def test_a_bad_filter_says_which_clause():
    with pytest.raises(ValueError, match=r"filter: no column 'top1' in '\{top1\} > 3'"):
        parse_filter("{top1} > 3", ["val_top1"])
    with pytest.raises(ValueError, match="filter: unknown operator 'like'"):
        parse_filter("{val_top1} like 3", ["val_top1"])
    with pytest.raises(ValueError, match="filter: cannot read 'val_top1 > 3'"):
        parse_filter("val_top1 > 3", ["val_top1"])
    assert parse_filter("{a} i= Max && {b} ge 2", ["a", "b"]) == [("a", "=/i", "Max"),
                                                                   ("b", ">=", 2.0)]
