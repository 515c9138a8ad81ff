"""One trial: a config in, metrics out. Ray Tune and MLflow stay at the edges.

A trial builds its architecture, counts FLOPs and parameters, rejects a constraint violator
before any training (status ``pruned``), gets its cost on its device (throughput, latency and
peak memory, for inference and a training step: measured in isolation under the node's device
lock and cached, see :mod:`mvit_lab.measure.costs`), trains with per-epoch reports, and returns
its final metrics. Every step lands in the trial's MLflow child run (created idempotently from
a stable trial id, so a resumed sweep never duplicates it).

Exactly one run per point: the trial's folder ``trials/<id>/`` holds a claim lock and, once it
ends, ``outcome.json``. A second draw of the same (point, seed) (Optuna repeats, or a twin
started while the first still trains) waits for the claim and reuses the outcome: it never
trains or logs again. A point that fails validation still gets its child run, FAILED with the
field and the reason. When the tracking store refuses writes mid-trial, training goes on and
the writes go to a journal (:mod:`mvit_lab.search.journal`) that a resumed sweep replays.

A trial that raises (an error, out of memory, a NaN loss) is finished as FAILED with its reason
and the exception propagates, so Ray records the trial as errored and the sweep goes on.

In a replay sweep (``replay:``, see :mod:`mvit_lab.search.replay_backend`) the same trial takes
its costs and its per-epoch metrics from a recorded table instead of counting, measuring and
training; everything else (runs, reports, stops, outcomes) is as above.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mvit_lab.experiment import Experiment, experiment_from_dict
from mvit_lab.search.space import Point, SearchSpace, parse_space, resolve_point

__all__ = ["OUTCOME", "EarlyStopped", "TrialSpec", "TwinFailedError", "run_trial", "trial_id"]

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
    # how costs are measured: batch, dtype, modes, protocol, cache folder, lock timeout
    # (see mvit_lab.search.sweep.parse_measure)
    measure: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Workers fields (mvit_lab.search.multiworker); empty: one worker, in the trial's process
    workers: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the sweep's replay section (mvit_lab.search.replay_backend): answer from a recorded
    # table instead of counting, measuring and training; empty: a real trial
    replay: dict[str, Any] = dataclasses.field(default_factory=dict)


OUTCOME = "outcome.json"  # a trial's final result, written before its run is finished
CLAIM = "claim.lock"


def trial_id(point: Point, seed: int, pretrain: dict[str, Any] | None = None) -> str:
    """A stable id for (point, seed[, pretraining recipe]): the same trial after a restart
    maps to the same runs."""
    fields: dict[str, Any] = dict(model=point.model, train=point.train, seed=seed)
    if point.space is not None:  # the same knobs on another space's base: another model
        fields["space"] = point.space
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


def _point_and_id(spec: TrialSpec) -> tuple[Point, str]:
    point = Point(**spec.point)
    return point, trial_id(point, spec.seed, spec.experiment.get("pretrain"))


def _record_unbuildable(spec: TrialSpec, err: ValueError) -> None:
    """A sampled point that fails validation still gets its child run: FAILED, with the
    field and the reason, so trial counts agree everywhere."""
    from mvit_lab.search.journal import Recorder
    from mvit_lab.tracking import flatten_params

    point, tid = _point_and_id(spec)
    recorder = Recorder(spec.tracking_uri, spec.mlflow_experiment,
                        Path(spec.trials_dir) / tid / "journal.jsonl")
    reason = f"invalid architecture: {err}"
    params = flatten_params(dict(model=point.model, train=point.train, seed=spec.seed))
    tags = dict(trial_id=tid, point=point.name, seed=str(spec.seed), status="failed",
                reason=reason[:1000])
    if point.space is not None:
        tags["design_space"] = point.space
    run_id = recorder.start_child(spec.parent_run_id, f"{point.name} seed={spec.seed}", params,
                                  tags)
    _write_outcome(Path(spec.trials_dir) / tid, dict(status="failed", reason=reason))
    recorder.finish(run_id, "FAILED")


@contextlib.contextmanager
def _claim(out_dir: Path) -> Iterator[dict[str, Any] | None]:
    """Own the trial folder for the block: yields None to run the trial, or the outcome of
    the twin that ran it (waiting for that twin first if it is still running)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / CLAIM, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("trial %s is running in another process: waiting for its outcome",
                     out_dir.name)
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the twin ends (or dies)
        yield _read_outcome(out_dir)
    finally:
        os.close(fd)


def _read_outcome(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / OUTCOME).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_outcome(out_dir: Path, outcome: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{OUTCOME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(outcome, indent=1, default=str) + "\n")
    os.replace(tmp, out_dir / OUTCOME)


class EarlyStopped(BaseException):
    """The scheduler stopped this trial at a rung (``note``: rung, milestone, epoch, place):
    raised by the report callback, recorded as ``stopped`` and ``truncated``, never failed."""

    def __init__(self, note: dict[str, Any]) -> None:
        super().__init__(f"stopped by the scheduler at epoch {note.get('epoch')}")
        self.note = note


class TwinFailedError(RuntimeError):
    """The twin that ran this (point, seed) failed; this draw reports the same failure."""


def run_trial(spec: TrialSpec, report: Report | None = None) -> dict[str, Any]:
    """Run one trial; ``report`` receives each epoch's metrics (and the final ones)."""
    emit = report or (lambda metrics: None)
    point, tid = _point_and_id(spec)
    out_dir = Path(spec.trials_dir) / tid
    with _claim(out_dir) as outcome:
        if outcome is not None:  # a twin ran it: reuse, never train or log twice
            if outcome.get("status") == "failed":
                raise TwinFailedError(f"trial {tid} ({point.name}) failed in an earlier draw: "
                                      f"{outcome.get('reason')}")
            result = dict(outcome.get("result") or {}, twin_of=tid)
            emit(result)
            return result
        try:
            built = _build(spec)
        except ValueError as err:
            _record_unbuildable(spec, err)
            raise
        return _run(spec, built, tid, out_dir, emit)


def _run(spec: TrialSpec, built: tuple[Experiment, Point, SearchSpace], tid: str,
         out_dir: Path, emit: Report) -> dict[str, Any]:
    from mvit_lab.measure import count_flops
    from mvit_lab.search.journal import Recorder, plain_text
    from mvit_lab.tracking import flatten_params
    from mvit_lab.train import train

    started = time.perf_counter()
    exp, point, space = built
    pretrain = exp.to_dict().get("pretrain")
    tracker = Recorder(spec.tracking_uri, spec.mlflow_experiment, out_dir / "journal.jsonl")
    tags = dict(trial_id=tid, point=point.name, seed=str(spec.seed), status="running",
                search_mode=space.mode, pid=str(os.getpid()), node=_node_id(),
                recipe="mae" if pretrain else "scratch")
    if point.step is not None:
        tags["ladder_step"] = str(point.step)
    if point.space is not None:
        tags["design_space"] = point.space
    params = flatten_params(dict(model=exp.model.to_dict(),
                                 train=dataclasses.asdict(exp.train),
                                 data=exp.to_dict()["data"], seed=spec.seed))
    run_id = tracker.start_child(spec.parent_run_id, f"{point.name} seed={spec.seed}", params,
                                 tags)
    tracker.log_dict(run_id, exp.to_dict(), "experiment.json")
    tracker.log_dict(run_id, exp.model.to_dict(), "arch_config.json")

    def finish(status: str, result: dict[str, Any], run_status: str, **extra: str) -> None:
        # the outcome first: whatever happens to the store, the result is on disk
        _write_outcome(out_dir, dict(status=status, result=result, **extra))
        tracker.set_tags(run_id, dict(status=status, **extra))
        tracker.finish(run_id, run_status)

    try:
        from mvit_lab import __version__

        replay = None
        if spec.replay:  # costs and curve from a recorded table: nothing counted or trained
            from mvit_lab.search.replay_backend import ReplayedTrial

            replay = ReplayedTrial(spec.replay, point, space)
        cost = replay.counted if replay else count_flops(exp.model)
        # trial_key: the stable id in every report (Ray replaces trial_id with its own)
        base = dict(gflops=cost.gflops, params=cost.params, trial_id=tid, trial_key=tid)
        if exp.pretrain is not None:  # the MAE encoder's sparse cost, next to the dense one
            ratio = exp.pretrain.ratio_for(exp.data.is_video)
            sparse = count_flops(exp.pretrain.encoder_config(exp.model), mask_ratio=ratio)
            base.update(pretrain_gflops=sparse.gflops, encoder_gflops=cost.encoder_gflops)
        tracker.log_metrics(run_id, {k: v for k, v in base.items()
                                     if k not in ("trial_id", "trial_key")}, step=0)
        broken = space.check_constraints(dict(gflops=cost.gflops, params=cost.params))
        if broken:
            reason = "; ".join(broken)
            result = dict(base, status="pruned", reason=reason,
                          overhead_seconds=time.perf_counter() - started)
            finish("pruned", result, "FINISHED", reason=reason)
            emit(result)
            return result
        import torch

        from mvit_lab.search.multiworker import Workers, measure_on_worker, train_on_workers

        workers = Workers(**spec.workers)
        device = "cuda" if exp.train.device in ("auto", "cuda") and torch.cuda.is_available() \
            else "cpu"
        if workers.multi:  # the workers' device, not this (GPU-less) driver's
            device = "cuda" if workers.gpus_per_worker > 0 else "cpu"
        if exp.train.threads and device == "cpu":  # the threads it trains with, measured
            torch.set_num_threads(exp.train.threads)
        setup = time.perf_counter() - started
        measure_start = time.perf_counter()
        if replay:
            costs, cost_tags, cost_records = replay.costs()
        elif workers.multi:  # one worker's model on one worker's device and resources
            costs, cost_tags, cost_records = measure_on_worker(_measure, workers, spec, exp,
                                                               device)
        else:
            costs, cost_tags, cost_records = _measure(spec, exp, device)
        measure = time.perf_counter() - measure_start
        base.update(costs)
        tracker.set_tags(run_id, dict(cost_tags, device=cost_tags["cost_device"],
                                      cost_by=cost_tags.get("cost_by", "trial"),
                                      mvit_lab_version=__version__,
                                      workers=str(workers.workers),
                                      cost_scope="per device (one worker's model)"))
        tracker.log_metrics(run_id, costs, step=0)
        tracker.log_dict(run_id, cost_records, "cost.json")  # the full records, with the key
        tracking_start = time.perf_counter()

        ladder = {} if point.step is None else dict(ladder_step=point.step)
        last: dict[str, Any] = {}

        def on_epoch(metrics: dict[str, Any]) -> None:
            tracker.log_metrics(run_id, metrics, step=int(metrics["epoch"]))
            last.update(metrics)
            emit(dict(base, **metrics, status="running", **ladder))

        setup += time.perf_counter() - tracking_start
        from mvit_lab.train.checkpoint import has_checkpoint

        resume = has_checkpoint(out_dir)
        train_start = time.perf_counter()

        def on_pretrain_epoch(metrics: dict[str, Any]) -> None:  # MLflow only: Tune's
            # schedulers compare the objective metrics, which pretraining does not have
            tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if k != "epoch"},
                                step=int(metrics["epoch"]))

        from mvit_lab.measure.isolation import device_lock, training

        if replay:  # the table's curve, epoch by epoch (resumes after the last replayed)
            result = replay.train(out_dir, exp.train, on_epoch)
        elif workers.multi:  # Ray Train workers; rank 0's epochs come back to on_epoch
            result = train_on_workers(exp, out_dir, resume=resume, callback=on_epoch,
                                      workers=workers)
        else:
            with training(device_lock(device)):  # each step yields to a co-tenant's measurement
                result = train(exp, out_dir, resume=resume, callback=on_epoch,
                               pretrain_callback=on_pretrain_epoch)
        train_seconds = time.perf_counter() - train_start
        # everything but training and measuring: building, counting, tracking, data loading
        overhead = setup + (train_seconds - result.final.get("train_seconds", train_seconds))
        final = dict(base, **{k: v for k, v in result.final.items()
                              if isinstance(v, (int, float, str))},
                     status="finished", overhead_seconds=overhead, measure_seconds=measure)
        # logged per epoch already: once in the history is enough
        per_epoch = {"pretrain_loss", "pretrain_val_loss", "epoch",
                     *(result.history[-1] if result.history else {})}
        tracker.log_metrics(run_id, {k: v for k, v in final.items() if k not in per_epoch
                                     and isinstance(v, (int, float)) and math.isfinite(v)},
                            step=int(final.get("epochs", 0)))
        tracker.log_dict(run_id, result.data_reports, "data_report.json")
        if tracker.offline:
            final["tracking"] = "journal"
        finish("finished", final, "FINISHED", truncated="false",
               **{k: str(final[k]) for k in ("attention_kernel", "amp_dtype", "checkpoint_format")
                  if k in final})
        emit(final)
        return final
    except BaseException as err:  # recorded, then re-raised for Ray
        reason = plain_text(f"{type(err).__name__}: {err}")
        if isinstance(err, EarlyStopped):  # a rung's loser: truncated, never on a front
            note = {f"stopped_{k}": str(v) for k, v in err.note.items()}
            result = {**base, **last, "status": "stopped", "truncated": True,
                      "stopped_rung": err.note.get("rung")}
            finish("stopped", result, "FINISHED", truncated="true", **note)
            raise
        if isinstance(err, KeyboardInterrupt):  # the sweep stops: resumable, not failed
            tracker.set_tags(run_id, dict(status="interrupted"))
            tracker.finish(run_id, "KILLED")
            raise
        log.warning("trial %s (%s) failed: %s", tid, point.name, reason)
        finish("failed", {}, "FAILED", reason=reason)
        raise


def _measure(spec: TrialSpec, exp: Experiment, device: str
             ) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
    """The architecture's costs on this trial's device (cached; see measure.costs)."""
    from mvit_lab.measure.costs import CostCache, cost_metrics, cost_tags, measure_costs
    from mvit_lab.measure.speed import Protocol

    m = spec.measure
    dtype = m.get("dtype") or "auto"
    if dtype == "auto":  # the dtype the trial trains in
        from mvit_lab.train.efficiency import amp_dtype

        dtype = amp_dtype(exp.train.amp, device)
    records, cached = measure_costs(
        exp.model, device=device, dtype=dtype, batch_size=int(m.get("batch", 32)),
        modes=tuple(m.get("modes", ("infer", "train"))),
        protocol=Protocol(**m.get("protocol", {})),
        cache=CostCache(m.get("cache")), lock_timeout=m.get("lock_timeout", 600.0),
        backend=device == "cuda")
    return (cost_metrics(records), cost_tags(records, cached),
            {mode: dict(r.to_dict(), from_cache=cached[mode]) for mode, r in records.items()})
