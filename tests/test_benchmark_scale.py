"""The dashboard scale benchmark builds what it says: a store through the Tracker, replicated
to size, read back as the sweep it claims (61 params, 90 metric values per run)."""

from __future__ import annotations

import sqlite3

from bench import load


def test_the_store_is_built_and_replicated(tmp_path):
    bench = load("dashboard_scale")
    bench.build_store(tmp_path, 3)
    db = tmp_path / "mlruns.db"
    bench.replicate(db, 7)
    con = sqlite3.connect(db)
    kids = [r[0] for r in con.execute(
        "SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId'")]
    assert len(kids) == 7
    per_run = con.execute("SELECT COUNT(*) FROM params WHERE run_uuid = ?", (kids[-1],)).fetchone()
    values = con.execute("SELECT COUNT(*) FROM metrics WHERE run_uuid = ?", (kids[-1],)).fetchone()
    trial_ids = {r[0] for r in con.execute("SELECT value FROM tags WHERE key = 'trial_id'")}
    con.close()
    assert per_run == (61,) and values == (90,) and len(trial_ids) == 7

    from mvit_lab.dashboards.data import StoreReader

    sweep = StoreReader(f"sqlite:///{db}").sweep("scale")
    assert len(sweep.records) == 7 and all(r["val_top1"] for r in sweep.records)


def test_the_before_after_table_takes_medians_over_alternating_runs(tmp_path, monkeypatch):
    import json
    import sys

    table = load("dashboard_scale_table")

    def result(name, first_load):
        row = dict(runs=5000, **{f"{m}_cpu_s": dict(values=[v]) for m, v in dict(
            first_load=first_load, tick_idle=0.2, tick_changed=0.3, pareto_cli=2.0,
            pareto_read=1.0).items()})
        (tmp_path / name).write_text(json.dumps(dict(results=[row])))
        return str(tmp_path / name)

    before = [result(f"b{i}.json", v) for i, v in enumerate((10.0, 30.0, 20.0))]
    after = [result(f"a{i}.json", v) for i, v in enumerate((4.0, 6.0, 5.0))]
    monkeypatch.setattr(sys, "argv", ["x", "--before", *before, "--after", *after,
                                      "--out", str(tmp_path / "out")])
    table.main()
    rows = json.loads((tmp_path / "out.json").read_text())["rows"]
    first = next(r for r in rows if r["measure"] == "first_load")
    assert first["before"] == dict(median=20.0, min=10.0, max=30.0)
    assert first["after"]["median"] == 5.0 and first["ratio"] == 4.0 and first["goal"] == 5
    md = (tmp_path / "out.md").read_text()
    assert "| 5,000 | first_load | 20.00 (10.00-30.00) | 5.00 (4.00-6.00) | 4.0x | <= 5: met |" \
        in md
    assert "| 5,000 | tick_changed | 0.30 (0.30-0.30) | 0.30 (0.30-0.30) | 1.0x | <= 0.5: met |" \
        in md
