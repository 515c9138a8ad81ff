"""A real MOASHA sweep through the CLI on the bundled digits: trials stopped at the rung,
recorded stopped and truncated (each exactly once in MLflow), none on the front, told to
Optuna as PRUNED; interrupted with Ctrl-C mid-sweep and resumed."""

from __future__ import annotations

import glob
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

from mvit_lab.search.pareto import front_table, parse_objectives
from mvit_lab.search.records import sweep_records
from mvit_lab.tracking import runs_dataframe

QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)
OBJ = {"val_top1": "max", "gflops": "min"}


def _children(tmp_path):
    runs = runs_dataframe(f"sqlite:///{tmp_path / 'mlruns.db'}", "moasha")
    return runs[runs["parent_run_id"].notna()] if len(runs) else runs


@pytest.mark.slow
def test_moasha_sweep_through_the_cli(tmp_path):
    tree = dict(name="moasha", data=dict(dataset="digits", train_fraction=0.25),
                model=dict(TINY), train=dict(epochs=3, batch_size=64, threads=1),
                tracking=dict(uri=str(tmp_path / "mlruns.db")),
                search=dict(params={"embed_dim": {"choice": [8, 12, 16]},
                                    "train.lr": {"choice": [0.003, 0.0003, 0.00003]}}),
                objectives=OBJ, algorithm="random", budget=dict(samples=8, concurrency=2),
                scheduler=dict(type="moasha", grace_period=1, reduction_factor=3),
                measure=QUICK_MEASURE)
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(tree))
    cmd = [sys.executable, "-m", "mvit_lab.cli", "sweep", str(path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 900
    state = tmp_path / "runs" / "sweeps" / "moasha" / "sweep.json"
    while time.time() < deadline and not state.is_file() and driver.poll() is None:
        time.sleep(0.2)
    ended = None
    while time.time() < deadline and driver.poll() is None:  # Ctrl-C once 2 trials ended
        try:
            runs = _children(tmp_path)
            if len(runs) and (runs["status"] != "RUNNING").sum() >= 2 and (
                    runs["status"] == "RUNNING").any():
                ended = set(runs[runs["status"] != "RUNNING"]["run_id"])
                break
        except Exception:  # the store is being created
            pass
        time.sleep(0.5)
    assert ended is not None, driver.communicate(timeout=5)
    os.killpg(driver.pid, signal.SIGINT)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-3000:]
    sweep_dir = tmp_path / "runs" / "sweeps" / "moasha"
    assert (sweep_dir / "moasha.json").is_file()  # the rungs, for the resumed driver
    resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    output = out + resumed.stdout

    runs = _children(tmp_path)
    assert "RUNNING" not in set(runs["status"])
    # every trial once: one run per stable trial id, and the draws repeat points
    assert runs["tag.trial_id"].nunique() == len(runs)
    stopped = runs[runs["tag.status"] == "stopped"]
    assert len(stopped) >= 1, output
    assert set(stopped["status"]) == {"FINISHED"} and set(stopped["tag.truncated"]) == {"true"}
    assert set(stopped["tag.stopped_rung"].astype(float)) == {0.0}  # the only rung: epoch 1
    # ranked at its first report at or past the rung: epoch 1, or a later one for a trial
    # whose epoch-1 report the interrupted driver never ranked; never trained past that report
    epochs = stopped["tag.stopped_epoch"].astype(float)
    assert ((epochs >= 1) & (epochs < 3)).all()
    assert (stopped["metric.epoch"].astype(float) == epochs).all()
    assert "stopped early at epoch" in output and "(truncated)" in output
    finished = runs[runs["tag.status"] == "finished"]
    assert len(finished) >= 1 and (finished["tag.truncated"] == "false").all()
    # the front holds finished trials only
    records = sweep_records(runs, parse_objectives(OBJ))
    front = front_table(records, parse_objectives(OBJ))
    assert front and {r["status"] for r in front} == {"finished"}
    assert not {r["run_id"] for r in front} & set(stopped["run_id"])
    # Optuna was told PRUNED for stopped trials. Ray saves the searcher's state with its
    # periodic experiment checkpoints, not after the last trial, so the newest saved study
    # may predate the end (one run held 5 trials: COMPLETE, PRUNED, COMPLETE, RUNNING x2)
    states = glob.glob(str(sweep_dir / "tune" / "searcher-state-*.pkl"))
    with open(max(states, key=os.path.getmtime), "rb") as f:
        study = pickle.load(f)["_ot_study"]
    told = [t.state.name for t in study.trials]
    # a repeat draw of a point reuses its outcome, so Optuna may hold more trials than MLflow
    # has runs; but never more COMPLETE than the draws whose point was not stopped
    assert "PRUNED" in told and told.count("COMPLETE") <= tree["budget"]["samples"] - len(stopped)
    # the runs ended before the interruption were not rerun
    assert ended <= set(runs["run_id"])
