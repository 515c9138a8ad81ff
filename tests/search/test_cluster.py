"""A sweep on a two-node Ray cluster started on this machine (ray.cluster_utils)."""

from __future__ import annotations

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search.sweep import run_sweep
from mvit_lab.tracking import runs_dataframe

# cost measurements kept short: these tests check sweeps, not timings
QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


@pytest.mark.slow
def test_sweep_on_a_two_node_cluster(tmp_path, monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.chdir(tmp_path)
    # Cluster exports RAY_ADDRESS itself; monkeypatch restores it (later ray.init calls in
    # this process must not find the torn-down cluster)
    monkeypatch.setenv("RAY_ADDRESS", "")
    monkeypatch.delenv("RAY_ADDRESS")
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1))
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        exp = experiment_from_dict(dict(
            name="cluster", data=dict(dataset="digits"), model=dict(TINY),
            train=dict(epochs=2, batch_size=128, threads=1),
            tracking=dict(uri=str(tmp_path / "mlruns.db")),
            search=dict(grid={"embed_dim": [8, 12, 16, 20]}),
            budget=dict(concurrency=2), resources=dict(cpus=1), measure=QUICK_MEASURE),
            str(tmp_path / "e.yaml"))
        result = run_sweep(exp, address=cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert result["counts"] == {"finished": 4}
    runs = runs_dataframe(result["tracking_uri"], "cluster", parent_run_id=result["parent_run_id"])
    assert len(runs) == 4 and runs["tag.node"].nunique() == 2  # both nodes ran trials


@pytest.mark.slow
def test_a_sweep_without_address_starts_its_own_ray_whatever_ray_start_left(tmp_path):
    """`ray start` (and ray.cluster_utils, in the tests beside this one) leave their address
    in <temp>/ray/ray_current_cluster, where a bare `ray.init()` would join that cluster, or
    die with it. Without --address and RAY_ADDRESS a sweep starts a Ray of its own (as the
    README says), here with the file naming a cluster that is gone."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths stay short
    try:
        (temp / "ray").mkdir()
        (temp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")  # nobody there
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["RAY_TMPDIR"] = str(temp)
        experiment = Path(__file__).parents[2] / "experiments" / "replay_digits_moasha.yaml"
        done = subprocess.run([sys.executable, "-m", "mvit_lab.cli", "sweep", str(experiment)],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # every trial ran (which ones MOASHA stops depends on the order results arrive in)
    ended = re.search(r"trials: (\d+) finished, (\d+) stopped", done.stdout)
    assert ended and sum(map(int, ended.groups())) == 16, done.stdout[-3000:]
