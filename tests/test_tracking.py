from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow.utils.validation as mlflow_limits
import numpy as np
import pandas as pd
import pytest

from mvit_lab import tracking
from mvit_lab.tracking import (
    RUN_COLUMNS,
    Tracker,
    default_tracking_uri,
    ensure_experiment,
    flatten_params,
    metric_history,
    resolve_tracking_uri,
    runs_dataframe,
)

EXPERIMENT = "sweep"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """A store migrated once by ensure_experiment on a fresh file (Alembic takes seconds)."""
    base = tmp_path_factory.mktemp("template")
    ensure_experiment("warmup", default_tracking_uri(base))
    return base / "mlruns.db"


@pytest.fixture
def uri(tmp_path, migrated_db) -> str:
    shutil.copy(migrated_db, tmp_path / "mlruns.db")
    return default_tracking_uri(tmp_path)


@pytest.fixture
def tracker(uri) -> Tracker:
    ensure_experiment(EXPERIMENT, uri)
    return Tracker(uri, EXPERIMENT)


def _child(tracker: Tracker, parent: str, trial: str, params=None, **kwargs) -> str:
    tags = {"trial_id": trial}
    return tracker.start_child(parent, f"trial-{trial}", params or {}, tags, **kwargs)


# -- URIs -----------------------------------------------------------------------------------------
def test_default_uri_is_absolute_sqlite(tmp_path, monkeypatch):
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    assert resolve_tracking_uri(None) == default_tracking_uri(tmp_path)


def test_resolve_tracking_uri(tmp_path):
    base = tmp_path.resolve()
    assert resolve_tracking_uri("sqlite:///runs/a.db", tmp_path) == f"sqlite:///{base}/runs/a.db"
    assert resolve_tracking_uri("sqlite:////abs/a.db", tmp_path) == "sqlite:////abs/a.db"
    assert resolve_tracking_uri("sqlite:///a.db?timeout=30", tmp_path) == (
        f"sqlite:///{base}/a.db?timeout=30"
    )
    assert resolve_tracking_uri("foo.db", tmp_path) == f"sqlite:///{base}/foo.db"
    assert resolve_tracking_uri("sub/foo.db", tmp_path) == f"sqlite:///{base}/sub/foo.db"
    for passthrough in (
        "http://mlflow.example:5000",
        "https://mlflow.example",
        "postgresql://u:p@db/mlflow",
        "file:///tmp/mlruns",
        "databricks",
    ):
        assert resolve_tracking_uri(passthrough, tmp_path) == passthrough
    # resolving twice changes nothing, so every entry point may resolve again
    once = resolve_tracking_uri("sqlite:///x.db", tmp_path)
    assert resolve_tracking_uri(once, "/somewhere/else") == once


def test_resolve_tracking_uri_errors(tmp_path):
    (tmp_path / "mlruns").mkdir()
    with pytest.raises(ValueError, match="rejects the plain file store"):
        resolve_tracking_uri("mlruns", tmp_path)
    with pytest.raises(ValueError, match="^tracking_uri"):
        resolve_tracking_uri("  ", tmp_path)


# -- experiments ----------------------------------------------------------------------------------
def test_ensure_experiment_is_idempotent(uri, tmp_path):
    first = ensure_experiment(EXPERIMENT, uri)
    assert ensure_experiment(EXPERIMENT, uri) == first
    assert ensure_experiment("other", uri) != first
    experiment = Tracker(uri, EXPERIMENT).client.get_experiment(first)
    # artifacts beside the database, not under the creating process's working directory
    assert experiment.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
    with pytest.raises(ValueError, match="^experiment_name"):
        ensure_experiment("", uri)


def test_experiments_are_filed_as_model_training_not_genai(uri):
    """MLflow 3's UI lists an experiment without ``mlflow.experimentKind`` under its GenAI
    "Evaluation runs"; ours are training runs. A kind set by the user is kept."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    new = client.get_experiment(ensure_experiment(EXPERIMENT, uri))
    assert new.tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("made-before")  # an experiment from an older mvit-lab
    ensure_experiment("made-before", uri)
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    mine = client.create_experiment("mine", tags={"mlflow.experimentKind": "finetuning"})
    ensure_experiment("mine", uri)
    assert client.get_experiment(mine).tags["mlflow.experimentKind"] == "finetuning"


def test_store_creation_waits_for_the_lock_beside_the_database(tmp_path):
    """Two drivers creating one fresh SQLite store race on MLflow's migration: creation holds
    an exclusive flock on ``<db>.lock``, so a second process waits instead of dying."""
    import fcntl
    import threading

    db = tmp_path / "mlruns.db"
    held = open(tmp_path / "mlruns.db.lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX)  # another driver is creating the store
    done = []
    worker = threading.Thread(target=lambda: done.append(
        ensure_experiment(EXPERIMENT, default_tracking_uri(tmp_path))))
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive() and not done and not db.exists()  # waited, touched nothing
    held.close()  # the other driver is done
    worker.join(timeout=120)
    assert done and db.is_file()


def test_two_processes_create_one_fresh_store(tmp_path):
    """The race itself: three processes open one fresh store at once; all succeed."""
    code = ("import sys, time; from mvit_lab.tracking import ensure_experiment; "
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
            "print(ensure_experiment(sys.argv[2], sys.argv[3]))")
    uri = default_tracking_uri(tmp_path)
    start = time.time() + 8  # after the imports of all three
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), f"exp{i}", uri],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 3


def test_tracker_needs_an_existing_experiment(uri):
    with pytest.raises(ValueError, match=r"experiment 'nope' does not exist.*ensure_experiment"):
        Tracker(uri, "nope")


def test_deleted_experiment_is_reported(uri):
    experiment_id = ensure_experiment("gone", uri)
    Tracker(uri, "gone").client.delete_experiment(experiment_id)
    with pytest.raises(ValueError, match="'gone' exists but is deleted"):
        ensure_experiment("gone", uri)
    with pytest.raises(ValueError, match="'gone' does not exist"):
        Tracker(uri, "gone")


def test_tracker_pickles_as_its_address(tracker):
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.tracking_uri == tracker.tracking_uri
    assert clone.experiment_id == tracker.experiment_id
    assert clone.client is not tracker.client


# -- runs -----------------------------------------------------------------------------------------
def test_parent_and_children(tracker):
    parent = tracker.start_parent("sweep-1", {"budget": {"trials": 4}}, {"kind": "grid"})
    a = _child(tracker, parent, "a", {"model": {"depths": (1, 2)}})
    b = _child(tracker, parent, "b")
    assert len({parent, a, b}) == 3
    run = tracker.client.get_run(a)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["trial_id"] == "a"
    assert run.data.params == {"model.depths": "[1, 2]"}
    assert run.info.status == "RUNNING" and run.info.run_name == "trial-a"
    assert tracker.client.get_run(parent).data.params == {"budget.trials": "4"}
    # a resumed sweep re-enters its parent
    tracker.finish(parent, "KILLED", reason="driver restart")
    assert tracker.start_parent("sweep-1", {"budget": {"trials": 4}}, {}, run_id=parent) == parent
    resumed = tracker.client.get_run(parent)
    assert resumed.info.status == "RUNNING" and "reason" not in resumed.data.tags


def test_child_restart_is_idempotent(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    params = {"model": {"depths": [1, 2]}, "lr": 0.1}
    first = _child(tracker, parent, "t1", params)
    tracker.log_metrics(first, {"loss": 1.0}, step=0)
    tracker.finish(first, "FAILED", reason="driver died")
    # a resumed driver starts the same trial again: same run, back to RUNNING, old reason gone
    again = _child(tracker, parent, "t1", params)
    assert again == first
    run = tracker.client.get_run(first)
    assert run.info.status == "RUNNING"
    assert "reason" not in run.data.tags
    assert run.data.params == {"lr": "0.1", "model.depths": "[1, 2]"}
    # explicit run_id takes the same path
    assert _child(tracker, parent, "t1", params, run_id=first) == first
    frame = runs_dataframe(tracker.tracking_uri, EXPERIMENT, parent_run_id=parent)
    assert frame["tag.trial_id"].tolist() == ["t1"]
    assert frame["metric.loss"].tolist() == [1.0]
    assert frame["status"].tolist() == ["RUNNING"] and frame["end_time"].isna().all()
    # the same trial id under another parent is another run
    other = tracker.start_parent("sweep-2", {}, {})
    assert _child(tracker, other, "t1", params) != first


def test_child_restart_rejects_changed_params(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    _child(tracker, parent, "t1", {"lr": 0.1, "seed": 0})
    with pytest.raises(ValueError, match=r"cannot change.*lr: '0.1' -> '0.2'"):
        _child(tracker, parent, "t1", {"lr": 0.2, "seed": 0})


def test_child_argument_errors(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    with pytest.raises(ValueError, match="'trial_id' is required"):
        tracker.start_child(parent, "x", {}, {"other": 1})
    with pytest.raises(ValueError, match="^run_id: no run 'deadbeef'"):
        _child(tracker, "deadbeef", "t1")
    stranger = tracker.start_parent("another sweep", {}, {})
    with pytest.raises(ValueError, match="is not a child of run"):
        _child(tracker, parent, "t1", run_id=stranger)
    with pytest.raises(ValueError, match="may not contain quotes"):
        _child(tracker, parent, "it's")


def test_params_are_logged_in_batches(tracker, monkeypatch):
    params = {"group": {f"p{i:03d}": i for i in range(250)}, "long": "x" * 7000}
    batches = []
    log_batch = tracker.client.log_batch

    def spy(run_id, metrics=(), params=(), tags=(), **kwargs):
        batches.append(len(params))
        return log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", spy)
    parent = tracker.start_parent("sweep", {}, {})
    run_id = _child(tracker, parent, "t1", params)
    assert [n for n in batches if n] == [100, 100, 51]
    stored = tracker.client.get_run(run_id).data.params
    assert len(stored) == 251 and stored["group.p249"] == "249"
    assert stored["long"] == "x" * tracking.MAX_PARAM_VALUE_LENGTH
    # re-logging identical values (also the over-long one, truncated the same way) is fine
    assert _child(tracker, parent, "t1", params) == run_id


def test_limits_match_mlflow():
    assert tracking.MAX_PARAMS_PER_BATCH == mlflow_limits.MAX_PARAMS_TAGS_PER_BATCH
    assert tracking.MAX_PARAM_VALUE_LENGTH == mlflow_limits.MAX_PARAM_VAL_LENGTH
    assert tracking.MAX_TAG_VALUE_LENGTH == mlflow_limits.MAX_TAG_VAL_LENGTH


# -- metrics and artifacts ------------------------------------------------------------------------
def test_metrics_per_step_skip_missing_values(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    run_id = _child(tracker, parent, "t1")
    tracker.log_metrics(run_id, {"loss": 2.0, "acc": 0.1}, step=0)
    tracker.log_metrics(run_id, {"loss": 1.0, "acc": None}, step=1)
    tracker.log_metrics(run_id, {"loss": np.float32(0.5), "acc": float("nan")}, step=2)
    tracker.log_metrics(run_id, {"acc": None}, step=3)  # nothing left to log: no error
    assert metric_history(tracker.tracking_uri, run_id, "loss") == [(0, 2.0), (1, 1.0), (2, 0.5)]
    assert metric_history(tracker.tracking_uri, run_id, "acc") == [(0, 0.1)]
    assert metric_history(tracker.tracking_uri, run_id, "never") == []
    with pytest.raises(ValueError, match="^metric 'acc': expected a number"):
        tracker.log_metrics(run_id, {"acc": "high"}, step=4)
    with pytest.raises(ValueError, match="^step"):
        tracker.log_metrics(run_id, {"acc": 1.0}, step=True)
    with pytest.raises(ValueError, match="^run_id: no run"):
        metric_history(tracker.tracking_uri, "0" * 32, "loss")


def test_artifacts_round_trip(tracker, tmp_path):
    parent = tracker.start_parent("sweep", {}, {})
    run_id = _child(tracker, parent, "t1")
    config = {"model": {"depths": (1, 2), "dim": np.int64(96)}, "name": "hiera_t"}
    tracker.log_dict(run_id, config, "config/arch.json")
    tracker.log_text(run_id, "hello\n", "notes.txt")
    tracker.log_figure_html(run_id, "<html><body>plot</body></html>", "figures/pareto.html")
    out = Path(tracker.client.download_artifacts(run_id, "", str(tmp_path / "download")))
    assert json.loads((out / "config/arch.json").read_text()) == {
        "model": {"depths": [1, 2], "dim": 96},
        "name": "hiera_t",
    }
    assert (out / "notes.txt").read_text() == "hello\n"
    assert "plot" in (out / "figures/pareto.html").read_text()
    # stored beside the database file
    assert list((tmp_path / "mlartifacts").rglob("arch.json"))
    with pytest.raises(ValueError, match="must end with '.html'"):
        tracker.log_figure_html(run_id, "<html/>", "figure.txt")
    with pytest.raises(ValueError, match="cannot store"):
        tracker.log_dict(run_id, {"x": object()}, "bad.json")
    with pytest.raises(ValueError, match="relative path"):
        tracker.log_text(run_id, "x", "../escape.txt")


# -- ending ---------------------------------------------------------------------------------------
def test_finish_statuses_and_reason(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    done, failed, unknown, killed, tagged = (_child(tracker, parent, t) for t in "abcde")
    tracker.finish(done, "FINISHED")
    tracker.set_tags(tagged, {"reason": "diverged"})
    tracker.finish(tagged, "FAILED")  # a reason set earlier is kept
    assert tracker.client.get_run(tagged).data.tags["reason"] == "diverged"
    tracker.finish(failed, "FAILED", reason="x" * 9000 + "CUDA out of memory")
    tracker.finish(unknown, "FAILED")
    tracker.finish(killed, "KILLED", reason="stopped by ASHA")
    runs = {r: tracker.client.get_run(r) for r in (done, failed, unknown, killed)}
    assert [r.info.status for r in runs.values()] == ["FINISHED", "FAILED", "FAILED", "KILLED"]
    assert all(r.info.end_time is not None for r in runs.values())
    assert "reason" not in runs[done].data.tags
    reason = runs[failed].data.tags["reason"]
    assert reason.endswith("CUDA out of memory") and len(reason) == tracking.MAX_TAG_VALUE_LENGTH
    assert runs[unknown].data.tags["reason"] == "unknown"
    assert runs[killed].data.tags["reason"] == "stopped by ASHA"
    with pytest.raises(ValueError, match="^status: expected one of"):
        tracker.finish(done, "DONE")


def test_close_stale(tracker):
    parent = tracker.start_parent("sweep", {}, {})
    finished, stale, resumed = (_child(tracker, parent, t) for t in ("f", "s", "r"))
    tracker.finish(finished, "FINISHED")
    other_parent = tracker.start_parent("other", {}, {})
    unrelated = _child(tracker, other_parent, "s")
    assert tracker.close_stale(parent, keep={"r"}) == [stale]
    status = {r: tracker.client.get_run(r).info.status for r in (finished, stale, resumed)}
    assert status == {finished: "FINISHED", stale: "KILLED", resumed: "RUNNING"}
    assert tracker.client.get_run(stale).data.tags["status"] == "interrupted"
    assert tracker.client.get_run(unrelated).info.status == "RUNNING"
    assert tracker.close_stale(parent, keep={"r"}) == []
    # resuming the interrupted trial later clears the marker
    assert _child(tracker, parent, "s") == stale
    assert "status" not in tracker.client.get_run(stale).data.tags


# -- reading --------------------------------------------------------------------------------------
def test_runs_dataframe(tracker):
    parent = tracker.start_parent("sweep", {"seed": 0}, {"kind": "grid"})
    a = _child(tracker, parent, "a", {"model": {"depths": [1, 2]}})
    b = _child(tracker, parent, "b", {"model": {"depths": [2, 2]}})
    tracker.log_metrics(a, {"top1": 0.5, "gflops": 1.5}, step=0)
    tracker.log_metrics(a, {"top1": 0.7}, step=5)
    tracker.log_metrics(a, {"top1": 0.6}, step=3)  # logged last, but not the latest step
    tracker.log_metrics(b, {"top1": 0.4}, step=0)
    tracker.finish(a, "FINISHED")

    children = runs_dataframe(tracker.tracking_uri, EXPERIMENT, parent_run_id=parent)
    assert list(children.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert children["run_id"].tolist() == [a, b]
    assert children["parent_run_id"].tolist() == [parent, parent]
    assert children["status"].tolist() == ["FINISHED", "RUNNING"]
    assert children["param.model.depths"].tolist() == ["[1, 2]", "[2, 2]"]
    assert children["tag.trial_id"].tolist() == ["a", "b"]
    assert children["metric.top1"].tolist() == [0.7, 0.4]
    gflops = children["metric.gflops"].tolist()
    assert gflops[0] == 1.5 and math.isnan(gflops[1])
    assert isinstance(children["start_time"].iloc[0], pd.Timestamp)
    assert children["end_time"].iloc[0] >= children["start_time"].iloc[0]
    assert pd.isna(children["end_time"].iloc[1])
    extra = [c for c in children.columns if c not in RUN_COLUMNS]
    groups = [c.split(".", 1)[0] for c in extra]
    assert groups == sorted(groups, key=["tag", "param", "metric"].index)

    everything = runs_dataframe(tracker.tracking_uri, EXPERIMENT)
    assert everything["run_id"].tolist() == [parent, a, b]
    assert everything["parent_run_id"].isna().tolist() == [True, False, False]
    assert everything.loc[0, "param.seed"] == "0" and everything.loc[0, "tag.kind"] == "grid"


def test_runs_dataframe_empty_and_missing(uri):
    ensure_experiment("empty", uri)
    frame = runs_dataframe(uri, "empty")
    assert frame.empty and list(frame.columns) == list(RUN_COLUMNS)
    with pytest.raises(ValueError, match="experiment 'missing' does not exist"):
        runs_dataframe(uri, "missing")


def test_reading_helpers_for_the_dashboard(uri, tmp_path):
    experiment_id = ensure_experiment("empty", uri)
    assert runs_dataframe(uri, "empty").attrs["experiment_id"] == experiment_id
    assert [e["name"] for e in tracking.list_experiments(uri)] == ["Default", "empty", "warmup"]
    missing = tmp_path / "elsewhere" / "mlruns.db"
    with pytest.raises(ValueError, match="no MLflow store at"):
        tracking.list_experiments(f"sqlite:///{missing}")
    assert not missing.exists()  # reading never creates a store
    assert tracking.sqlite_path(uri) == tmp_path / "mlruns.db"
    assert tracking.sqlite_path("http://host:5000") is None
    assert tracking.run_url(uri, "1", "abc") is None  # SQLite: no server to link to
    assert tracking.run_url("http://mlflow:5000/", "1", "abc") == \
        "http://mlflow:5000/#/experiments/1/runs/abc"


# -- params ---------------------------------------------------------------------------------------
def test_flatten_params():
    flat = flatten_params(
        {
            "model": {"depths": (1, 2), "pool_mode": "max", "mask_unit_attn": None, "extra": {}},
            "lr": 0.001,
            "amp": True,
            "seed": np.int64(3),
        }
    )
    assert flat == {
        "amp": "true",
        "lr": "0.001",
        "model.depths": "[1, 2]",
        "model.extra": "{}",
        "model.mask_unit_attn": "null",
        "model.pool_mode": "max",
        "seed": "3",
    }
    assert list(flat) == sorted(flat)
    assert flatten_params(flat) == flat  # already-flat string params pass through unchanged
    assert flatten_params({"b": 1, "a": 2}, prefix="x") == {"x.a": "2", "x.b": "1"}
    with pytest.raises(ValueError, match="'a.b' occurs twice"):
        flatten_params({"a.b": 1, "a": {"b": 2}})
    with pytest.raises(ValueError, match="keys must be non-empty strings"):
        flatten_params({1: "x"})
    with pytest.raises(ValueError, match="cannot store object"):
        flatten_params({"x": object()})


# -- concurrency ----------------------------------------------------------------------------------
_WORKER = """
import importlib.util, pathlib, sys, time

# load the module by path: importing the package would pull in torch for nothing
spec = importlib.util.spec_from_file_location("tracking_under_test", sys.argv[1])
tracking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tracking)
uri, experiment, parent, worker, ready, go = sys.argv[2:]
tracker = tracking.Tracker(uri, experiment)
pathlib.Path(ready).touch()
deadline = time.time() + 60
while not pathlib.Path(go).exists():
    if time.time() > deadline:
        sys.exit("never told to go")
    time.sleep(0.01)
for i in range(3):
    trial = f"{worker}-{i}"
    run_id = tracker.start_child(parent, trial, {"model": {"depths": [1, i]}}, {"trial_id": trial})
    for step in range(10):
        tracker.log_metrics(run_id, {"loss": 1.0 / (step + 1), "step_seen": step}, step)
    tracker.log_dict(run_id, {"worker": worker, "i": i}, "config.json")
    tracker.finish(run_id, "FINISHED")
"""


def test_two_processes_log_into_one_store(tmp_path, migrated_db):
    # the driver migrates the store (migrated_db did that on a fresh file) and creates the
    # experiment before any worker starts
    (tmp_path / "store").mkdir()
    shutil.copy(migrated_db, tmp_path / "store" / "mlruns.db")
    uri = default_tracking_uri(tmp_path / "store")
    ensure_experiment(EXPERIMENT, uri)
    parent = Tracker(uri, EXPERIMENT).start_parent("sweep", {}, {})
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    procs, ready = [], []
    for worker in ("w0", "w1"):
        cwd = tmp_path / worker  # workers run elsewhere, as Ray workers do
        cwd.mkdir()
        ready.append(tmp_path / f"{worker}.ready")
        args = [tracking.__file__, uri, EXPERIMENT, parent, worker, str(ready[-1]), str(go)]
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), *args],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.time() + 60
        while not all(p.exists() for p in ready) and time.time() < deadline:
            if any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.05)
        go.touch()  # both start logging at once
        results = [proc.communicate(timeout=90) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]

    frame = runs_dataframe(uri, EXPERIMENT, parent_run_id=parent)
    assert sorted(frame["tag.trial_id"]) == [f"w{w}-{i}" for w in range(2) for i in range(3)]
    assert set(frame["status"]) == {"FINISHED"}
    assert frame["metric.loss"].tolist() == [0.1] * 6
    for run_id in frame["run_id"]:
        assert [s for s, _ in metric_history(uri, run_id, "step_seen")] == list(range(10))
    assert not (tmp_path / "w0" / "mlruns").exists()  # nothing landed in a worker's cwd
