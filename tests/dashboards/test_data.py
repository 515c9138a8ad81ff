"""The dashboard's data layer against the hand-made fixture store (see conftest.py)."""

from __future__ import annotations

import pytest
from dashboard_store import ABLATION_TRIALS, copy_store, write_sweep

from mvit_lab.dashboards.data import DataError, StoreReader, arch_diff, load_sweep, overview
from mvit_lab.dashboards.views import default_views, front_info, parallel_info
from mvit_lab.search.pareto import Objective
from mvit_lab.tracking import Tracker


def test_overview_counts_trials_by_status(fixture_store):
    rows = {r["name"]: r for r in overview(fixture_store["uri"])}
    assert set(rows) == {"ablation", "ladder", "failing", "no_throughput"}  # warmup: no runs
    assert rows["ablation"]["counts"] == dict(running=1, finished=5, failed=1, pruned=1)
    assert rows["ablation"]["sweeps"] == 1 and rows["ablation"]["trials"] == 8
    assert rows["failing"]["counts"] == dict(running=0, finished=0, failed=2, pruned=0)


def test_sweep_records_objectives_and_base(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    assert sweep.parent_run_id == fixture_store["ablation"] and sweep.mode == "grid"
    assert sweep.objectives == (Objective("val_top1", "max"), Objective("gflops", "min"))
    assert sweep.base["pool_mode"] == "max" and sweep.base["embed_dim"] == 8
    assert "logged on the sweep's parent run" in sweep.base_source
    by_point = {(r["point"], r["seed"]): r for r in sweep.records}
    assert by_point[("pool_mode=max", "0")]["diff"] == []
    assert by_point[("pool_mode=avg", "1")]["diff"] == [("pool_mode", "max", "avg")]
    assert by_point[("pool_mode=avg", "2")]["reason"] == "FloatingPointError: loss is nan"
    assert by_point[("pool_mode=conv", "1")]["status"] == "running"
    assert by_point[("pool_mode=max", "0")]["config"]["train"]["lr"] == 0.003
    assert len(sweep.finished) == 5 and sweep.running
    assert sweep.knobs() == ["pool_mode"]
    assert sweep.metrics()[:2] == ["val_top1", "gflops"]
    assert {"params", "throughput"} <= set(sweep.metrics()) and "epoch" not in sweep.metrics()


def test_arch_diff_lists_changed_knobs_only():
    base = dict(pool_mode="max", depths=[1, 1], embed_dim=8)
    model = dict(pool_mode="avg", depths=[1, 2], embed_dim=8)
    assert arch_diff(model, base) == [("pool_mode", "max", "avg"), ("depths", [1, 1], [1, 2])]
    assert arch_diff(model, None) == []


def test_front_against_hand_computed_points(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "ablation")
    assert default_views(sweep) == [("gflops", "val_top1", None)]
    info = front_info(sweep, "gflops", "val_top1")
    on_front = sorted((p["x"], p["y"]) for p in info["points"] if p["on_front"])
    assert on_front == [(0.5, 87.0), (1.0, 94.0)]
    assert info["front"] == [(0.5, 87.0), (1.0, 94.0)]
    assert len(info["points"]) == 5  # the failed trial's 99 / 0.1 is never drawn
    assert info["not_finished"] == dict(failed=1, pruned=1, running=1)
    # throughput is not an objective here: its sense is guessed from the name (max)
    fast = front_info(sweep, "throughput", "val_top1", color="gflops")
    assert sorted((p["x"], p["y"]) for p in fast["points"] if p["on_front"]) == \
        [(100.0, 94.0), (200.0, 87.0)]
    assert fast["color_range"] == (0.5, 1.0)


def test_parallel_coordinates_from_knobs_to_objectives(fixture_store):
    info = parallel_info(load_sweep(fixture_store["uri"], "ablation"))
    knob, top1, gflops = info["dimensions"]
    assert knob["label"] == "pool_mode" and knob["ticks"] == ["avg", "max"]
    assert sorted(zip(knob["values"], top1["values"])) == \
        [(0, 85.0), (0, 87.0), (1, 90.0), (1, 92.0), (1, 94.0)]
    assert gflops["label"] == "gflops" and info["color"] == "val_top1" and info["n"] == 5


def test_only_failed_trials_give_a_message_with_the_reason(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "failing")
    with pytest.raises(DataError, match="no finished trials .* 2 failed.*out of memory"):
        front_info(sweep, "gflops", "val_top1")
    with pytest.raises(DataError, match="no finished trials"):
        parallel_info(sweep)


def test_a_missing_objective_metric_is_named(fixture_store):
    sweep = load_sweep(fixture_store["uri"], "no_throughput")
    assert default_views(sweep)[0][:2] == ("throughput", "val_top1")
    with pytest.raises(DataError, match="metric 'throughput' is missing from all 2 finished "
                                        "trials.*logged metrics: val_top1, gflops"):
        front_info(sweep, "throughput", "val_top1")


def test_missing_store_and_unknown_names(tmp_path, fixture_store):
    with pytest.raises(DataError, match=r"no MLflow store at .*nowhere\.db.*make quickstart"):
        overview(f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert not (tmp_path / "nowhere.db").exists()  # reading never creates a store
    with pytest.raises(DataError, match="experiment 'nope' does not exist"):
        load_sweep(fixture_store["uri"], "nope")
    with pytest.raises(DataError, match="no sweep with parent run 'abc'"):
        load_sweep(fixture_store["uri"], "ablation", "abc")


def test_an_empty_store_has_no_experiments(migrated_db, tmp_path):
    assert overview(copy_store(migrated_db, tmp_path)) == []


def test_unreachable_server_is_a_data_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(DataError, match="cannot reach the MLflow store http://127.0.0.1:9"):
        overview("http://127.0.0.1:9")


def test_search_space_file_is_found_relative_to_the_search_dirs(fixture_copy, tmp_path):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "s.yaml").write_text(
        "base: {preset: hiera_t, input_size: [1, 16, 16], patch_kernel: [1, 2, 2],\n"
        "       patch_stride: [1, 2, 2], patch_padding: [0, 0, 0], depths: [1, 1],\n"
        "       embed_dim: 12, mask_unit_size: [1, 4, 4], mask_unit_attn: [true, false],\n"
        "       num_classes: 10}\n"
        "grid: {pool_mode: [max, avg]}\n")
    write_sweep(fixture_copy["uri"], "by_path", "../spaces/s.yaml", dict(val_top1="max"),
                ABLATION_TRIALS[:1])
    found = load_sweep(fixture_copy["uri"], "by_path", search_dirs=[tmp_path / "experiments"])
    assert found.base["embed_dim"] == 12
    assert found.records[0]["diff"] == [("embed_dim", 12, 8)]
    lost = load_sweep(fixture_copy["uri"], "by_path", search_dirs=[tmp_path / "a" / "b"])
    assert lost.base is None and "'../spaces/s.yaml' is not found" in lost.base_source


def test_reader_rebuilds_a_sweep_only_when_it_changed(fixture_copy):
    reader = StoreReader(fixture_copy["uri"], max_age_s=0.0)
    first = reader.sweep("ablation")
    assert reader.sweep("ablation") is first  # nothing logged: the cached sweep
    running = fixture_copy["ablation_runs"][-1]
    Tracker(fixture_copy["uri"], "ablation").log_metrics(running, dict(val_top1=55.0), step=2)
    second = reader.sweep("ablation")
    assert second is not first and second.fingerprint != first.fingerprint
    rec = next(r for r in second.records if r["run_id"] == running)
    assert rec["val_top1"] == 55.0
    assert reader.reads == 3  # one MLflow search per call, never more


def test_objectives_follow_the_sweeps_order_tag():
    from mvit_lab.dashboards.data import _objectives

    params = {"experiment.objectives.gflops": "min", "experiment.objectives.val_top1": "max",
              "experiment.objectives.throughput": "max"}
    tagged = _objectives(params, "throughput:max,val_top1:max,gflops:min")
    assert [(o.name, o.sense) for o in tagged] == [("throughput", "max"), ("val_top1", "max"),
                                                  ("gflops", "min")]
    # older sweeps have no tag: the top-1 objective leads
    assert _objectives(params)[0].name == "val_top1"
    assert _objectives(params, "val_top1:upward")[0].name == "val_top1"
