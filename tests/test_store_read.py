"""Reading runs: the SQLite path gives what MLflow's search gives, and the incremental cache
picks up every change between refreshes while reading only the runs that changed."""

from __future__ import annotations

import pandas as pd
import pytest

import mvit_lab.tracking as tracking
from mvit_lab.tracking import (
    Tracker,
    default_tracking_uri,
    ensure_experiment,
    frame_from_rows,
    runs_cache,
    runs_dataframe,
)


@pytest.fixture
def store(tmp_path):
    uri = default_tracking_uri(tmp_path)
    ensure_experiment("exp", uri)
    t = Tracker(uri, "exp")
    parent = t.start_parent("exp", {"experiment.name": "exp"}, dict(search_mode="grid"))
    runs = []
    for i in range(4):
        run = t.start_child(parent, f"p{i}", {"model.embed_dim": 8 * (i + 1), "train.lr": 0.1},
                            dict(trial_id=f"t{i}", point=f"p{i}", status="running"))
        for step in (1, 2):
            t.log_metrics(run, dict(val_top1=10.0 * i + step, loss=1.0 / step), step=step)
        if i < 3:
            t.set_tags(run, dict(status="finished"))
            t.finish(run)
        runs.append(run)
    return dict(uri=uri, tracker=t, parent=parent, runs=runs)


def test_the_sqlite_read_equals_mlflows_search(store, monkeypatch):
    fast = runs_dataframe(store["uri"], "exp")
    children = runs_dataframe(store["uri"], "exp", parent_run_id=store["parent"])
    monkeypatch.setattr(tracking, "sqlite_path", lambda uri: None)  # MLflow's search_runs
    slow = runs_dataframe(store["uri"], "exp")
    pd.testing.assert_frame_equal(fast.sort_values("run_id").reset_index(drop=True),
                                  slow.sort_values("run_id").reset_index(drop=True))
    assert fast.attrs == slow.attrs
    assert set(children["run_id"]) == set(store["runs"])
    assert fast.loc[fast["run_id"] == store["runs"][2], "metric.val_top1"].item() == 22.0


def test_a_changed_mlflow_schema_falls_back_to_search_runs_and_a_broken_store_raises(
        store, monkeypatch, caplog):
    import sqlite3

    import mvit_lab._store_read as store_read

    expected = runs_dataframe(store["uri"], "exp")

    def drifted(*args, **kwargs):
        raise sqlite3.OperationalError("no such column: r.name")

    monkeypatch.setattr(store_read, "sqlite_rows", drifted)
    with caplog.at_level("WARNING", logger="mvit_lab.tracking"):
        got = runs_dataframe(store["uri"], "exp")
    pd.testing.assert_frame_equal(got.sort_values("run_id").reset_index(drop=True),
                                  expected.sort_values("run_id").reset_index(drop=True))
    assert "reading through search_runs" in caplog.text

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_read, "sqlite_rows", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        runs_dataframe(store["uri"], "exp")


def test_a_run_changed_between_refreshes_is_picked_up_and_nothing_else_is_read(store):
    t, runs = store["tracker"], store["runs"]
    cache = runs_cache(store["uri"], "exp")
    assert cache.refresh() and cache.full_reads == 1 and len(cache.rows) == 5
    # one run is still running: each refresh reads it again, with the runs on the start
    # and end watermarks (>=, so that a write in the same millisecond is not missed)
    assert not cache.refresh()
    assert cache.last_read <= 3 and cache.partial_reads == 1
    # the running trial logs an epoch and ends
    t.log_metrics(runs[3], dict(val_top1=99.0), step=3)
    t.set_tags(runs[3], dict(status="finished"))
    t.finish(runs[3])
    assert cache.refresh() and cache.changed == {runs[3]} and cache.last_read <= 3
    assert cache.rows[runs[3]]["metrics"]["val_top1"] == 99.0
    assert cache.rows[runs[3]]["status"] == "FINISHED"
    # the sweep's driver ends too; then nothing runs and nothing changed: a refresh reads
    # no run at all
    t.finish(store["parent"])
    assert cache.refresh() and cache.changed == {store["parent"]}
    assert not cache.refresh() and cache.last_read == 0
    # a finished run gets new metrics (mvit-lab measure writes costs back)
    t.log_metrics(runs[0], dict(throughput=123.0), step=0)
    assert cache.refresh() and cache.changed == {runs[0]}
    assert cache.rows[runs[0]]["metrics"]["throughput"] == 123.0
    assert cache.last_read <= 3  # that run and the ones on the watermarks
    # a new trial appears, after the others
    new = t.start_child(store["parent"], "p9", {"model.embed_dim": 64},
                        dict(trial_id="t9", point="p9", status="running"))
    assert cache.refresh() and new in cache.changed and list(cache.rows)[-1] == new
    assert cache.full_reads == 1  # all of that without reading everything again
    # a deleted run goes at once (a full read)
    t.client.delete_run(runs[1])
    assert cache.refresh() and runs[1] not in cache.rows and cache.full_reads == 2
    assert len(cache.rows) == 5  # nothing twice
    frame = frame_from_rows(list(cache.rows.values()), cache.experiment_id)
    assert set(frame["run_id"]) == {store["parent"], runs[0], runs[2], runs[3], new}


def test_the_dashboard_reader_rebuilds_only_the_changed_records(store):
    from mvit_lab.dashboards.data import StoreReader, load_sweep

    reader = StoreReader(store["uri"], max_age_s=0.0)
    first = reader.sweep("exp")
    assert first.counts["running"] == 1 and len(first.records) == 4
    same = reader.sweep("exp")
    assert same is first  # nothing changed: the same sweep, no rebuild
    t, runs = store["tracker"], store["runs"]
    t.log_metrics(runs[3], dict(val_top1=77.0), step=3)
    after = reader.sweep("exp")
    assert after.fingerprint != first.fingerprint
    by_id = {r["run_id"]: r for r in after.records}
    assert by_id[runs[3]]["val_top1"] == 77.0
    old = {r["run_id"]: r for r in first.records}
    assert all(by_id[k] is old[k] for k in runs[:3])  # untouched records are not rebuilt
    # what the incremental reader shows is what a fresh read of the store shows
    fresh = load_sweep(store["uri"], "exp")
    key = ("run_id", "status", "val_top1", "model", "metric_names", "config")
    assert [{k: r[k] for k in key} for r in after.records] == \
        [{k: r[k] for k in key} for r in fresh.records]
    assert after.counts == fresh.counts
    assert len({r["run_id"] for r in after.records}) == len(after.records) == 4
    (row,) = reader.overview()
    assert row["trials"] == 4 and row["counts"]["running"] == 1 and row["sweeps"] == 1


def test_a_narrow_read_is_the_full_read_cut_to_what_was_asked(store, monkeypatch):
    """``run_rows`` with ``params`` prefixes and ``metrics`` names: the same rows as the full
    read with the other params and metrics left out, through SQL and through search_runs."""
    from mvit_lab.tracking import run_rows

    t, runs = store["tracker"], store["runs"]
    # names that a LIKE 'model.%' would wrongly match or miss (case, the _ wildcard)
    t.client.log_param(runs[0], "modelXembed", "1")
    t.client.log_param(runs[0], "MODEL.upper", "2")
    t.client.log_param(runs[0], "model_dim", "3")
    full = run_rows(store["uri"], "exp")

    def cut(row):
        return {k: v for k, v in row.items()
                if not (k.startswith("param.") and not k.startswith("param.model."))
                and not (k.startswith("metric.") and k != "metric.val_top1")}

    expected = [cut(r) for r in full]
    narrow = run_rows(store["uri"], "exp", params=("model.",), metrics={"val_top1"})
    assert narrow == expected
    assert {k for r in narrow for k in r if k.startswith("param.")} == {"param.model.embed_dim"}
    assert any("param.modelXembed" in r for r in full)  # there, and cut
    monkeypatch.setattr(tracking, "sqlite_path", lambda uri: None)  # MLflow's search_runs
    slow = run_rows(store["uri"], "exp", params=("model.",), metrics={"val_top1"})
    assert sorted(slow, key=lambda r: r["run_id"]) == sorted(expected, key=lambda r: r["run_id"])
    assert run_rows(store["uri"], "exp", params=(), metrics=()) == [
        {k: v for k, v in r.items() if not k.startswith(("param.", "metric."))} for r in full]


def test_running_runs_are_read_again_only_when_their_tags_or_metrics_moved(store):
    """A live sweep's running trials: one whose tags, params and latest metrics did not move
    is not read again; a tag, a param, or a metric behind the newest timestamp (a worker
    with a slow clock) brings it back; a restored run is seen at once."""
    from mlflow.entities import Metric

    t, runs = store["tracker"], store["runs"]
    cache = runs_cache(store["uri"], "exp")
    cache.refresh()
    assert not cache.refresh() and runs[3] not in cache.changed
    reads = cache.last_read
    assert not cache.refresh() and cache.last_read == reads  # the watermark runs only
    t.set_tags(runs[3], dict(note="epoch 2 done"))  # a tag alone, nothing on a watermark
    assert cache.refresh() and cache.changed == {runs[3]}
    assert cache.rows[runs[3]]["tags"]["note"] == "epoch 2 done"
    t.client.log_param(runs[3], "train.extra", "1")
    assert cache.refresh() and cache.changed == {runs[3]}
    assert cache.rows[runs[3]]["params"]["train.extra"] == "1"
    # a later step logged with an old timestamp: below the metric watermark
    t.client.log_batch(runs[3], metrics=[Metric("val_top1", 55.0, 1, 9)])
    assert cache.refresh() and cache.changed == {runs[3]}
    assert cache.rows[runs[3]]["metrics"]["val_top1"] == 55.0
    assert cache.full_reads == 1
    # a deleted run goes and a restored one comes back, with its old times
    t.client.delete_run(runs[0])
    assert cache.refresh() and runs[0] not in cache.rows
    t.client.restore_run(runs[0])
    assert cache.refresh() and runs[0] in cache.rows and runs[0] in cache.changed
    assert list(cache.rows)[1] == runs[0]  # in start order again


def test_a_sqlite_store_is_read_without_mlflows_client_and_as_mlflow_reads_it(store,
                                                                              monkeypatch):
    """Creating MLflow's SQLAlchemy store costs seconds of CPU per process: reading a SQLite
    store never does it, and finds the experiments MLflow finds (a deleted one too)."""
    from mvit_lab.tracking import experiment_exists, list_experiments, run_rows

    ensure_experiment("gone", store["uri"])
    t = Tracker(store["uri"], "exp")
    t.client.delete_experiment(Tracker(store["uri"], "gone").experiment_id)
    monkeypatch.setattr(tracking, "sqlite_path", lambda uri: None)  # MLflow's reads
    slow = (list_experiments(store["uri"]), experiment_exists(store["uri"], "gone"),
            experiment_exists(store["uri"], "never"))
    monkeypatch.undo()

    def refuse(*args, **kwargs):
        raise AssertionError("MlflowClient created")

    monkeypatch.setattr(tracking, "MlflowClient", refuse)
    assert (list_experiments(store["uri"]), experiment_exists(store["uri"], "gone"),
            experiment_exists(store["uri"], "never")) == slow
    assert [e["name"] for e in slow[0]] == ["Default", "exp"] and slow[1:] == (True, False)
    assert len(runs_dataframe(store["uri"], "exp")) == 5 and len(run_rows(store["uri"], "exp"))
    assert runs_cache(store["uri"], "exp").refresh()
    with pytest.raises(ValueError, match="experiment 'gone' does not exist in sqlite:///"):
        runs_dataframe(store["uri"], "gone")


def test_ended_runs_sharing_the_newest_timestamp_are_checked_together(store):
    """A store whose runs share the newest metric time (imported in one go): an idle refresh
    reads none of the ended ones, yet a write in that very millisecond to one of them (a
    metric with the watermark's timestamp) is picked up."""
    import time

    from mlflow.entities import Metric

    t, runs = store["tracker"], store["runs"]
    stamp = int(time.time() * 1000) + 3_600_000  # after anything logged: the new watermark
    for run in runs:
        t.client.log_batch(run, metrics=[Metric("gflops", 0.01, stamp, 0)])
    cache = runs_cache(store["uri"], "exp")
    cache.refresh()
    for _ in range(2):  # the running trial and the sweep's parent are checked; the three
        # ended trials are neither read nor digested one by one
        assert not cache.refresh() and cache.last_read == 0 and cache.last_digested == 2
    t.client.log_batch(runs[1], metrics=[Metric("throughput", 321.0, stamp, 0)])
    assert cache.refresh() and cache.changed == {runs[1]}
    assert cache.rows[runs[1]]["metrics"]["throughput"] == 321.0
    assert cache.full_reads == 1
    assert not cache.refresh() and cache.last_read == 0


def test_the_dashboards_reader_freezes_what_it_keeps_after_each_full_read(store):
    """A full collection traverses every object the collector tracks: the rows and records
    of thousands of runs cost 0.3 CPU-s each time. The dashboard's reader (freeze_gc) freezes
    them after a full read; a partial refresh changes the data without freezing again."""
    import gc

    from mvit_lab.dashboards.data import StoreReader

    gc.unfreeze()
    try:
        plain = StoreReader(store["uri"], max_age_s=0.0)
        plain.sweep("exp")
        assert gc.get_freeze_count() == 0  # only when asked (the app asks)
        reader = StoreReader(store["uri"], max_age_s=0.0, freeze_gc=True)
        reader.sweep("exp")
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        store["tracker"].log_metrics(store["runs"][3], dict(val_top1=66.0), step=3)
        after = reader.sweep("exp")
        assert next(r for r in after.records if r["run_id"] == store["runs"][3])[
            "val_top1"] == 66.0
        # a partial refresh freezes nothing more (the replaced records are freed as always)
        assert gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_a_writer_killed_mid_transaction_does_not_stop_the_reads(store, tmp_path):
    """A trial's process killed while it logs (Ray ends a stopped trial) leaves a hot journal;
    a read-only reader cannot roll it back and every query failed with "attempt to write a
    readonly database" (seen at the end of a MOASHA sweep). The reader rolls it back, and the
    store reads as it stood before the killed transaction."""
    import os
    import subprocess
    import sys

    path = tmp_path / "mlruns.db"
    before = runs_dataframe(store["uri"], "exp")
    child = (
        "import os, signal, sqlite3\n"
        f"con = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=2')\n"
        "con.execute('BEGIN IMMEDIATE')\n"
        "con.execute(\"UPDATE runs SET status = 'KILLED'\")\n"
        "con.execute('CREATE TABLE filler (b BLOB)')\n"
        "for _ in range(40):\n"
        "    con.execute('INSERT INTO filler VALUES (?)', (os.urandom(100000),))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", child], check=False)
    assert (tmp_path / "mlruns.db-journal").stat().st_size > 0  # the hot journal is there
    after = runs_dataframe(store["uri"], "exp")  # read before any MLflow client touched it
    assert list(after["status"]) == list(before["status"])
    assert "KILLED" not in set(after["status"])
    assert not os.path.exists(tmp_path / "mlruns.db-journal")  # rolled back
