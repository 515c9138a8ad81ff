"""Replay sweeps through the real CLI on the shipped table (benchmarks/replay/digits_small):
Ray Tune, the MOASHA scheduler, the Optuna searcher and MLflow run as in any sweep, and each
trial answers from the table. Grid + MOASHA, a ladder + MOASHA (steps stopped only with
``stop_ladder: true``) and random + MOASHA with two brackets: stopped trials are truncated at a
rung of their bracket, off the front, and every point is in MLflow once. One local Ray for the
module; the sweeps run in this process, as `mvit-lab sweep` runs them."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mvit_lab.cli import main
from mvit_lab.configfile import safe_load
from mvit_lab.search.moasha import STATE, MOASHAConfig
from mvit_lab.search.pareto import front_table, parse_objectives
from mvit_lab.search.records import sweep_records
from mvit_lab.search.replay import load_replay_table
from mvit_lab.tracking import metric_history, runs_dataframe

ROOT = Path(__file__).parents[2]
TABLE = (ROOT / "benchmarks" / "replay" / "digits_small").resolve()
SPACE = safe_load((ROOT / "search_spaces" / "replay_digits.yaml").read_text())
OBJ = {"val_top1": "max", "gflops": "min", "throughput": "max"}
KNOBS = ("pool_mode", "pool_kernel", "rel_pos", "abs_pos", "depths", "embed_dim")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.shutdown()  # a fresh local instance, whatever ran before in this process
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def table():
    return load_replay_table(TABLE)


def _sweep(tmp_path, capsys, name, **sections):
    """`mvit-lab sweep` of a replay experiment; returns (its output, its child runs, the
    sweep's folder)."""
    tree = dict(name=name, data=dict(dataset="digits", train_fraction=0.25),
                model=dict(preset="mvitv2_t"), train=dict(epochs=9, batch_size=64, threads=1),
                search=copy.deepcopy(SPACE), objectives=dict(OBJ), algorithm="grid",
                budget=dict(seeds=[0], concurrency=2), resources=dict(cpus=0.5),
                scheduler=dict(type="moasha", grace_period=1, reduction_factor=3),
                replay=dict(table=str(TABLE)),
                tracking=dict(uri=f"sqlite:///{tmp_path / 'mlruns.db'}"))
    tree.update(sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(tree))
    capsys.readouterr()
    assert main(["sweep", str(path), "--status-every", "600"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    runs = runs_dataframe(f"sqlite:///{tmp_path / 'mlruns.db'}", name)
    return out, runs[runs["parent_run_id"].notna()], tmp_path / "runs" / "sweeps" / name


def _check(runs, table, sweep_dir, objectives, output):
    """What holds for every MOASHA replay sweep; returns the stopped runs."""
    assert "RUNNING" not in set(runs["status"]) and set(runs["status"]) == {"FINISHED"}
    assert runs["tag.trial_id"].nunique() == len(runs)  # each point once
    assert runs["tag.replay_point"].nunique() == len(runs)
    assert (runs["tag.cost_by"] == f"replay table {TABLE}").all()
    top1 = table.metrics.index("val_top1")
    for _, run in runs.iterrows():  # the table's values at the epoch the run ended
        point, epoch = int(run["tag.replay_point"]), int(run["metric.epoch"])
        assert run["metric.val_top1"] == pytest.approx(table.curves[point, epoch - 1, top1])
        assert run["metric.gflops"] == pytest.approx(table.costs[point]["gflops"])
    stopped = runs[runs["tag.status"] == "stopped"]
    finished = runs[runs["tag.status"] == "finished"]
    assert len(stopped) + len(finished) == len(runs)
    if len(stopped):  # (no stop: MLflow has no stopped_epoch tag at all)
        assert (stopped["tag.truncated"] == "true").all()
        assert (stopped["metric.epoch"] == stopped["tag.stopped_epoch"].astype(float)).all()
    assert (finished["tag.truncated"] == "false").all() and (finished["metric.epoch"] == 9).all()
    front = front_table(sweep_records(runs, objectives), objectives)
    assert front and {r["status"] for r in front} == {"finished"}
    assert not {r["run_id"] for r in front} & set(stopped["run_id"])
    state = json.loads((sweep_dir / STATE).read_text())
    assert set(state["stopped"]) == set(stopped["tag.trial_id"])
    # a line per stopped trial (a later draw of a stopped point says so again)
    assert output.count("stopped early at epoch") >= len(stopped)
    assert "replay: trials answer from the table" in output
    return stopped, state


@pytest.mark.slow
def test_grid_with_moasha(tmp_path, capsys, ray_local, table, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, runs, sweep_dir = _sweep(tmp_path, capsys, "grid")
    assert len(runs) == 16
    stopped, _ = _check(runs, table, sweep_dir, parse_objectives(OBJ), out)
    assert len(stopped) >= 1 and out.count("stopped early at epoch") == len(stopped)
    assert set(stopped["tag.stopped_epoch"].astype(float)) <= {1.0, 3.0}  # rungs 1 and 3
    assert f"costs: from the replay table {TABLE}" in out


def _ladder(table, n=4):
    """``n`` table points as ladder steps (each sets every knob), best epoch-1 top-1 first,
    so that ranked at the epoch-1 rung, each step after the first is below the first."""
    top1 = table.metrics.index("val_top1")
    order = sorted(range(len(table.points)), key=lambda i: -table.curves[i, 0, top1])
    picked = []
    for i in order:  # distinct values: no ties at the rung
        if all(table.curves[i, 0, top1] != table.curves[j, 0, top1] for j in picked):
            picked.append(i)
    return [dict(name=f"step{k}", set={key: table.points[i][key] for key in KNOBS})
            for k, i in enumerate(picked[:n])], picked[:n]


@pytest.mark.slow
@pytest.mark.parametrize("stop_ladder", [False, True])
def test_ladder_steps_are_stopped_only_when_asked(tmp_path, capsys, ray_local, table,
                                                  monkeypatch, stop_ladder):
    monkeypatch.chdir(tmp_path)
    steps, picked = _ladder(table)
    objectives = {"val_top1": "max"}
    out, runs, sweep_dir = _sweep(
        tmp_path, capsys, "ladder", search=dict(base=SPACE["base"], ladder=steps),
        algorithm="ladder", objectives=objectives, budget=dict(seeds=[0], concurrency=1),
        scheduler=dict(type="moasha", grace_period=1, reduction_factor=3,
                       stop_ladder=stop_ladder))
    assert sorted(runs["tag.replay_point"].astype(int)) == sorted(picked)
    stopped, _ = _check(runs, table, sweep_dir, parse_objectives(objectives), out)
    if not stop_ladder:
        assert len(stopped) == 0 and (runs["tag.status"] == "finished").all()
    else:  # one at a time, each step below the first at epoch 1: all but the first stop there
        assert sorted(stopped["tag.ladder_step"].astype(int)) == [1, 2, 3]
        assert set(stopped["tag.stopped_epoch"].astype(float)) == {1.0}


@pytest.mark.slow
def test_random_search_with_two_brackets(tmp_path, capsys, ray_local, table, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {k: {"choice": table.choices()[k]} for k in ("pool_mode", "rel_pos", "abs_pos",
                                                          "embed_dim")}
    scheduler = dict(type="moasha", grace_period=1, reduction_factor=3, brackets=2)
    out, runs, sweep_dir = _sweep(
        tmp_path, capsys, "brackets", algorithm="random", scheduler=scheduler,
        search=dict(base=dict(SPACE["base"], pool_kernel="stride"), params=params),
        budget=dict(samples=16, seeds=[0], concurrency=2))
    stopped, state = _check(runs, table, sweep_dir, parse_objectives(OBJ), out)
    config = MOASHAConfig(grace_period=1, reduction_factor=3, max_t=9, brackets=2)
    assert config.rungs(0) == [1, 3] and config.rungs(1) == [3]
    brackets = state["bracket_of"]
    assert set(brackets) == set(runs["tag.trial_id"])  # every trial was placed in a bracket
    assert set(brackets.values()) == {0, 1}  # both brackets ran (drawn from the trial keys)
    for _, run in stopped.iterrows():  # stopped at a rung of its own bracket
        assert int(float(run["tag.stopped_epoch"])) in config.rungs(brackets[run["tag.trial_id"]])
    assert len(stopped) >= 1


@pytest.mark.slow
def test_ctrl_c_then_resume_replays_each_epoch_once(tmp_path, ray_local, table):
    """A driver of its own (connected to this module's Ray), Ctrl-C'd while trials replay at
    1/20 of their recorded speed, then `--resume`d: ended trials are not run again, and an
    interrupted one goes on after its last replayed epoch."""
    import ray

    tree = dict(name="resumed", data=dict(dataset="digits", train_fraction=0.25),
                model=dict(preset="mvitv2_t"), train=dict(epochs=9, batch_size=64, threads=1),
                search=copy.deepcopy(SPACE), objectives=dict(OBJ), algorithm="grid",
                budget=dict(seeds=[0], concurrency=2), resources=dict(cpus=0.5),
                scheduler=dict(type="moasha", grace_period=1, reduction_factor=3),
                replay=dict(table=str(TABLE), time_scale=0.05), tracking=dict(uri="mlruns.db"))
    path = tmp_path / "resumed.yaml"
    path.write_text(json.dumps(tree))
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "mvit_lab.cli", "sweep", str(path), "--address", address]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"

    def children():
        runs = runs_dataframe(uri, "resumed")
        return runs[runs["parent_run_id"].notna()] if len(runs) else runs

    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, ended = time.time() + 600, None
    while time.time() < deadline and driver.poll() is None:
        try:
            runs = children()
            if len(runs) and (runs["status"] != "RUNNING").sum() >= 2 and (
                    runs["status"] == "RUNNING").any():
                ended = set(runs[runs["status"] != "RUNNING"]["run_id"])
                break
        except Exception:  # the store is being created
            pass
        time.sleep(0.3)
    assert ended is not None, driver.communicate(timeout=5)
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130 and "--resume" in err, err[-3000:]
    interrupted = set(children().query("`tag.status` == 'interrupted'")["run_id"])
    resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    runs = children()
    assert len(runs) == 16 and runs["tag.trial_id"].nunique() == 16
    assert set(runs["tag.status"]) <= {"finished", "stopped"}
    assert ended <= set(runs["run_id"])
    for run_id in interrupted | ended:  # each replayed epoch logged once, resumed or not
        steps = [s for s, _ in metric_history(uri, run_id, "val_top1")]
        assert steps == sorted(set(steps)) and steps[0] == 1, (run_id, steps)
