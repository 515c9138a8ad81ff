"""A sweep that talks: the Ray Tune callback's lines, and the libraries kept out of the
terminal (tested with stand-in trials; the real CLI run is in test_faults.py)."""

from __future__ import annotations

import logging
import pickle
import sys
from dataclasses import dataclass, field
from typing import Any

from mvit_lab.search.progress import (
    NOISY_LOGGERS,
    LibraryLog,
    SweepProgress,
    _ToLibraryLog,
    format_duration,
    quiet_libraries,
)


@dataclass
class FakeTrial:  # the attributes of ray.tune.experiment.Trial the callback reads
    trial_id: str
    config: dict[str, Any]
    status: str = "RUNNING"
    last_result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def get_error(self):
        return RuntimeError(self.error) if self.error else None


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _progress(total=4, every_s=60.0):
    lines, clock = [], Clock()
    names = ["pool_mode=max", "pool_mode=avg", "pool_mode=conv", "pool_mode=none"]
    progress = SweepProgress(total, lambda config: names[config["point_index"]],
                             ("val_top1", "gflops", "throughput"), lines.append,
                             every_s=every_s, clock=clock)
    return progress, lines, clock


def test_one_line_per_ended_trial():
    progress, lines, _ = _progress()
    trials = [FakeTrial(f"t{i}", dict(point_index=i)) for i in range(4)]
    progress.on_step_begin(0, trials)
    done = trials[0]
    done.status, done.last_result = "TERMINATED", dict(
        status="finished", val_top1=97.8123, gflops=0.0011234, throughput=2100.4,
        time_total_s=12.2)
    progress.on_trial_complete(1, trials, done)
    pruned = trials[1]
    pruned.status, pruned.last_result = "TERMINATED", dict(
        status="pruned", reason="params 3.1e+05 > max 2e+05", time_total_s=0.6)
    progress.on_trial_complete(2, trials, pruned)
    failed = trials[2]
    failed.status, failed.error = "ERROR", (
        "Traceback (most recent call last):\n  File ...\nFloatingPointError: loss is nan at "
        "epoch 1, step 0")
    failed.last_result = dict(time_total_s=3.0)
    progress.on_trial_error(3, trials, failed)
    progress.on_trial_error(4, trials, failed)  # told twice: printed once
    assert lines == [
        "[1/4] pool_mode=max val_top1 97.8 gflops 0.0011 throughput 2100 (12 s)",
        "[2/4] pool_mode=avg pruned: params 3.1e+05 > max 2e+05 (1 s)",
        "[3/4] pool_mode=conv failed: FloatingPointError: loss is nan at epoch 1, step 0 (3 s)",
    ]


def test_a_periodic_status_line_with_the_time_left():
    progress, lines, clock = _progress(every_s=60)
    trials = [FakeTrial(f"t{i}", dict(point_index=i)) for i in range(4)]
    progress.on_step_begin(0, trials)
    clock.now = 30
    progress.on_step_end(1, trials)
    assert lines == []  # not yet a minute
    trials[0].status, trials[0].last_result = "TERMINATED", dict(status="finished")
    progress.on_trial_complete(2, trials, trials[0])
    clock.now = 61
    progress.on_step_end(3, trials)
    # 1 trial ended in 61 s; 3 left (1 running, 2 pending) at that pace: ~3 min 03 s
    assert lines[-1] == ("status: 3 running, 1 finished, 0 failed, 0 pruned, 0 pending; "
                         "1 min 01 s elapsed, ~3 min 03 s left")
    progress.on_step_end(4, trials)
    assert len(lines) == 2  # one status line per period


def test_a_resumed_sweep_counts_what_had_ended():
    progress, lines, _ = _progress()
    trials = [FakeTrial("t0", dict(point_index=0), "TERMINATED", dict(status="finished")),
              FakeTrial("t1", dict(point_index=1), "ERROR"),
              FakeTrial("t2", dict(point_index=2), "PENDING")]
    progress.on_step_begin(0, trials)
    assert lines == ["resumed: 2 of 4 trials had ended; running the rest"]
    trials[2].status, trials[2].last_result = "TERMINATED", dict(status="finished")
    progress.on_trial_complete(1, trials, trials[2])
    assert lines[-1].startswith("[3/4] pool_mode=conv")
    assert "1 failed" in progress.status_line(trials) and "2 finished" in \
        progress.status_line(trials)


def test_the_callback_pickles_without_the_terminal():
    """Tune pickles its RunConfig (callbacks included) into the sweep folder."""
    progress, lines, _ = _progress()
    copy = pickle.loads(pickle.dumps(progress))
    copy.write("nothing happens")
    assert copy.total == 4 and lines == []


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (4.2, 75, 1500, 7384)] == [
        "4 s", "1 min 15 s", "25 min", "2 h 03 min"]


def test_library_output_goes_to_the_sweep_log_not_the_terminal(tmp_path, capsys):
    sink = LibraryLog()
    with quiet_libraries(sink):
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database")
        print("╭── Configuration for experiment ──╮")  # Ray Tune prints its box
        logging.getLogger("optuna").warning("A new study created in memory")
        sink.open(tmp_path / "sweep.log")  # the folder exists once everything is checked
        print("To visualize your results with TensorBoard")
        logging.getLogger("ray.tune").warning("Stop signal received")
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    text = (tmp_path / "sweep.log").read_text()
    for line in ("Creating initial MLflow database", "Configuration for experiment",
                 "A new study created", "TensorBoard", "Stop signal received"):
        assert line in text
    for name in NOISY_LOGGERS:  # everything restored
        assert not any(isinstance(h, _ToLibraryLog) for h in logging.getLogger(name).handlers)
    assert sys.stdout is not sink and sys.stderr is not sink
    sink.close()


def test_verbose_keeps_the_terminal(tmp_path, capsys):
    sink = LibraryLog()
    with quiet_libraries(sink, verbose=True):
        print("Configuration for experiment")
    assert "Configuration for experiment" in capsys.readouterr().out
