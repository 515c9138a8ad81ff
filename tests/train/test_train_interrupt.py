"""``train`` interrupted and resumed: Ctrl-C leaves a checkpoint and one line, and a resume
must continue the recipe it started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.train import train

TINY_MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                  patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
                  mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _terminal_sigint():
    """In the child before exec: SIGINT as in a terminal. A process inherits an ignored SIGINT
    (a background job's, or one left by other code in this test worker) and Python then
    installs no KeyboardInterrupt handler, so the Ctrl-C below would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tree(epochs, **train_kw):
    return dict(name="tiny", data=dict(dataset="digits"), model=dict(TINY_MODEL),
                train={**dict(epochs=epochs, batch_size=256, threads=1), **train_kw})


def test_a_resume_with_another_recipe_is_refused_naming_the_fields(tmp_path):
    train(experiment_from_dict(_tree(1)), tmp_path)
    recorded = (tmp_path / "experiment.json").read_text()
    with pytest.raises(ValueError, match=r"--resume: the recipe differs from the run in .*: "
                                         r"train.epochs 1 -> 3, train.lr 0.001 -> 0.01; "
                                         r"resume with its settings, or start a new run"):
        train(experiment_from_dict(_tree(3, lr=0.01)), tmp_path, resume=True)
    assert (tmp_path / "experiment.json").read_text() == recorded  # not overwritten
    # how it runs may change: threads, data workers, device
    result = train(experiment_from_dict(_tree(1, threads=2)), tmp_path, resume=True)
    assert len(result.history) == 1


@pytest.mark.slow
def test_ctrl_c_during_train_saves_and_says_how_to_continue(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(_tree(200)))
    cmd = [sys.executable, "-m", "mvit_lab.cli", "train", str(path), "--out", "run"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_terminal_sigint)
    metrics = tmp_path / "run" / "metrics.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.2)
    assert metrics.is_file(), proc.communicate(timeout=5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
    out, err = proc.communicate(timeout=120)
    epochs = len(json.loads(metrics.read_text()))
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip().splitlines()[-1] == (
        f"interrupted after epoch {epochs} (checkpoint saved in run); continue with --resume")
    # the resume continues this recipe, not another one
    changed = subprocess.run([*cmd, "--resume", "--set", "train.epochs=9"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=240)
    assert changed.returncode == 2
    assert "train.epochs 200 -> 9" in changed.stderr and "Traceback" not in changed.stderr
