"""Fault injection: a trial killed with SIGKILL, and a driver interrupted then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search.sweep import run_sweep
from mvit_lab.tracking import runs_dataframe

# cost measurements kept short: these tests check sweeps, not timings
QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _tree(tmp_path, name, epochs, widths):
    return dict(name=name, data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=epochs, batch_size=64, threads=1),
                tracking=dict(uri=str(tmp_path / "mlruns.db")),
                search=dict(grid={"embed_dim": widths}), budget=dict(concurrency=1),
                measure=QUICK_MEASURE)


def _children(tmp_path, name):
    runs = runs_dataframe(f"sqlite:///{tmp_path / 'mlruns.db'}", name)
    return runs[runs["parent_run_id"].notna()] if len(runs) else runs


@pytest.mark.slow
def test_a_sigkilled_trial_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import ray

    monkeypatch.chdir(tmp_path)
    exp = experiment_from_dict(_tree(tmp_path, "sigkill", 6, [8, 12]), str(tmp_path / "e.yaml"))
    killed = []

    def assassin():  # kill the first trial's worker process once it is training
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            try:
                runs = _children(tmp_path, "sigkill")
                live = runs[(runs["status"] == "RUNNING") & runs["metric.val_top1"].notna()] \
                    if "metric.val_top1" in runs else []
                if len(live):
                    pid = int(live.iloc[0]["tag.pid"])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(live.iloc[0]["run_id"])
            except Exception:  # the store is being created; try again
                pass
            time.sleep(0.3)

    ray.shutdown()  # a fresh local instance, whatever ran before in this process
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        watcher = threading.Thread(target=assassin, daemon=True)
        watcher.start()
        result = run_sweep(exp)
        watcher.join(timeout=1)
    finally:
        ray.shutdown()
    assert killed, "the trial finished before it could be killed"
    runs = _children(tmp_path, "sigkill")
    assert len(runs) == 2 and "RUNNING" not in set(runs["status"])
    dead = runs.set_index("run_id").loc[killed[0]]
    assert dead["status"] == "FAILED" and dead["tag.status"] == "failed"
    assert "died" in dead["tag.reason"].lower() or "actor" in dead["tag.reason"].lower()
    assert result["counts"] == {"failed": 1, "finished": 1}
    assert [r["status"] for r in result["front"]] == ["finished"]


@pytest.mark.slow
def test_driver_interrupted_then_resumed_runs_every_trial_once(tmp_path):
    """Ctrl-C in the terminal of a real ``mvit-lab sweep``: one line saying how to continue,
    the running trial recorded as interrupted (not failed), the finished one still finished;
    a second driver is refused while the first runs; ``--resume`` finishes the rest."""
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(_tree(tmp_path, "interrupt", 3, [8, 12, 16])))
    cmd = [sys.executable, "-m", "mvit_lab.cli", "sweep", str(path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    state = tmp_path / "runs" / "sweeps" / "interrupt" / "sweep.json"
    deadline = time.time() + 300
    while time.time() < deadline and not state.is_file():
        time.sleep(0.2)
    # a second driver of the same sweep, started while the first holds it
    second = subprocess.Popen([*cmd, "--resume"], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_done = None
    while time.time() < deadline:  # interrupt once one trial finished and another runs
        try:
            runs = _children(tmp_path, "interrupt") if state.is_file() else []
            if len(runs) and (runs["status"] == "FINISHED").any() and (
                    runs["status"] == "RUNNING").any():
                first_done = runs[runs["status"] == "FINISHED"].iloc[0]
                break
        except Exception:
            pass
        time.sleep(0.3)
    assert first_done is not None, driver.communicate(timeout=5)
    _, refused = second.communicate(timeout=300)
    assert second.returncode == 2 and f"pid {driver.pid}" in refused
    assert "is running this sweep" in refused
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C in the driver's terminal
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"interrupted (1 finished, 1 interrupted); continue with `mvit-lab sweep {path} "
        "--resume`")
    assert "Traceback" not in out + err and "Tuner.restore" not in out + err
    # one line per ended trial; the libraries' output is in the sweep's log, not here
    assert "[1/3] embed_dim=" in out and " val_top1 " in out
    for noise in ("Configuration for experiment", "TensorBoard", "INFO", "Token auth"):
        assert noise not in out + err
    log = (tmp_path / "runs" / "sweeps" / "interrupt" / "sweep.log").read_text()
    assert "Configuration for experiment" in log and "Stop signal received" in log
    runs = _children(tmp_path, "interrupt")
    by_status = runs.set_index("tag.status")
    assert sorted(runs["tag.status"]) == ["finished", "interrupted"]
    assert by_status.loc["interrupted", "status"] == "KILLED"
    assert by_status.loc["finished", "run_id"] == first_done["run_id"]
    resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resumed: 1 of 3 trials had ended" in resumed.stdout
    runs = _children(tmp_path, "interrupt")
    assert len(runs) == 3 and runs["tag.trial_id"].nunique() == 3
    assert set(runs["status"]) == {"FINISHED"} and set(runs["tag.status"]) == {"finished"}
    again = runs.set_index("run_id").loc[first_done["run_id"]]
    assert again["start_time"] == first_done["start_time"]  # the finished trial did not rerun
