"""Multi-worker trials: one trial trained by N data-parallel workers with Ray Train.

``resources: {workers: 4, gpus_per_worker: 1, cpus_per_worker: 8}`` in a sweep makes each
trial a Ray Train ``TorchTrainer`` (Train V2, the default in Ray 2.60) launched from the Tune
function, as Ray's "Hyperparameter Tuning with Ray Tune" guide for Train V2 does:

- the Tune function (the trial's "driver") claims the trial, opens its MLflow child run,
  measures its costs on one worker's device (a Ray task with one worker's resources), then
  runs ``TorchTrainer.fit`` in a thread and waits for reports;
- every worker runs :func:`mvit_lab.train.train` on its rank (DDP over gloo on CPUs, NCCL on
  GPUs, see :mod:`mvit_lab.train.distributed`); all ranks call ``ray.train.report`` after
  each epoch (Train's barrier), and a ``UserCallback`` on Train's controller forwards rank
  0's report alone to the Tune function, which logs it to MLflow and reports it to Tune. No
  other rank touches MLflow or Tune;
- rank 0 writes the checkpoint (with every rank's random streams) into the trial folder and
  every rank restores from it, so ``--resume`` and ``--retry-failed`` continue a
  multi-worker trial as they do a one-worker one (the trial folder must be on storage every
  node sees, like the rest of the sweep folder);
- a stop (Ctrl-C, a scheduler, a time budget) reaches the workers through a queue that rank 0
  reads after each epoch, once that epoch's checkpoint is written.

Tune does not reserve the workers' resources (Train V2 asks for them when ``fit`` starts), so
:func:`max_concurrent` caps the concurrent trials at what the cluster can place: without the
cap, trial drivers could start beyond the cluster and wait forever for workers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import threading
from pathlib import Path
from typing import Any

from mvit_lab._validate import mapping_section

__all__ = ["DRIVER_CPUS", "Workers", "max_concurrent", "parse_resources", "train_on_workers"]

log = logging.getLogger(__name__)

DRIVER_CPUS = 0.01  # the Tune function of a multi-worker trial: it only waits and logs
_POLL_S = 0.5


@dataclasses.dataclass(frozen=True)
class Workers:
    """A trial's resources: ``workers`` processes, each with its CPUs and GPUs."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    @property
    def multi(self) -> bool:
        return self.workers > 1

    def driver_resources(self) -> dict[str, float]:
        """What Tune reserves for the trial's function: everything for one worker (it trains
        itself), next to nothing for a multi-worker trial (Train places the workers)."""
        if not self.multi:
            return {"cpu": self.cpus_per_worker, "gpu": self.gpus_per_worker}
        return {"cpu": DRIVER_CPUS, "gpu": 0}

    def per_trial(self) -> dict[str, float]:
        """Everything one running trial holds."""
        extra = DRIVER_CPUS if self.multi else 0.0
        return {"CPU": self.workers * self.cpus_per_worker + extra,
                "GPU": self.workers * self.gpus_per_worker}


def _number(name: str, value: Any, minimum: float, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            integer and not isinstance(value, int)) or not math.isfinite(value) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"resources.{name}: must be {kind} >= {minimum}, got {value!r}")
    return value


RESOURCE_KEYS = {"cpus", "gpus", "workers", "cpus_per_worker", "gpus_per_worker"}


def parse_resources(tree: Any) -> Workers:
    """The sweep's ``resources`` section: ``{cpus, gpus}`` (one worker, today's form) or
    ``{workers, cpus_per_worker, gpus_per_worker}``; never both."""
    tree = mapping_section("resources", tree, RESOURCE_KEYS)
    per_worker = {"workers", "cpus_per_worker", "gpus_per_worker"} & set(tree)
    one = {"cpus", "gpus"} & set(tree)
    if per_worker and one:
        raise ValueError(f"resources.{sorted(one)[0]}: with {sorted(per_worker)[0]}, give "
                         "cpus_per_worker / gpus_per_worker (cpus / gpus is the one-worker "
                         "form)")
    if not per_worker:
        return Workers(1, _number("cpus", tree.get("cpus", 1), 0.01),
                       _number("gpus", tree.get("gpus", 0), 0))
    workers = _number("workers", tree.get("workers", 1), 1, integer=True)
    cpus = _number("cpus_per_worker", tree.get("cpus_per_worker", 1), 0.01)
    gpus = _number("gpus_per_worker", tree.get("gpus_per_worker", 0), 0)
    if workers > 1 and gpus not in (0, 1):
        raise ValueError(f"resources.gpus_per_worker: a worker drives one GPU (DDP, one "
                         f"process per device), so 0 or 1 with workers > 1; got {gpus!r} (for "
                         "more GPUs per trial, raise workers)")
    return Workers(workers, cpus, gpus)


def max_concurrent(workers: Workers, cluster: dict[str, float], requested: int) -> int:
    """The concurrent trials the cluster can place at once (at most ``requested``); a
    ValueError naming the resource when not even one trial fits."""
    need = workers.per_trial()
    cap = requested
    for key, field in (("CPU", "cpus_per_worker"), ("GPU", "gpus_per_worker")):
        if need[key] <= 0:
            continue
        have = float(cluster.get(key, 0))
        fits = math.floor(have / need[key] + 1e-9)
        if fits < 1:
            raise ValueError(f"resources.{field if workers.multi else key.lower() + 's'}: a "
                             f"trial needs {need[key]:g} {key}s ({workers.workers} worker(s) x "
                             f"{getattr(workers, field):g}) but the Ray cluster has {have:g} "
                             "(Ray would wait forever)")
        cap = min(cap, fits)
    return cap


# -- the Tune function's side ---------------------------------------------------------------
def measure_on_worker(fn: Any, workers: Workers, *args: Any) -> Any:
    """``fn(*args)`` in a Ray task holding one worker's resources: a multi-worker trial's
    costs are those of one worker's model on one worker's device."""
    import ray

    # "DEFAULT": outside the trial's placement group, which holds only the driver's share
    task = ray.remote(num_cpus=workers.cpus_per_worker, num_gpus=workers.gpus_per_worker,
                      max_retries=0, scheduling_strategy="DEFAULT")(fn)
    return ray.get(task.remote(*args))


def train_on_workers(exp: Any, out_dir: Path, *, resume: bool, callback: Any,
                     workers: Workers) -> Any:
    """Train ``exp`` on ``workers`` Ray Train workers; ``callback`` gets rank 0's epochs in
    this process. Returns rank 0's :class:`~mvit_lab.train.TrainResult`."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig, UserCallback
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.v2._internal.constants import is_v2_enabled
    from ray.util.queue import Queue

    from mvit_lab.train import TrainResult

    if not is_v2_enabled():
        raise ValueError("resources.workers: multi-worker trials need Ray Train V2; unset "
                         "RAY_TRAIN_V2_ENABLED=0")
    reports: Queue = Queue(actor_options={"num_cpus": 0})
    control: Queue = Queue(actor_options={"num_cpus": 0})

    class _RankZero(UserCallback):
        """On Train's controller: rank 0's report, forwarded to the trial's Tune function."""

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                         checkpoint: Any) -> None:
            reports.put(metrics[0])

    use_gpu = workers.gpus_per_worker > 0
    per_worker = {"CPU": workers.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = workers.gpus_per_worker
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=dict(exp=exp, out_dir=str(out_dir), resume=resume, control=control),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers.workers, use_gpu=use_gpu,
                                     resources_per_worker=per_worker),
        run_config=RunConfig(name="train", storage_path=str(Path(out_dir) / "ray_train"),
                             callbacks=[_RankZero()],
                             failure_config=FailureConfig(max_failures=0)))
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as err:  # raised again in the trial's thread
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    final: dict[str, Any] | None = None
    try:
        while True:
            try:
                item = reports.get(timeout=_POLL_S)
            except queue.Empty:
                if not thread.is_alive():
                    break
                continue
            except Exception as err:  # ray.util.queue.Empty is not queue.Empty
                if type(err).__name__ != "Empty":
                    raise
                if not thread.is_alive():
                    break
                continue
            if item.get("kind") == "epoch":
                callback(dict(item["metrics"]))
            elif item.get("kind") == "final":
                final = item
    except BaseException:  # a stop (KeyboardInterrupt) or a failed callback: stop the workers
        control.put("stop")
        thread.join()
        raise
    finally:  # the queues are actors (processes): a reused trial actor must not pile them up
        if not thread.is_alive():
            for q in (reports, control):
                q.shutdown()
    thread.join()
    if "error" in outcome:
        err = outcome["error"]
        raise RuntimeError(f"multi-worker training failed: {type(err).__name__}: {err}") \
            from err
    if final is None:
        raise RuntimeError("multi-worker training ended without rank 0's final report")
    return TrainResult(history=final["history"], final=final["final"],
                       data_reports=final["data_reports"], out_dir=str(out_dir))


# -- each worker's side ---------------------------------------------------------------------
AUDIT_ENV = "MVIT_LAB_SHARD_AUDIT"  # a folder: each rank records what it trained on


class _Audited:
    """The training split, recording each index a rank loads (one line each; ``start`` when
    a run starts, ``epoch N`` after each epoch, ``weights DIGEST`` at the end): the evidence
    that the ranks' shards are disjoint and their weights identical (``MVIT_LAB_SHARD_AUDIT``,
    a debugging aid: it writes one line per sample)."""

    def __init__(self, base: Any, path: Path) -> None:
        self.base, self.path = base, path
        self.report = getattr(base, "report", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        with open(self.path, "a") as f:
            f.write(f"{i}\n")
        return self.base[i]


def _audit_data(exp: Any, folder: str, trial: str, rank: int) -> tuple[Any, Path]:
    from mvit_lab.data import Augment, build_datasets
    from mvit_lab.train._shared import seed_everything

    seed_everything(exp.train.seed)  # as train() would before building them
    data = build_datasets(exp.data, exp.model, exp.train.seed, Augment.of(exp.train))
    path = Path(folder) / f"{trial}-rank{rank}.txt"
    data.train = _Audited(data.train, path)
    return data, path


class StopRequested(KeyboardInterrupt):
    """The trial was stopped (Ctrl-C, a scheduler): every rank ends after the epoch's
    checkpoint, so the trial resumes from it."""


def _worker_loop(config: dict[str, Any]) -> None:
    """One rank of a multi-worker trial (runs in a Ray Train worker)."""
    import ray.train
    import torch

    from mvit_lab.measure.isolation import device_lock, training
    from mvit_lab.train import train

    exp = config["exp"]
    rank = ray.train.get_context().get_world_rank()
    if torch.cuda.is_available() and torch.distributed.get_backend() == "nccl":
        from ray.train.torch import get_device

        device = get_device()
        exp = dataclasses.replace(exp, train=dataclasses.replace(exp.train, device=str(device)))
    else:
        device = torch.device("cpu")
        exp = dataclasses.replace(exp, train=dataclasses.replace(exp.train, device="cpu"))
    control = config["control"]
    data, audit = None, None
    if os.environ.get(AUDIT_ENV):
        data, audit = _audit_data(exp, os.environ[AUDIT_ENV], Path(config["out_dir"]).name,
                                  rank)
        with open(audit, "a") as f:  # a resumed run: what a killed one left is partial
            f.write("start\n")

    def on_epoch(metrics: dict[str, Any]) -> None:
        if audit is not None:
            with open(audit, "a") as f:
                f.write(f"epoch {metrics['epoch']}\n")
        ray.train.report(dict(kind="epoch", metrics=metrics))
        stop = [rank == 0 and control.qsize() > 0]
        torch.distributed.broadcast_object_list(stop, src=0)
        if stop[0]:
            raise StopRequested(f"stopped after epoch {metrics['epoch']}")

    # rank 0 alone takes the node's device lock for its steps: a rank waiting for a
    # measurement while holding the lock's shared side inside a collective would deadlock
    lock = device_lock(device) if rank == 0 else None
    with training(lock):
        result = train(exp, config["out_dir"], resume=config["resume"], callback=on_epoch,
                       datasets=data)
    if audit is not None:
        with open(audit, "a") as f:
            f.write(f"weights {result.final.get('weights_sha256')}\n")
    ray.train.report(dict(kind="final", history=result.history, final=result.final,
                          data_reports=result.data_reports))
