"""Multi-worker trials: the resources section, the concurrency cap, and a real sweep whose
trials each train on 2 gloo workers through Ray Train, killed mid-sweep and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.search.multiworker import (
    AUDIT_ENV,
    DRIVER_CPUS,
    Workers,
    max_concurrent,
    parse_resources,
)
from mvit_lab.search.sweep import parse_sweep
from mvit_lab.tracking import runs_dataframe
from mvit_lab.train.checkpoint import has_checkpoint

QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _tree(tmp_path: Path, name: str, resources: dict, epochs: int = 3) -> dict:
    return dict(name=name, data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=epochs, batch_size=32, threads=1, warmup_epochs=1),
                tracking=dict(uri=str(tmp_path / "mlruns.db")),
                search=dict(grid={"embed_dim": [8, 12]}), budget=dict(concurrency=2),
                resources=resources, measure=QUICK_MEASURE)


# -- the resources section ------------------------------------------------------------------
def test_both_forms_parse_and_the_one_worker_form_is_unchanged():
    assert parse_resources(None) == Workers(1, 1.0, 0.0)
    assert parse_resources({"cpus": 2, "gpus": 0.5}) == Workers(1, 2, 0.5)
    w = parse_resources({"workers": 4, "gpus_per_worker": 1, "cpus_per_worker": 8})
    assert w == Workers(4, 8, 1) and w.multi
    assert w.per_trial() == {"CPU": 32 + DRIVER_CPUS, "GPU": 4}
    assert w.driver_resources() == {"cpu": DRIVER_CPUS, "gpu": 0}  # Train places the workers
    assert Workers(1, 2, 0.5).driver_resources() == {"cpu": 2, "gpu": 0.5}


@pytest.mark.parametrize("tree, message", [
    ({"workers": 2, "cpus": 1}, "resources.cpus: with workers, give cpus_per_worker"),
    ({"gpus": 1, "gpus_per_worker": 1}, "resources.gpus: with gpus_per_worker"),
    ({"workers": 0}, "resources.workers: must be an integer >= 1, got 0"),
    ({"workers": 1.5}, "resources.workers: must be an integer >= 1, got 1.5"),
    ({"workers": 2, "gpus_per_worker": 0.5}, "resources.gpus_per_worker: a worker drives one"),
    ({"workers": 2, "gpus_per_worker": 2}, "resources.gpus_per_worker: a worker drives one"),
    ({"workers": 2, "cpus_per_worker": 0}, "resources.cpus_per_worker: must be a number >="),
    ({"worker": 2}, "resources.worker: unknown key"),
    ([2], "resources: must be a mapping"),
])
def test_bad_resources_are_one_line_naming_the_field(tree, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(
            ")", r"\)").replace(".", r"\.")) as err:
        parse_resources(tree)
    assert "\n" not in str(err.value)


def test_concurrency_is_capped_by_what_the_cluster_can_place():
    four_gpu = Workers(2, 4, 1)
    assert max_concurrent(four_gpu, {"CPU": 64, "GPU": 4}, 8) == 2  # GPUs bind
    assert max_concurrent(four_gpu, {"CPU": 9, "GPU": 8}, 8) == 1  # CPUs bind (2 x 4 + driver)
    assert max_concurrent(four_gpu, {"CPU": 64, "GPU": 8}, 3) == 3  # the budget binds
    assert max_concurrent(Workers(1, 1, 0), {"CPU": 2}, 5) == 2
    with pytest.raises(ValueError, match=r"resources\.gpus_per_worker: a trial needs 2 GPUs "
                                         r"\(2 worker\(s\) x 1\) but the Ray cluster has 1"):
        max_concurrent(four_gpu, {"CPU": 64, "GPU": 1}, 1)
    with pytest.raises(ValueError, match=r"resources\.cpus: a trial needs 4 CPUs"):
        max_concurrent(Workers(1, 4, 0), {"CPU": 2}, 1)


def test_a_sweep_with_pretraining_on_several_workers_is_refused(tmp_path):
    tree = _tree(tmp_path, "mw-mae", {"workers": 2})
    tree["model"]["mask_unit_attn"] = [True, False]
    tree["pretrain"] = dict(epochs=1, decoder_dim=8, decoder_depth=1, decoder_heads=1)
    with pytest.raises(ValueError, match=r"^resources\.workers: MAE pretraining runs on one"):
        parse_sweep(experiment_from_dict(tree, str(tmp_path / "e.yaml")))


def test_the_sweep_carries_the_workers_to_its_trials(tmp_path):
    sweep = parse_sweep(experiment_from_dict(
        _tree(tmp_path, "mw-parse", {"workers": 2, "cpus_per_worker": 0.5}),
        str(tmp_path / "e.yaml")))
    assert sweep.workers == Workers(2, 0.5, 0) and sweep.cpus == 1.0 and sweep.gpus == 0


# -- a real sweep ---------------------------------------------------------------------------
def _children(tmp_path: Path, name: str):
    runs = runs_dataframe(f"sqlite:///{tmp_path / 'mlruns.db'}", name)
    return runs[runs["parent_run_id"].notna()] if len(runs) else runs


def _shards(path: Path) -> tuple[dict[int, set[int]], list[str]]:
    """The indices a rank trained on in each epoch it completed (a run cut short by the kill
    leaves a partial epoch, dropped at the next ``start``); and its final weights digests."""
    epochs, current, weights = {}, set(), []
    for line in path.read_text().split("\n"):
        if line == "start":
            current = set()
        elif line.startswith("epoch "):
            epochs[int(line.split()[1])] = current
            current = set()
        elif line.startswith("weights "):
            weights.append(line.split()[1])
        elif line:
            current.add(int(line))
    return epochs, weights


@pytest.mark.slow
def test_a_two_worker_sweep_killed_and_resumed_trains_every_trial_once(tmp_path):
    """2 trials x 2 gloo workers through ``mvit-lab sweep``. The driver is SIGKILLed (with
    its process group) while the second trial trains, then ``--resume``d. Every trial ends
    FINISHED in exactly one MLflow child run; each epoch, the two ranks of a trial trained on
    disjoint shards that together cover the split; both ranks end with the same weights; and
    each epoch's metrics were logged once, from rank 0 alone (they equal its metrics.json)."""
    audit = tmp_path / "audit"
    audit.mkdir()
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(_tree(tmp_path, "mw", {"workers": 2, "cpus_per_worker": 0.5})))
    cmd = [sys.executable, "-m", "mvit_lab.cli", "sweep", str(path)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONUNBUFFERED="1", **{AUDIT_ENV: str(audit)})
    trials = tmp_path / "runs" / "sweeps" / "mw" / "trials"
    first_done, deadline = None, time.time() + 900
    for _ in range(3):  # on a loaded machine Ray may miss its fixed 30 s node start-up
        driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        while time.time() < deadline and driver.poll() is None:
            # the second trial has written its first checkpoint: kill the driver mid-trial
            done = [d for d in trials.glob("*") if (d / "outcome.json").is_file()]
            live = [d for d in trials.glob("*") if has_checkpoint(d)  # sharded, 2 workers
                    and not (d / "outcome.json").is_file()]
            if done and live:
                first_done = done[0].name
                os.killpg(driver.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        out, err = driver.communicate(timeout=60)
        if first_done or "node timed out during startup" not in err:
            break  # (a sweep refused before Ray started left nothing: start it again)
    assert first_done is not None, (out + err)[-3000:]
    assert driver.returncode == -signal.SIGKILL
    time.sleep(5)  # the killed Ray's processes wind down (they share the driver's fate)
    before = _children(tmp_path, "mw").set_index("tag.trial_id")
    for _ in range(2):  # on a loaded machine Ray may miss its fixed 30 s node start-up
        resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=900)
        if "node timed out during startup" not in resumed.stderr:
            break
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    runs = _children(tmp_path, "mw")
    assert len(runs) == 2 and runs["tag.trial_id"].nunique() == 2
    assert set(runs["status"]) == {"FINISHED"} and set(runs["tag.status"]) == {"finished"}
    assert set(runs["tag.workers"]) == {"2"} and "; 2 workers per trial; " in resumed.stdout
    assert set(runs["tag.cost_scope"]) == {"per device (one worker's model)"}
    by_id = runs.set_index("tag.trial_id")
    # the trial that had finished did not run again
    assert by_id.loc[first_done, "start_time"] == before.loc[first_done, "start_time"]
    for d in (trials / tid for tid in by_id.index):
        outcome = json.loads((d / "outcome.json").read_text())
        assert outcome["status"] == "finished" and outcome["result"]["workers"] == 2
        rank0, weights0 = _shards(audit / f"{d.name}-rank0.txt")
        rank1, weights1 = _shards(audit / f"{d.name}-rank1.txt")
        both = sorted(set(rank0) & set(rank1))
        assert both[-1] == 3 and (d.name != first_done or both == [1, 2, 3])
        for epoch in both:
            a, b = rank0[epoch], rank1[epoch]
            assert not a & b and len(a | b) == 1438
        assert weights0 == weights1 == [outcome["result"]["weights_sha256"]]
        # rank 0's metrics, each epoch logged once: no second rank wrote to the store
        history = json.loads((d / "metrics.json").read_text())
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
        logged = client.get_metric_history(by_id.loc[d.name, "run_id"], "val_top1")
        steps = [m.step for m in logged]
        assert len(steps) == len(set(steps)) and max(steps) == 3
        assert {m.step: m.value for m in logged} == {
            h["epoch"]: h["val_top1"] for h in history if h["epoch"] in steps}
