"""The dashboard scale benchmark builds what it says: a store through the Tracker, replicated
to size, read back as the sweep it claims (61 params, 90 metric values per run)."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "dashboard_scale.py"


def test_the_store_is_built_and_replicated(tmp_path):
    spec = importlib.util.spec_from_file_location("dashboard_scale", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
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
