"""The sweep driver's guards: checks before anything is written, one name per store, and
Ctrl-C turned into a resumable stop.

Ray Tune (2.x) stops a run gracefully on SIGINT, then only logs that it was interrupted and
returns normally. :func:`catch_interrupts` takes SIGINT itself (``TUNE_DISABLE_SIGINT_HANDLER``)
and asks Tune for that same graceful stop through SIGUSR1, which Tune always handles so; the
driver then knows the sweep was interrupted. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mvit_lab.experiment import Experiment

if TYPE_CHECKING:
    from mvit_lab.search.sweep import SweepConfig

__all__ = ["SweepInterrupted", "catch_interrupts"]


def check_local_gpus(sweep: SweepConfig) -> None:
    """A local Ray would have this machine's GPUs: refuse a GPU request before starting it."""
    if sweep.gpus <= 0:
        return
    import torch

    count = torch.cuda.device_count()
    if count < sweep.gpus:
        field = "gpus_per_worker" if sweep.workers.multi else "gpus"
        raise ValueError(f"resources.{field}: {sweep.gpus:g} per trial requested but this "
                         f"machine has {count} CUDA GPUs (give --address of a GPU cluster, or "
                         f"set resources.{field}: 0)")


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was interrupted (Ctrl-C): finished trials are kept, running ones are recorded
    as interrupted, and ``mvit-lab sweep FILE --resume`` continues it."""

    def __init__(self, name: str, parent_run_id: str | None, counts: dict[str, int]) -> None:
        super().__init__(f"sweep {name} interrupted")
        self.name, self.parent_run_id, self.counts = name, parent_run_id, counts


def claim_name(exp: Experiment, sweep: SweepConfig, sweep_dir: Path) -> None:
    """Refuse a new sweep whose name the store already holds: two sweeps of one name in one
    MLflow experiment would pool in ``pareto`` and the dashboard."""
    from mvit_lab.tracking import parent_runs_named, sqlite_path

    db = sqlite_path(sweep.tracking_uri)
    if db is not None and not db.is_file():
        return  # a store that does not exist yet holds nothing (and is not created here)
    for run in parent_runs_named(sweep.tracking_uri, sweep.mlflow_experiment, exp.name):
        where = run.data.tags.get("sweep_dir")
        origin = f"run from {where}" if where else "from an earlier mvit-lab"
        fix = ("its state there is gone; delete that parent run in MLflow to start again"
               if where == str(sweep_dir) else "resume it from that folder")
        raise ValueError(f"name: MLflow experiment {sweep.mlflow_experiment!r} at "
                         f"{sweep.tracking_uri} already holds sweep {exp.name!r} ({origin}, "
                         f"parent run {run.info.run_id}): {fix}, or give this sweep another "
                         "name (name:) or MLflow experiment (tracking.experiment), since two "
                         "sweeps of one name would pool in pareto and the dashboard")


def check_state(state_file: Path, sweep_dir: Path, resume: bool) -> None:
    if resume and not state_file.is_file():
        raise ValueError(f"--resume: no sweep to resume at {sweep_dir}")
    if not resume and state_file.is_file():
        raise ValueError(f"{sweep_dir}: a sweep of this name exists; use --resume to finish it "
                         "or give the experiment another name")


def counts_by_status(runs: Any) -> dict[str, int]:
    """Trials by status (the ``status`` tag) from the runs' frame."""
    if not len(runs) or "tag.status" not in runs:
        return {}
    return {str(k): int(v) for k, v in runs["tag.status"].value_counts().items()}


@contextmanager
def catch_interrupts() -> Iterator[dict[str, bool]]:
    """While inside, the first SIGINT asks Ray Tune for its graceful stop and sets
    ``state["requested"]``; a second raises KeyboardInterrupt. Outside the main thread (where
    signals cannot be caught) it does nothing."""
    state = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if state["requested"] or signal.getsignal(signal.SIGUSR1) is old_usr1:
            raise KeyboardInterrupt  # a second Ctrl-C, or Tune is not running yet
        state["requested"] = True
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own "stop and save the state"

    old_usr1 = signal.getsignal(signal.SIGUSR1)
    old_int = signal.signal(signal.SIGINT, on_sigint)
    old_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGUSR1, old_usr1)
        if old_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = old_env
