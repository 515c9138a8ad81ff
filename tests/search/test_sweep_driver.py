"""The sweep driver's guards, without starting Ray: one driver per sweep (a lock that dies
with its holder), one sweep name per store, a GPU request checked before anything is written,
and objectives checked against what trials report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from mvit_lab.cli import main
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search._lock import SweepLock
from mvit_lab.search.sweep import run_sweep

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _tree(tmp_path, **sections):
    return dict(name="guarded", data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=1), tracking=dict(uri=str(tmp_path / "mlruns.db")),
                search=dict(grid={"embed_dim": [8, 16]}), **sections)


@pytest.fixture
def no_ray(monkeypatch):
    """Ray must not start: every refusal here comes before it."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


def _holder(path):
    """A driver in another process holding the lock file as SweepLock does."""
    code = ("import fcntl, json, os, socket, sys, time; "
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
            "os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(), "
            "started='now')).encode()); print('held', flush=True); time.sleep(120)")
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_driver_is_refused_naming_the_first(tmp_path, monkeypatch, no_ray):
    monkeypatch.chdir(tmp_path)
    sweep_dir = tmp_path / "runs" / "sweeps" / "guarded"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(dict(parent_run_id="x", name="guarded")))
    driver = _holder(sweep_dir / "driver.lock")
    try:
        exp = experiment_from_dict(_tree(tmp_path), str(tmp_path / "e.yaml"))
        with pytest.raises(ValueError, match=rf"the driver with pid {driver.pid} on "
                                             rf"{socket.gethostname()} .* is running this "
                                             "sweep; wait for it"):
            run_sweep(exp, resume=True)
        with pytest.raises(ValueError, match="is running this sweep"):
            run_sweep(exp)  # a fresh start is refused by the lock too, not only by --resume
    finally:
        driver.kill()
        driver.wait()


def test_a_lock_dies_with_its_driver_and_is_taken_over(tmp_path, caplog):
    path = tmp_path / "sweep" / "driver.lock"
    driver = _holder(path)
    with pytest.raises(ValueError, match=f"pid {driver.pid}"):
        SweepLock(path.parent).acquire()
    driver.send_signal(signal.SIGKILL)  # a crashed driver: the kernel drops its flock
    driver.wait()
    lock = SweepLock(path.parent).acquire()
    try:
        assert lock.stale["pid"] == driver.pid  # detected as stale, and said so
        assert "ended without releasing it" in caplog.text
        assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert path.read_text() == ""  # a clean release leaves nothing to call stale
    again = SweepLock(path.parent).acquire()
    assert again.stale is None
    again.release()


def test_a_gpu_request_on_a_machine_without_gpus_leaves_nothing(tmp_path, monkeypatch, no_ray):
    monkeypatch.chdir(tmp_path)
    exp = experiment_from_dict(_tree(tmp_path, resources=dict(gpus=64)), str(tmp_path / "e.yaml"))
    with pytest.raises(ValueError, match=r"resources.gpus: 64 per trial requested but this "
                                         r"machine has \d+ CUDA GPUs"):
        run_sweep(exp)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlruns.db").exists()


def test_the_same_sweep_name_from_another_folder_is_refused(tmp_path, monkeypatch, no_ray):
    """Two folders running one sweep name into one store would log every architecture twice,
    and pareto would pool both: the second is refused before anything starts."""
    from mvit_lab.tracking import Tracker, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    ensure_experiment("guarded", uri)
    first = Tracker(uri, "guarded").start_parent("guarded", {}, dict(
        sweep_dir="/lab/alice/runs/sweeps/guarded"))
    monkeypatch.chdir(tmp_path)
    exp = experiment_from_dict(_tree(tmp_path), str(tmp_path / "e.yaml"))
    with pytest.raises(ValueError, match=rf"^name: MLflow experiment 'guarded' at .* already "
                                         rf"holds sweep 'guarded' \(run from /lab/alice/runs/"
                                         rf"sweeps/guarded, parent run {first}\): resume it "
                                         "from that folder, or give this sweep another name"):
        run_sweep(exp)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("objectives", "message"), [
    (["val_top2:max"], r"--objectives: no trial reports 'val_top2' \(did you mean val_top"),
    (["val_top1_shuffled:max"], "reported only by experiments with a video dataset"),
])
def test_pareto_objectives_are_checked_against_the_trial_metrics(tmp_path, capsys, objectives,
                                                                 message):
    path = tmp_path / "e.yaml"
    path.write_text(json.dumps(_tree(tmp_path)))
    assert main(["pareto", str(path), "--objectives", *objectives]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mvit-lab: error: ")
    assert __import__("re").search(message, err)
    assert not (tmp_path / "mlruns.db").exists()  # checked before the store is opened
