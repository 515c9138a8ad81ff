"""Exactly one run per sampled point: twins wait and reuse, unbuildable points get a FAILED
run, and a store that refuses writes mid-sweep loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mvit_lab.search.space import Point
from mvit_lab.search.trial import OUTCOME, TrialSpec, TwinFailedError, run_trial, trial_id
from mvit_lab.tracking import Tracker, ensure_experiment, metric_history, runs_dataframe

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)
QUICK_MEASURE = dict(batch=8, modes=["infer"],
                     protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MVIT_LAB_LOCK_DIR", str(tmp_path / "locks"))


def _spec(tmp_path, point: dict, epochs: int = 2) -> TrialSpec:
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    ensure_experiment("twins", uri)
    parent = Tracker(uri, "twins").start_parent("sweep", {}, {})
    return TrialSpec(
        experiment=dict(name="twins", data=dict(dataset="digits"), model=dict(TINY),
                        train=dict(epochs=epochs, batch_size=256, threads=1)),
        space=dict(base={}, params={"num_heads": {"choice": [1, 2, 3]}}),
        point=point, seed=0, tracking_uri=uri, mlflow_experiment="twins",
        parent_run_id=parent, trials_dir=str(tmp_path / "trials"),
        measure=dict(QUICK_MEASURE, cache=str(tmp_path / "cache")))


def test_two_concurrent_draws_of_one_point_train_once(tmp_path, monkeypatch):
    import mvit_lab.train as train_pkg  # the trial imports train from it when it runs

    trained = []

    real_train = train_pkg.train

    def counting_train(*args, **kwargs):
        trained.append(threading.get_ident())
        time.sleep(1.0)  # the twin arrives while this one trains
        return real_train(*args, **kwargs)

    monkeypatch.setattr(train_pkg, "train", counting_train)
    spec = _spec(tmp_path, dict(name="num_heads=2", model={"num_heads": 2}, train={}))
    results, reports = [], []
    threads = [threading.Thread(target=lambda: results.append(run_trial(
        spec, report=reports.append))) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join(300)
    assert len(trained) == 1 and len(results) == 2
    first, twin = sorted(results, key=lambda r: "twin_of" in r)
    assert twin["twin_of"] == first["trial_id"] and twin["val_top1"] == first["val_top1"]
    runs = runs_dataframe(spec.tracking_uri, "twins", parent_run_id=spec.parent_run_id)
    assert len(runs) == 1 and runs["status"].tolist() == ["FINISHED"]
    # one history, not two interleaved: each epoch logged once
    steps = [step for step, _ in metric_history(spec.tracking_uri, runs["run_id"][0],
                                                "val_top1")]
    assert steps == [1, 2]
    # a later draw of the same point (Optuna repeats) reuses the outcome at once
    again = run_trial(spec)
    assert again["twin_of"] == first["trial_id"] and len(trained) == 1


def test_a_twin_of_a_failed_trial_reports_the_failure_without_training(tmp_path):
    spec = _spec(tmp_path, dict(name="num_heads=2", model={"num_heads": 2}, train={}))
    point = Point(**spec.point)
    folder = Path(spec.trials_dir) / trial_id(point, 0)
    folder.mkdir(parents=True)
    (folder / OUTCOME).write_text(json.dumps(dict(status="failed", reason="NaN loss")))
    with pytest.raises(TwinFailedError, match="failed in an earlier draw: NaN loss"):
        run_trial(spec)
    runs = runs_dataframe(spec.tracking_uri, "twins", parent_run_id=spec.parent_run_id)
    assert not len(runs)  # no run opened, nothing logged


def test_an_unbuildable_point_gets_a_failed_run_naming_the_field(tmp_path):
    spec = _spec(tmp_path, dict(name="num_heads=3", model={"num_heads": 3}, train={}))
    with pytest.raises(ValueError, match="num_heads"):
        run_trial(spec)
    runs = runs_dataframe(spec.tracking_uri, "twins", parent_run_id=spec.parent_run_id)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FAILED" and run["tag.status"] == "failed"
    assert run["tag.reason"].startswith("invalid architecture: num_heads")
    assert run["param.model.num_heads"] == "3"


STORE_EXP = dict(name="flaky", data=dict(dataset="digits"), model=dict(TINY),
                 train=dict(epochs=3, batch_size=128, threads=1),
                 search=dict(grid=dict(embed_dim=[8, 12, 16])),
                 objectives=dict(val_top1="max", gflops="min"),
                 budget=dict(concurrency=1), tracking=dict(uri="mlruns.db"),
                 measure=QUICK_MEASURE)


def _cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "mvit_lab.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_store_that_refuses_writes_mid_sweep_loses_nothing(tmp_path):
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(STORE_EXP))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "mvit_lab.cli", "sweep", "exp.yaml"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    trials = tmp_path / "runs" / "sweeps" / "flaky" / "trials"
    deadline = time.monotonic() + 300
    while not list(trials.glob("*/metrics.json")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the first trial has finished an epoch: break the store now
    # a directory where SQLite wants its rollback journal: every query fails with a disk
    # I/O error (as root, permissions cannot make a file read-only)
    broken = tmp_path / "mlruns.db-journal"
    for _ in range(1000):
        try:
            broken.mkdir()
            break
        except FileExistsError:  # SQLite's own journal, mid-transaction: try again
            time.sleep(0.01)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("mvit-lab: error:")]
    assert len(errors) == 1 and "refused a write" in errors[0], err[-3000:]
    assert "--resume" in errors[0] and err.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in err  # MLflow's own error log goes to the sweep's log file
    assert "\x1b[" not in errors[0]
    assert list(trials.glob("*/journal.jsonl"))  # the records are on disk
    broken.rmdir()  # writable again
    done = _cli(tmp_path, "sweep", "exp.yaml", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    runs = runs_dataframe(uri, "flaky")
    children = runs[runs["parent_run_id"].notna()]
    assert len(children) == 3 and children["tag.trial_id"].nunique() == 3
    assert "RUNNING" not in set(runs["status"])
    assert set(children["tag.status"]) == {"finished"}
    for run_id in children["run_id"]:  # every epoch exactly once
        assert [s for s, _ in metric_history(uri, run_id, "val_top1")] == [1, 2, 3]
    assert not list(trials.glob("*/journal.jsonl"))


@pytest.mark.slow
def test_optuna_drawing_one_point_three_times_trains_it_once(tmp_path, monkeypatch):
    import ray

    from mvit_lab.experiment import experiment_from_dict
    from mvit_lab.search.sweep import run_sweep

    monkeypatch.chdir(tmp_path)
    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        exp = experiment_from_dict(dict(
            name="repeats", data=dict(dataset="digits"), model=dict(TINY),
            train=dict(epochs=2, batch_size=256, threads=1),
            search=dict(base={}, params={"embed_dim": {"choice": [8]}}),  # one point only
            algorithm="random", budget=dict(samples=3, concurrency=2),
            tracking=dict(uri=str(tmp_path / "mlruns.db")), measure=QUICK_MEASURE),
            str(tmp_path / "exp.yaml"))
        result = run_sweep(exp)
    finally:
        ray.shutdown()
    runs = runs_dataframe(result["tracking_uri"], "repeats",
                          parent_run_id=result["parent_run_id"])
    assert len(runs) == 1 and result["counts"] == {"finished": 1}
    steps = [s for s, _ in metric_history(result["tracking_uri"], runs["run_id"][0],
                                          "val_top1")]
    assert steps == [1, 2]  # trained once: one history
    # all three of Ray's trials got the result (Optuna is told three complete trials)
    reported = [json.loads(line) for path in (tmp_path / "runs" / "sweeps" / "repeats" /
                                             "tune").glob("*/result.json")
                for line in path.read_text().splitlines() if line.strip()]
    finals = [r for r in reported if r.get("status") == "finished"]
    assert len(finals) == 3 and len({r["val_top1"] for r in finals}) == 1
    assert sum("twin_of" in r for r in finals) == 2
