"""Sweeps end to end on a local Ray: faults recorded, every trial once in MLflow, resume."""

from __future__ import annotations

import json

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search.sweep import parse_sweep, run_sweep
from mvit_lab.tracking import runs_dataframe

# cost measurements kept short: these tests check sweeps, not timings
QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _exp(tmp_path, **sections):
    tree = dict(name="faults", data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=1, batch_size=256, threads=1),
                tracking=dict(uri=str(tmp_path / "mlruns.db")),
                **{"measure": QUICK_MEASURE, **sections})
    return experiment_from_dict(tree, str(tmp_path / "exp.yaml"))


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.shutdown()  # a fresh local instance, whatever ran before in this process
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_faults_are_recorded_once_and_resume_runs_nothing_again(tmp_path, ray_local,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    # (lr ok, small) finishes; (lr 1e30, small) hits a NaN loss; width 256 breaks the params
    # constraint and is pruned before training
    exp = _exp(tmp_path, search=dict(grid={"train.lr": [0.003, 1.0e30], "embed_dim": [8, 256]},
                                     constraints={"params": {"max": 200_000}}),
               objectives={"val_top1": "max", "gflops": "min"}, budget=dict(concurrency=2))
    result = run_sweep(exp)
    assert result["counts"] == {"finished": 1, "failed": 1, "pruned": 2}
    runs = runs_dataframe(result["tracking_uri"], "faults")
    trials = runs[runs["parent_run_id"] == result["parent_run_id"]]
    assert len(trials) == 4 and trials["tag.trial_id"].nunique() == 4
    assert "RUNNING" not in set(runs["status"])
    failed = trials[trials["tag.status"] == "failed"]
    assert failed["tag.reason"].str.contains("FloatingPointError: loss is nan").all()
    pruned = trials[trials["tag.status"] == "pruned"]
    assert pruned["tag.reason"].str.contains("params .* > max 2e\\+05").all()
    assert [r["status"] for r in result["front"]] == ["finished"]
    from mlflow import MlflowClient

    from mvit_lab.dashboards import log_sweep_report

    log_sweep_report(result)  # what `mvit-lab sweep` does after the sweep
    artifacts = {a.path for a in MlflowClient(result["tracking_uri"]).list_artifacts(
        result["parent_run_id"])}
    assert {"pareto_front.json", "pareto_val_top1_vs_gflops.html", "ablation.md"} <= artifacts
    # the grid's model knob gets an ablation table; only the finished trial counts
    (table,) = result["ablations"]
    assert [(r["factor"], r["level"], r["n"]) for r in table] == [("embed_dim", 8, 1)]
    assert result["front"][0]["val_top1"] > 0 and result["front"][0]["rank"] == 0
    json.dumps(result["front"])  # the front is plain data, logged as JSON to the parent run
    # resume: nothing is left to run and no run is duplicated
    again = run_sweep(exp, resume=True)
    runs = runs_dataframe(result["tracking_uri"], "faults")
    assert len(runs[runs["parent_run_id"] == result["parent_run_id"]]) == 4
    assert again["counts"] == result["counts"]


def test_a_second_sweep_of_the_same_name_needs_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "sweeps" / "faults").mkdir(parents=True)
    (tmp_path / "runs" / "sweeps" / "faults" / "sweep.json").write_text("{}")
    exp = _exp(tmp_path, search=dict(grid={"pool_mode": ["max"]}))
    with pytest.raises(ValueError, match="use --resume"):
        run_sweep(exp)
    with pytest.raises(ValueError, match="no sweep to resume"):
        run_sweep(_exp(tmp_path / "other", search=dict(grid={"pool_mode": ["max"]})),
                  resume=True, storage=tmp_path / "elsewhere")


def test_gpu_request_on_a_cpu_cluster_is_refused(tmp_path, ray_local, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = _exp(tmp_path, search=dict(grid={"pool_mode": ["max"]}), resources=dict(gpus=1))
    with pytest.raises(ValueError, match="resources.gpus: 1 per trial requested but the Ray "
                                         "cluster has 0 GPUs"):
        run_sweep(exp)
    # refused before anything was written: no sweep folder, no store, no parent run
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlruns.db").exists()


@pytest.mark.parametrize(("sections", "message"), [
    (dict(), "search: a sweep needs a search space"),
    (dict(search="missing.yaml"), "no such search space file"),
    (dict(search=dict(grid={"num_heads": [3, 5]})), r"2 point\(s\) cannot build"),
    (dict(search=dict(grid={"pool_mode": ["max"]}), algorithm="nsga2"),
     "nsga2 does not fit a grid search space"),
    (dict(search=dict(params={"embed_dim": {"choice": [8, 16]}}), scheduler="asha",
          objectives={"val_top1": "max", "gflops": "min"}), "asha stops trials early"),
    (dict(search=dict(grid={"pool_mode": ["max"]}), budget=dict(seeds=0)), "budget.seeds"),
    (dict(search=dict(grid={"pool_mode": ["max"]}), budget=dict(sample=3)),
     "budget.sample: unknown key"),
    (dict(search=dict(grid={"pool_mode": ["max"]}), objectives={"val_top1": "up"}), "sense"),
    # an objective no trial reports: one line before Ray starts, naming what trials report
    (dict(search=dict(grid={"pool_mode": ["max"]}), objectives={"val_top": "max"}),
     r"objectives: no trial reports 'val_top' \(did you mean .*\); trials report: val_top1, "),
    (dict(search=dict(params={"num_heads": {"choice": [1, 3]}})),
     r"search.params: 1 of 2 points cannot build: num_heads=3"),
    # every point must pretrain sparsely: 4 mask units, and 0.9 keeps none
    (dict(search=dict(grid={"embed_dim": [8, 16]}), pretrain=dict(mask_ratio=0.9)),
     r"2 point\(s\) cannot build: embed_dim=8: pretrain.mask_ratio: 0.9 keeps no unit of 4"),
])
def test_sweep_sections_are_checked_before_anything_starts(tmp_path, sections, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep(_exp(tmp_path, **sections))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="raises only without CUDA")
def test_a_trial_that_raises_is_recorded_with_its_reason(tmp_path, ray_local, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # train.device=cuda on a machine without CUDA: train() raises a ValueError in the trial
    exp = _exp(tmp_path, search=dict(grid={"train.device": ["cuda", "cpu"]}))
    result = run_sweep(exp)
    assert result["counts"] == {"failed": 1, "finished": 1}
    runs = runs_dataframe(result["tracking_uri"], "faults")
    failed = runs[runs["tag.status"] == "failed"].iloc[0]
    assert failed["status"] == "FAILED"
    assert failed["tag.reason"].startswith("ValueError: train.device: cuda requested")


def test_retry_failed_reruns_only_the_failed_trial(tmp_path, ray_local, monkeypatch):
    """A transient fault (a corrupt checkpoint in one trial's folder) fails that trial; once it
    is gone, --retry-failed runs it again in its own MLflow run and leaves the other alone."""
    from mvit_lab.search.trial import trial_id

    monkeypatch.chdir(tmp_path)
    exp = _exp(tmp_path, search=dict(grid={"train.lr": [0.003, 0.002]}))
    sweep = parse_sweep(exp)
    bad = sweep.space.points()[1]
    folder = tmp_path / "runs" / "sweeps" / "faults" / "trials" / trial_id(bad, 0)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    first = run_sweep(exp)
    assert first["counts"] == {"failed": 1, "finished": 1}
    runs = runs_dataframe(first["tracking_uri"], "faults")
    good_end = runs[runs["tag.status"] == "finished"]["end_time"].iloc[0]
    with pytest.raises(ValueError, match="--retry-failed: only a resumed sweep"):
        run_sweep(exp, retry_failed=True)
    (folder / "checkpoint.pt").unlink()
    second = run_sweep(exp, resume=True, retry_failed=True)
    assert second["counts"] == {"finished": 2}
    runs = runs_dataframe(second["tracking_uri"], "faults")
    assert len(runs[runs["parent_run_id"] == second["parent_run_id"]]) == 2
    assert "tag.reason" not in runs or runs["tag.reason"].isna().all()
    assert runs[runs["tag.point"] == sweep.space.points()[0].name]["end_time"].iloc[0] == \
        good_end  # the finished trial did not run again
    # the parent run records the search space as it ran and the objectives' order, so the
    # dashboard rebuilds the base from anywhere
    from mvit_lab.dashboards.data import load_sweep
    from mvit_lab.tracking import load_json_artifact

    parent = second["parent_run_id"]
    assert load_json_artifact(second["tracking_uri"], parent, "search_space.json") == \
        sweep.space_tree
    assert load_json_artifact(second["tracking_uri"], parent, "nothing.json") is None
    read = load_sweep(second["tracking_uri"], "faults", search_dirs=[tmp_path / "nowhere"])
    assert read.base_source == "the search space logged on the sweep's parent run"
    assert read.base is not None and read.base["embed_dim"] == 8
    assert [o.name for o in read.objectives] == [o.name for o in sweep.objectives]
