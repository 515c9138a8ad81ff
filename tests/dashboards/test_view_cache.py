"""Issue 17, thousands of runs: what the dashboard keeps between refreshes is what a fresh
read computes; a refresh that changed nothing recomputes nothing; a changed run is seen."""

from __future__ import annotations

import gc

import mvit_lab.dashboards.views as views
from mvit_lab.dashboards.data import StoreReader, load_sweep
from mvit_lab.dashboards.views import _front_info, front_info
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

    def counted(*args):
        built.append(args[2:])
        return real(*args)

    monkeypatch.setattr(views, "_get_front_info", counted)
    reader = StoreReader(uri, max_age_s=0.0)

    shown = [("gflops", "val_top1", "throughput"), ("throughput", "val_top1", "gflops")]

    def page():
        sweep = reader.sweep("ablation")
        return sweep, [front_info(sweep, *view) for view in shown]

    sweep, infos = page()
    assert len(built) == 2
    again, same = page()  # nothing changed in the store
    assert again is sweep and all(a is b for a, b in zip(same, infos)) and len(built) == 2

    def fresh_infos():  # from a fresh read, not counted
        monkeypatch.setattr(views, "_get_front_info", real)
        try:
            sweep = load_sweep(uri, "ablation")
            return [_front_info(sweep, *view) for view in shown]
        finally:
            monkeypatch.setattr(views, "_get_front_info", counted)

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


def test_diffs_computed_once_per_logged_value_equal_arch_diff():
    """The first load puts each distinct logged value in canonical JSON once; the diffs are
    arch_diff's, also where JSON tells values apart that == does not (1 vs 1.0, True vs 1)."""
    from mvit_lab.dashboards.data import _trial_records, arch_diff
    from mvit_lab.search.pareto import Objective

    base = dict(embed_dim=96, mlp_ratio=4.0, depths=[1, 2], flag=True, kernel={"a": 1, "b": 2},
                only_in_base=3)
    logged = [dict(embed_dim="96", mlp_ratio="4.0", depths="[1, 2]", flag="true",
                   kernel='{"b": 2, "a": 1}'),
              dict(embed_dim="96.0", mlp_ratio="4", depths="[1,2]", flag="1", kernel="plain",
                   extra="null"),
              dict(embed_dim="64", mlp_ratio="4.0", depths="[2, 1]", flag="false",
                   kernel='{"a": 1, "b": 3}', extra="7")]
    rows = [{"run_id": f"r{i}", "status": "FINISHED", "tag.status": "finished",
             **{f"param.model.{k}": v for k, v in knobs.items()}}
            for i, knobs in enumerate(logged * 3)]
    records = _trial_records(rows, (Objective("val_top1", "max"),), base)
    expected = [arch_diff(rec["model"], base) for rec in records]
    assert [rec["diff"] for rec in records] == expected
    assert expected[0] == []
    assert [k for k, _, _ in expected[1]] == ["embed_dim", "mlp_ratio", "flag", "kernel"]
    assert [k for k, _, _ in expected[2]] == ["embed_dim", "depths", "flag", "kernel", "extra"]
    assert all(rec["diff"] == [] for rec in _trial_records(rows, (), None))
    # each text parsed once: the same values, and every record its own lists and dicts
    import json

    from mvit_lab.search.records import param_value, unflatten

    for rec, row in zip(records, rows):
        params = {k[len("param."):]: v for k, v in row.items() if k.startswith("param.")}
        assert json.dumps(rec["config"]) == json.dumps(unflatten(params, ""))
        assert json.dumps(rec["model"]) == json.dumps(
            {k[len("param.model."):]: param_value(v) for k, v in row.items()
             if k.startswith("param.model.")})
    assert records[0]["model"]["depths"] == records[3]["model"]["depths"] == [1, 2]
    assert records[0]["model"]["depths"] is not records[3]["model"]["depths"]
    assert records[0]["config"]["model"]["kernel"] is not records[3]["config"]["model"]["kernel"]


def test_the_recipe_banner_reads_the_parent_run_alone(fixture_store):
    """The banner (redrawn on every change of the sweep) takes the parent's params from a
    one-run frame: the same params as from the frame of every run."""
    from mvit_lab.dashboards.meta import parent_params

    reader = StoreReader(fixture_store["uri"])
    sweep = reader.sweep("ablation")
    one = reader.runs_of("ablation", [sweep.parent_run_id])
    assert list(one["run_id"]) == [sweep.parent_run_id]
    params = parent_params(one, sweep.parent_run_id)
    assert params == parent_params(reader.runs("ablation"), sweep.parent_run_id)
    assert params["experiment.name"] == "ablation" and len(params) > 10
