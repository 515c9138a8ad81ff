"""One trial: a config in, metrics out. Ray Tune and MLflow stay at the edges.

A trial builds its architecture, counts FLOPs and parameters, rejects a constraint violator
before any training (status ``pruned``), measures throughput on its device, trains with
per-epoch reports, and returns its final metrics. Every step lands in the trial's MLflow child
run (created idempotently from a stable trial id, so a resumed sweep never duplicates it). A
trial that raises (an error, out of memory, a NaN loss) is finished as FAILED with its reason
and the exception propagates, so Ray records the trial as errored and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mvit_lab.experiment import Experiment, experiment_from_dict
from mvit_lab.search.space import Point, SearchSpace, parse_space, resolve_point

__all__ = ["TrialSpec", "run_trial", "trial_id"]

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs, as plain JSON-able data (it crosses to Ray workers)."""

    experiment: dict[str, Any]  # the experiment tree (data / model / train), resolved
    space: dict[str, Any]  # the search space tree
    point: dict[str, Any]  # Point fields
    seed: int
    tracking_uri: str
    mlflow_experiment: str
    parent_run_id: str
    trials_dir: str  # where each trial keeps its checkpoint folder
    throughput_batch: int = 8


def trial_id(point: Point, seed: int, pretrain: dict[str, Any] | None = None) -> str:
    """A stable id for (point, seed[, pretraining recipe]): the same trial after a restart
    maps to the same runs."""
    fields: dict[str, Any] = dict(model=point.model, train=point.train, seed=seed)
    if pretrain is not None:
        fields["pretrain"] = pretrain
    key = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _node_id() -> str:
    """The Ray node a trial runs on (the host name outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # no Ray context: a plain process
        pass
    import socket

    return socket.gethostname()


def _build(spec: TrialSpec) -> tuple[Experiment, Point, SearchSpace]:
    space = parse_space(spec.space)
    point = Point(**spec.point)
    exp = experiment_from_dict(spec.experiment, check_model=False)
    model = resolve_point(space, exp.model, point)
    if exp.pretrain is not None:
        exp.pretrain.check(model, exp.data.is_video)
    train = dataclasses.replace(exp.train, seed=spec.seed, **point.train)
    return dataclasses.replace(exp, model=model, train=train), point, space


def run_trial(spec: TrialSpec, report: Report | None = None) -> dict[str, Any]:
    """Run one trial; ``report`` receives each epoch's metrics (and the final ones)."""
    from mvit_lab.measure import count_flops, measure_throughput
    from mvit_lab.tracking import Tracker, flatten_params
    from mvit_lab.train import train

    started = time.perf_counter()
    exp, point, space = _build(spec)
    pretrain = exp.to_dict().get("pretrain")
    tid = trial_id(point, spec.seed, pretrain)
    tracker = Tracker(spec.tracking_uri, spec.mlflow_experiment)
    tags = dict(trial_id=tid, point=point.name, seed=str(spec.seed), status="running",
                search_mode=space.mode, pid=str(os.getpid()), node=_node_id(),
                recipe="mae" if pretrain else "scratch")
    if point.step is not None:
        tags["ladder_step"] = str(point.step)
    params = flatten_params(dict(model=exp.model.to_dict(),
                                 train=dataclasses.asdict(exp.train),
                                 data=exp.to_dict()["data"], seed=spec.seed))
    run_id = tracker.start_child(spec.parent_run_id, f"{point.name} seed={spec.seed}", params,
                                 tags)
    tracker.log_dict(run_id, exp.to_dict(), "experiment.json")
    tracker.log_dict(run_id, exp.model.to_dict(), "arch_config.json")
    emit = report or (lambda metrics: None)
    try:
        from mvit_lab import __version__
        from mvit_lab.measure._devices import device_name

        cost = count_flops(exp.model)
        base = dict(gflops=cost.gflops, params=cost.params, trial_id=tid)
        if exp.pretrain is not None:  # the MAE encoder's sparse cost, next to the dense one
            ratio = exp.pretrain.ratio_for(exp.data.is_video)
            sparse = count_flops(exp.pretrain.encoder_config(exp.model), mask_ratio=ratio)
            base.update(pretrain_gflops=sparse.gflops, encoder_gflops=cost.encoder_gflops)
        tracker.log_metrics(run_id, {k: v for k, v in base.items() if k != "trial_id"}, step=0)
        broken = space.check_constraints(dict(gflops=cost.gflops, params=cost.params))
        if broken:
            reason = "; ".join(broken)
            tracker.set_tags(run_id, dict(status="pruned", reason=reason))
            tracker.finish(run_id, "FINISHED")
            result = dict(base, status="pruned", reason=reason,
                          overhead_seconds=time.perf_counter() - started)
            emit(result)
            return result
        import torch

        device = "cuda" if exp.train.device in ("auto", "cuda") and torch.cuda.is_available() \
            else "cpu"
        dtype = "bfloat16" if device == "cuda" and exp.train.amp == "bfloat16" else "float32"
        from mvit_lab.build import build_model

        setup = time.perf_counter() - started
        measure_start = time.perf_counter()
        speed = measure_throughput(build_model(exp.model), batch_size=spec.throughput_batch,
                                   device=device, dtype=dtype, warmup=1, iters=2, repeats=2)
        measure = time.perf_counter() - measure_start
        base.update(throughput=speed.items_per_s, latency_ms=speed.latency_ms)
        tracker.set_tags(run_id, dict(device=speed.device_name, mvit_lab_version=__version__,
                                      host_device=device_name(torch.device(device))))
        tracker.log_metrics(run_id, dict(throughput=speed.items_per_s,
                                         latency_ms=speed.latency_ms), step=0)
        tracking_start = time.perf_counter()

        def on_epoch(metrics: dict[str, Any]) -> None:
            tracker.log_metrics(run_id, {k: v for k, v in metrics.items()
                                         if isinstance(v, (int, float))},
                                step=int(metrics["epoch"]))
            emit(dict(base, **metrics, status="running"))

        setup += time.perf_counter() - tracking_start
        out_dir = Path(spec.trials_dir) / tid
        resume = (out_dir / "checkpoint.pt").is_file()
        train_start = time.perf_counter()
        def on_pretrain_epoch(metrics: dict[str, Any]) -> None:  # MLflow only: Tune's
            # schedulers compare the objective metrics, which pretraining does not have
            tracker.log_metrics(run_id, {k: v for k, v in metrics.items()
                                         if k != "epoch" and isinstance(v, (int, float))},
                                step=int(metrics["epoch"]))

        result = train(exp, out_dir, resume=resume, callback=on_epoch,
                       pretrain_callback=on_pretrain_epoch)
        train_seconds = time.perf_counter() - train_start
        # everything but training and measuring: building, counting, tracking, data loading
        overhead = setup + (train_seconds - result.final.get("train_seconds", train_seconds))
        final = dict(base, **{k: v for k, v in result.final.items()
                              if isinstance(v, (int, float, str))},
                     status="finished", overhead_seconds=overhead, measure_seconds=measure)
        per_epoch = {"pretrain_loss", "pretrain_val_loss"}  # logged per pretraining epoch
        tracker.log_metrics(run_id, {k: v for k, v in final.items() if k not in per_epoch
                                     and isinstance(v, (int, float)) and math.isfinite(v)},
                            step=int(final.get("epochs", 0)))
        tracker.log_dict(run_id, result.data_reports, "data_report.json")
        tracker.set_tags(run_id, dict(status="finished", truncated="false"))
        tracker.finish(run_id, "FINISHED")
        emit(final)
        return final
    except BaseException as err:  # recorded, then re-raised for Ray
        reason = f"{type(err).__name__}: {err}"[:1000]
        if isinstance(err, KeyboardInterrupt):  # the sweep stops: resumable, not failed
            tracker.set_tags(run_id, dict(status="interrupted"))
            tracker.finish(run_id, "KILLED")
            raise
        log.warning("trial %s (%s) failed: %s", tid, point.name, reason)
        tracker.set_tags(run_id, dict(status="failed", reason=reason))
        tracker.finish(run_id, "FAILED")
        raise
