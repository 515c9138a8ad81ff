"""Issue 17, thousands of runs: what the dashboard keeps between refreshes is what a fresh
read computes; a refresh that changed nothing recomputes nothing; a changed run is seen."""

from __future__ import annotations

import gc

import mvit_lab.dashboards.views as views
from mvit_lab.dashboards.data import StoreReader, load_sweep
from mvit_lab.dashboards.views import _front_info, default_views, front_info
from mvit_lab.tracking import Tracker

FIELDS = ("experiment", "experiment_id", "parent_run_id", "name", "mode", "objectives", "base",
          "base_source", "records", "counts", "sweeps", "parent_status")


def _same_sweep(a, b) -> None:
    for name in FIELDS:
        assert getattr(a, name) == getattr(b, name), name


def test_the_readers_first_load_from_rows_equals_a_fresh_load_sweep(fixture_store):
    """The reader builds records from the store's rows, load_sweep from the runs frame:
    every field of every record agrees (statuses, metrics, configs, diffs, times)."""
    for experiment in ("ablation", "ladder", "failing"):
        fresh = load_sweep(fixture_store["uri"], experiment)
        mine = StoreReader(fixture_store["uri"]).sweep(experiment)
        _same_sweep(mine, fresh)
    assert {r["status"] for r in mine.records} == {"failed"}
    ablation = StoreReader(fixture_store["uri"]).sweep("ablation")
    assert {r["status"] for r in ablation.records} == {"finished", "failed", "pruned",
                                                       "running"}


def test_an_idle_refresh_reuses_the_views_and_a_changed_run_recomputes_them(fixture_copy,
                                                                            monkeypatch):
    uri, runs = fixture_copy["uri"], fixture_copy["ablation_runs"]
    built = []
    real = views._get_front_info
    monkeypatch.setattr(views, "_get_front_info", lambda *a: built.append(a[2:]) or real(*a))
    reader = StoreReader(uri, max_age_s=0.0)

    def page():
        sweep = reader.sweep("ablation")
        return sweep, [front_info(sweep, *view) for view in default_views(sweep, 2)]

    sweep, infos = page()
    assert len(built) == 2
    again, same = page()  # nothing changed in the store
    assert again is sweep and all(a is b for a, b in zip(same, infos)) and len(built) == 2

    def fresh_infos():
        sweep = load_sweep(uri, "ablation")
        return [_front_info(sweep, *view) for view in default_views(sweep, 2)]

    assert infos == fresh_infos()
    tracker = Tracker(uri, "ablation")
    # the running trial logs an epoch: a new sweep read, its views computed again
    tracker.log_metrics(runs[7], dict(val_top1=41.0), step=2)
    changed, infos = page()
    assert changed is not sweep and len(built) == 4 and infos == fresh_infos()
    # it ends with the best top-1 at the least GFLOPs: on every front
    tracker.log_metrics(runs[7], dict(val_top1=99.5, gflops=0.05, throughput=500.0), step=3)
    tracker.set_tags(runs[7], dict(status="finished"))
    tracker.finish(runs[7])
    ended, infos = page()
    assert infos == fresh_infos() and len(built) == 6 and ended.counts["running"] == 0
    for info in infos:
        (point,) = [p for p in info["points"] if p["run_id"] == runs[7]]
        assert point["on_front"] and point["rank"] == 0


def test_fingerprints_are_never_reused_by_a_later_reader(fixture_store):
    """A fingerprint names the data a page shows: a new reader (or a restarted server) must
    not hand out one an earlier reader gave for other data."""
    seen = set()
    for _ in range(20):
        reader = StoreReader(fixture_store["uri"])
        seen.add(reader.sweep("ablation").fingerprint)
        del reader
        gc.collect()
    assert len(seen) == 20
