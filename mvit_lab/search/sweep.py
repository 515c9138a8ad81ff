"""Sweeps: an experiment's search space run as Ray Tune trials, every trial in MLflow.

The experiment file gains sweep sections, all checked before anything starts::

    search: ../search_spaces/quickstart.yaml   # a path (relative to this file) or a mapping
    objectives: {val_top1: max, gflops: min, throughput: max}
    algorithm: nsga2          # grid | ladder | tpe | nsga2 | random (default from the space)
    budget: {samples: 16, seeds: 1, concurrency: 2}
    resources: {cpus: 1, gpus: 0}   # or {workers: 2, cpus_per_worker: 4, gpus_per_worker: 1}
    scheduler: none           # none | asha (single objective only) | moasha (any number:
                              # {type: moasha, grace_period, reduction_factor, max_t, brackets},
                              # see mvit_lab.search.moasha)
    tracking: {uri: null, experiment: null}   # default: ./mlruns.db, the experiment's name
    measure: {batch: 32, dtype: auto, modes: [infer, train], protocol: {target_spread: 0.03},
              cache: null}        # costs: measured in isolation, cached (see measure.costs)
    replay: {table: ../benchmarks/replay/digits_small, time_scale: 0}   # optional: trials
              # answer from a recorded table instead of training (see search.replay_backend)

Ray Tune traps handled here (Ray 2.60 / Optuna 5): ``TuneConfig(metric, mode)`` is never set,
because it silently turns the search single-objective; ASHA early stopping is refused for
multi-objective fronts; a trial that was pruned, failed or stopped early is told to Optuna as
PRUNED or FAIL, never as a COMPLETE trial with truncated values. The MLflow experiment and the
sweep's parent run are created on the driver before any trial starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvit_lab._validate import mapping_section
from mvit_lab.config import ArchConfig
from mvit_lab.configfile import safe_load
from mvit_lab.experiment import Experiment
from mvit_lab.search._driver import (
    SweepInterrupted,
    catch_interrupts,
    check_local_gpus,
    check_state,
    claim_name,
    counts_by_status,
)
from mvit_lab.search._space_check import REFUSE_FRACTION, check_params_space
from mvit_lab.search.metrics import check_metric_names
from mvit_lab.search.multiworker import Workers, max_concurrent, parse_resources
from mvit_lab.search.pareto import Objective, front_table, parse_objectives
from mvit_lab.search.records import COST_METRICS, SPACE_ARTIFACT, sweep_records
from mvit_lab.search.space import (
    Point,
    SearchSpace,
    parse_space,
    resolve_point,
    validate_points,
)
from mvit_lab.search.trial import EarlyStopped, TrialSpec, run_trial, trial_id

__all__ = ["SweepConfig", "SweepInterrupted", "parse_sweep", "run_sweep"]

log = logging.getLogger(__name__)

ALGORITHMS = ("grid", "ladder", "tpe", "nsga2", "random", "design_spaces")
DESIGN_POINTS = "design_points.json"  # a design_spaces sweep's sampled points (folder, parent)


@dataclass(frozen=True)
class SweepConfig:
    space: SearchSpace
    space_tree: dict[str, Any]
    objectives: tuple[Objective, ...]
    algorithm: str
    samples: int
    seeds: tuple[int, ...]
    concurrency: int
    time_s: float | None
    cpus: float  # per trial, all its workers together
    gpus: float
    scheduler: str
    tracking_uri: str
    mlflow_experiment: str
    measure: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # one line each, for the user (e.g. unbuildable draws)
    workers: Workers = dataclasses.field(default_factory=Workers)  # multi-worker: Ray Train
    sampling_seed: int = 0  # design_spaces: seeds the populations' draws
    points: tuple[Point, ...] = ()  # design_spaces: the sampled points (see sample_points)

    @property
    def total(self) -> int:
        """How many trials the sweep runs."""
        if self.space.mode == "params":
            return self.samples
        if self.space.mode == "design_spaces":
            return self.samples * len(self.space.spaces) * len(self.seeds)
        return len(self.space.points()) * len(self.seeds)
    moasha: Any = None  # the MOASHAConfig when scheduler is moasha
    replay: dict[str, Any] | None = None  # the checked replay section (table, time_scale)


def _section(tree: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    return mapping_section(name, tree.get(name) or None, known)


def _number(name: str, value: Any, minimum: float, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            integer and not isinstance(value, int)) or not math.isfinite(value) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}: must be {kind} >= {minimum}, got {value!r}")
    return value


def parse_sweep(exp: Experiment) -> SweepConfig:
    """The sweep sections of ``exp``, validated, with every grid point / ladder step built."""
    from mvit_lab.tracking import resolve_tracking_uri

    extra = exp.extra
    if "search" not in extra:
        raise ValueError("search: a sweep needs a search space (a file path or a mapping)")
    space_tree = extra["search"]
    if isinstance(space_tree, str):
        path = Path(space_tree)
        if not path.is_absolute() and exp.path:
            path = Path(exp.path).parent / path
        if not path.is_file():
            raise ValueError(f"search: no such search space file {path}")
        space_tree = safe_load(path.read_text())
    space = parse_space(space_tree)
    check = None
    if exp.pretrain is not None:  # every point must run sparse MAE
        pretrain, video = exp.pretrain, exp.data.is_video

        def check(cfg: ArchConfig) -> None:
            pretrain.check(cfg, video)
    problems = validate_points(space, exp.model, check)
    if problems:
        raise ValueError(f"search: {len(problems)} point(s) cannot build: " + "; ".join(problems))
    warnings = []
    if space.mode == "params":
        checked = check_params_space(space, exp.model, check)
        if checked.exhaustive and checked.problems:
            more = len(checked.problems) - 5
            raise ValueError(f"search.params: {checked.bad} of {checked.checked} points cannot "
                             "build: " + "; ".join(checked.problems[:5])
                             + (f"; and {more} more" if more > 0 else ""))
        if checked.fraction_bad > REFUSE_FRACTION:
            raise ValueError(f"search.params: {checked.bad} of {checked.checked} sampled points "
                             f"({100 * checked.fraction_bad:.0f}%) cannot build, e.g. "
                             + "; ".join(checked.problems[:3]))
        if checked.warning():
            warnings.append(checked.warning())
    objectives = parse_objectives(extra.get("objectives") or {"val_top1": "max"})
    check_metric_names([o.name for o in objectives], "objectives", video=exp.data.is_video,
                       pretrain=exp.pretrain is not None)
    if space.mode == "design_spaces":  # each space's base must build before sampling
        for name in space.spaces:
            try:
                cfg = resolve_point(space, exp.model, Point(name=name, model={}, train={},
                                                            space=name))
                if check is not None:
                    check(cfg)
            except ValueError as err:
                raise ValueError(f"search.design_spaces.{name}.base: {err}") from None
    default_alg = {"grid": "grid", "ladder": "ladder", "params": "tpe",
                   "design_spaces": "design_spaces"}[space.mode]
    algorithm = extra.get("algorithm") or default_alg
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    fixed = ("grid", "ladder", "design_spaces")
    if (algorithm in fixed) != (space.mode in fixed) or (
            algorithm in fixed and algorithm != space.mode):
        raise ValueError(f"algorithm: {algorithm} does not fit a {space.mode} search space")
    budget = _section(extra, "budget", {"samples", "seeds", "concurrency", "time_s",
                                        "sampling_seed"})
    sampling_seed = _number("budget.sampling_seed", budget.get("sampling_seed", 0), 0,
                            integer=True)
    if "sampling_seed" in budget and space.mode != "design_spaces":
        raise ValueError("budget.sampling_seed: only a design_spaces search samples up front")
    seeds = budget.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = tuple(range(_number("budget.seeds", seeds, 1, integer=True)))
    elif isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds):
        seeds = tuple(seeds)
    else:
        raise ValueError(f"budget.seeds: must be a count or a list of integers, got {seeds!r}")
    samples = _number("budget.samples", budget.get("samples", 8), 1, integer=True)
    concurrency = _number("budget.concurrency", budget.get("concurrency", 1), 1, integer=True)
    time_s = budget.get("time_s")
    if time_s is not None:
        _number("budget.time_s", time_s, 1)
    workers = parse_resources(extra.get("resources"))
    if workers.multi and exp.pretrain is not None:
        raise ValueError("resources.workers: MAE pretraining runs on one worker only; use "
                         "workers: 1 (cpus / gpus) for experiments with a pretrain section")
    cpus, gpus = workers.workers * workers.cpus_per_worker, workers.workers * \
        workers.gpus_per_worker
    scheduler, moasha = extra.get("scheduler") or "none", None
    if isinstance(scheduler, dict):  # {type: moasha, grace_period: ...}
        from mvit_lab.search.moasha import parse_moasha

        if scheduler.get("type") != "moasha":
            raise ValueError(f"scheduler.type: a scheduler with settings must be moasha, got "
                             f"{scheduler.get('type')!r}")
        moasha = parse_moasha(scheduler, objectives, exp.train.epochs)
        scheduler = "moasha"
    elif scheduler == "moasha":
        from mvit_lab.search.moasha import parse_moasha

        moasha = parse_moasha({}, objectives, exp.train.epochs)
    if scheduler not in ("none", "asha", "moasha"):
        raise ValueError(f"scheduler: must be none, asha or moasha, got {scheduler!r}")
    if scheduler == "asha" and len(objectives) > 1:
        raise ValueError("scheduler: asha stops trials early and Optuna would take their "
                         "truncated values as complete; use none for multi-objective fronts")
    tracking = _section(extra, "tracking", {"uri", "experiment"})
    measure = parse_measure(extra.get("measure"), exp.path)
    replay = None
    if "replay" in extra:  # the table answers: its columns, not measure.modes, say what exists
        from mvit_lab.search.replay_backend import parse_replay

        replay = parse_replay(extra["replay"], exp, space, objectives, seeds, workers)
        if extra.get("measure") is not None:
            warnings.append("measure: not used by a replay sweep (its costs are the table's)")
    for o in objectives:  # a cost of a mode that is not measured is never reported
        mode = "train" if o.name.startswith("train_") else "infer"
        if o.name in COST_METRICS and mode not in measure["modes"] and replay is None:
            raise ValueError(f"objectives.{o.name}: measure.modes is {measure['modes']}, "
                             f"which does not measure the {mode} step")
    return SweepConfig(
        space=space, space_tree=space_tree, objectives=objectives, algorithm=algorithm,
        samples=samples, seeds=seeds, concurrency=concurrency, time_s=time_s, cpus=cpus,
        gpus=gpus, scheduler=scheduler, tracking_uri=resolve_tracking_uri(tracking.get("uri")),
        mlflow_experiment=tracking.get("experiment") or exp.name, measure=measure,
        warnings=tuple(warnings), workers=workers, sampling_seed=sampling_seed, moasha=moasha,
        replay=replay,
    )


def sample_points(exp: Experiment, sweep: SweepConfig) -> SweepConfig:
    """A design_spaces sweep with its populations drawn (see :mod:`.design_spaces`); any
    other sweep unchanged. Counting every draw takes about a second each on a CPU."""
    if sweep.space.mode != "design_spaces" or sweep.points:
        return sweep
    from mvit_lab.search.design_spaces import sample_design_points

    check = None
    if exp.pretrain is not None:
        pretrain, video = exp.pretrain, exp.data.is_video

        def check(cfg: ArchConfig) -> None:
            pretrain.check(cfg, video)
    points = sample_design_points(sweep.space, exp.model, sweep.samples, sweep.sampling_seed,
                                  check=check)
    return dataclasses.replace(sweep, points=tuple(points))


def _sample_cached(exp: Experiment, sweep: SweepConfig, storage: Path,
                   write: Callable[[str], None]) -> SweepConfig:
    """``sample_points``, kept in ``storage/.design_points/`` under a hash of everything the
    draws depend on: counting takes minutes on a busy CPU, and a sweep that fails to start
    (Ray, the store) draws the same points again when retried."""
    import hashlib

    key = json.dumps(dict(space=sweep.space_tree, model=exp.model.to_dict(),
                          samples=sweep.samples, seed=sweep.sampling_seed,
                          pretrain=exp.to_dict().get("pretrain")), sort_keys=True, default=str)
    path = storage / ".design_points" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        write(f"design spaces: reusing the {sweep.samples} points per space drawn before "
              f"({path})")
        return dataclasses.replace(sweep, points=_load_points(path))
    write(f"sampling {sweep.samples} points from each of {len(sweep.space.spaces)} design "
          "spaces within the band")
    sweep = sample_points(exp, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(p) for p in sweep.points], indent=1))
    tmp.replace(path)
    return sweep


def _load_points(path: Path) -> tuple[Point, ...]:
    return tuple(Point(**p) for p in json.loads(path.read_text()))


MEASURE_KEYS = {"batch", "dtype", "modes", "protocol", "cache", "lock_timeout"}



def parse_measure(tree: Any, base: str | Path | None = None) -> dict[str, Any]:
    """The ``measure`` section: how each trial's costs are measured, validated.

    ``batch`` (32), ``dtype`` (``auto``: the training AMP dtype on CUDA, float32 on the CPU),
    ``modes`` (``[infer, train]``), ``protocol`` (:class:`~mvit_lab.measure.speed.Protocol`
    fields), ``cache`` (a folder; default the sweep's ``cost_cache/``, relative paths from the
    experiment file) and ``lock_timeout`` (seconds a measurement waits for co-tenants' steps).
    """
    from mvit_lab.measure.protocol import DTYPES, MODES, Protocol

    tree = mapping_section("measure", tree, MEASURE_KEYS)
    out: dict[str, Any] = dict(batch=_number("measure.batch", tree.get("batch", 32), 1,
                                             integer=True))
    dtype = tree.get("dtype", "auto")
    if dtype not in ("auto", *DTYPES):
        raise ValueError(f"measure.dtype: must be auto or one of {', '.join(DTYPES)}; got "
                         f"{dtype!r}")
    out["dtype"] = dtype
    modes = tree.get("modes", list(MODES))
    if not isinstance(modes, list) or not modes or not set(modes) <= set(MODES) or len(
            set(modes)) != len(modes):
        raise ValueError(f"measure.modes: a list of distinct modes from {', '.join(MODES)}; "
                         f"got {modes!r}")
    out["modes"] = modes
    protocol = tree.get("protocol") or {}
    if not isinstance(protocol, dict):
        raise ValueError(f"measure.protocol: must be a mapping, got {protocol!r}")
    try:
        Protocol(**protocol)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(Protocol))
        bad = sorted(set(protocol) - {f.name for f in dataclasses.fields(Protocol)})
        raise ValueError(f"measure.protocol.{bad[0] if bad else '?'}: unknown key (known: "
                         f"{known})") from None
    except ValueError as err:
        raise ValueError(f"measure.{err}") from None
    out["protocol"] = protocol
    cache = tree.get("cache")
    if cache is not None:
        if not isinstance(cache, str) or not cache.strip():
            raise ValueError(f"measure.cache: must be a folder path, got {cache!r}")
        path = Path(cache).expanduser()
        if not path.is_absolute() and base:
            path = Path(base).parent / path
        out["cache"] = str(path.resolve())
    timeout = tree.get("lock_timeout", 600.0)
    out["lock_timeout"] = _number("measure.lock_timeout", timeout, 0)
    return out


def _optuna_param_space(space: SearchSpace) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = {}
    for key, dist in space.params.items():
        if dist.kind == "choice":
            # Ray's choice needs hashable options: index them, map back in the trial
            out[key] = tune.choice(list(range(len(dist.values))))
        elif dist.kind == "int":
            out[key] = tune.randint(dist.values[0], dist.values[1] + 1)
        elif dist.kind == "float":
            out[key] = tune.uniform(*dist.values)
        else:
            out[key] = tune.loguniform(*dist.values)
    return out


def _sampled_point(space: SearchSpace, sampled: dict[str, Any]) -> Point:
    change = {}
    for key, dist in space.params.items():
        value = sampled[key]
        change[key] = dist.values[value] if dist.kind == "choice" else value
    name = ",".join(f"{k}={v}" for k, v in change.items())
    model = {k: v for k, v in change.items() if not k.startswith("train.")}
    train = {k[len("train."):]: v for k, v in change.items() if k.startswith("train.")}
    return Point(name=name, model=model, train=train)


def _searcher(sweep: SweepConfig) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class _FrontSafeOptunaSearch(OptunaSearch):
        """Tells Optuna PRUNED / FAIL for trials without real final objectives, instead of
        Ray's default (COMPLETE with None values, which Optuna rejects and Ray swallows)."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [None if not result else result.get(m) for m in metrics]
            complete = (not error and result is not None and result.get("status") == "finished"
                        and all(isinstance(v, (int, float)) and math.isfinite(v)
                                for v in values))
            if complete:
                return super().on_trial_complete(trial_id, result, error)
            if trial_id in self._completed_trials:
                return None
            state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
            try:
                self._ot_study.tell(self._ot_trials[trial_id], state=state)
            except Exception as exc:  # a trial already told; nothing else to record
                log.warning("optuna: %s", exc)
            self._completed_trials.add(trial_id)
            return None

    seed = sweep.seeds[0]
    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
               "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[sweep.algorithm]()
    return _FrontSafeOptunaSearch(metric=[o.name for o in sweep.objectives],
                                  mode=[o.sense for o in sweep.objectives], sampler=sampler)


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    spec = TrialSpec(**config["spec"])
    space = parse_space(spec.space)
    if "point_index" in config:  # grid / ladder: the point and the seed are grid axes
        point = space.points()[config["point_index"]]
        spec = dataclasses.replace(spec, seed=int(config["seed"]))
    elif "point" in config:  # design spaces: the sampled point itself is the grid axis
        point = Point(**config["point"])
        spec = dataclasses.replace(spec, seed=int(config["seed"]))
    else:  # Optuna: the sampled knob values
        point = _sampled_point(space, {k: config[k] for k in space.params})
    spec = dataclasses.replace(spec, point=dataclasses.asdict(point))
    stopped = []

    def report(metrics: dict[str, Any]) -> None:
        try:
            tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
        except SystemExit:  # Ray stops the trial (Ctrl-C, a time budget): sys.exit(0)
            stopped.append(True)
            if metrics.get("status") in ("finished", "pruned", "stopped"):
                return  # its run is already recorded as ended: it stays so
            note = _stop_note(spec, metrics)
            if note is not None:  # the scheduler stopped it at a rung (MOASHA)
                raise EarlyStopped(note) from None
            raise _Stopped from None

    try:
        run_trial(spec, report=report)
    except (_Stopped, EarlyStopped):
        raise SystemExit(0) from None  # what Ray's stop expects of the training thread
    if stopped:
        raise SystemExit(0)


def _stop_note(spec: TrialSpec, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """What MOASHA wrote before stopping this trial, or None (Ray stopped it otherwise)."""
    from mvit_lab.search.moasha import STOPPED

    key = metrics.get("trial_key")
    path = Path(spec.trials_dir) / str(key) / STOPPED
    try:
        return json.loads(path.read_text()) if key else None
    except (OSError, ValueError):
        return None


class _Stopped(KeyboardInterrupt):
    """Ray stopped a trial mid-training. A KeyboardInterrupt, so ``run_trial`` records it as
    interrupted (resumable), not as failed with ``SystemExit: 0``."""


def _check_resources(sweep: SweepConfig) -> None:
    import ray

    available = ray.cluster_resources()
    if sweep.workers.multi:  # a ValueError when not even one trial's workers fit
        max_concurrent(sweep.workers, available, sweep.concurrency)
        return
    if sweep.gpus > 0 and available.get("GPU", 0) < sweep.gpus:
        raise ValueError(f"resources.gpus: {sweep.gpus} per trial requested but the Ray cluster "
                         f"has {available.get('GPU', 0)} GPUs (Ray would wait forever)")
    if available.get("CPU", 0) < sweep.cpus:
        raise ValueError(f"resources.cpus: {sweep.cpus} per trial requested but the Ray cluster "
                         f"has {available.get('CPU', 0)} CPUs")


def _describer(sweep: SweepConfig) -> Callable[[dict[str, Any]], str]:
    """A trial's Ray config as its point's name (and seed, when there are several)."""
    points = sweep.space.points()

    def describe(config: dict[str, Any]) -> str:
        if "point_index" in config or "point" in config:
            name = points[config["point_index"]].name if "point_index" in config \
                else config["point"]["name"]
            return name + (f" seed={config['seed']}" if len(sweep.seeds) > 1 else "")
        return _sampled_point(sweep.space, {k: config[k] for k in sweep.space.params}).name

    return describe


def run_sweep(exp: Experiment, *, resume: bool = False, address: str | None = None,
              storage: str | Path = "runs/sweeps", retry_failed: bool = False,
              progress: Callable[[str], None] | None = None, quiet: bool = False,
              status_every_s: float = 60.0) -> dict[str, Any]:
    """Run (or ``resume``) the sweep; returns the parent run id, trial counts and the front.

    ``retry_failed`` (with ``resume``) also runs the trials that failed again, from their
    last checkpoint, in their MLflow runs: after a transient fault or a fix.

    Everything is checked before anything is written: a refused sweep leaves no folder and no
    MLflow run. One driver at a time holds the sweep's lock (``driver.lock`` in its folder).
    ``progress`` receives one line per ended trial and a status line every ``status_every_s``
    seconds; ``quiet`` sends the libraries' output (MLflow, Ray, Optuna) to ``sweep.log`` in
    the sweep folder instead of the terminal. Ctrl-C raises :class:`SweepInterrupted` once
    the trials' state is saved.
    """
    if retry_failed and not resume:
        raise ValueError("--retry-failed: only a resumed sweep has failed trials to retry")
    import ray

    from mvit_lab.search._lock import SweepLock
    from mvit_lab.search.progress import LibraryLog, quiet_libraries

    sweep = parse_sweep(exp)
    storage = Path(storage).resolve()
    sweep_dir = storage / exp.name
    state_file = sweep_dir / "sweep.json"
    write = progress or (lambda line: log.info("%s", line))
    lock = SweepLock(sweep_dir)
    if sweep_dir.is_dir():
        lock.acquire()  # refused while another driver runs this sweep
    sink = LibraryLog()
    try:
        if lock.stale:
            write(f"the previous driver (pid {lock.stale.get('pid')} on "
                  f"{lock.stale.get('host')}) ended without releasing the sweep; taking over")
        check_state(state_file, sweep_dir, resume)
        if not resume:
            claim_name(exp, sweep, sweep_dir)  # checked again when the parent is created
        if address is None and not ray.is_initialized():
            check_local_gpus(sweep)
        if sweep.space.mode == "design_spaces":  # drawn once, before anything is written
            saved = sweep_dir / DESIGN_POINTS
            if resume and saved.is_file():
                sweep = dataclasses.replace(sweep, points=_load_points(saved))
            else:
                sweep = _sample_cached(exp, sweep, storage, write)
        with quiet_libraries(sink, verbose=not quiet):
            # no address: RAY_ADDRESS, else a local instance of our own, never the cluster a
            # `ray start` (or a test's ray.cluster_utils) left in /tmp/ray/ray_current_cluster
            ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local",
                     ignore_reinit_error=True, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
            _check_resources(sweep)
            if not lock.held:
                lock.acquire()  # a fresh sweep: its folder is made now, everything checked
                check_state(state_file, sweep_dir, resume)
            sink.open(sweep_dir / "sweep.log")
            return _drive(exp, sweep, sweep_dir, resume, retry_failed, address, write,
                          status_every_s)
    finally:
        lock.release()
        sink.close()


def _drive(exp: Experiment, sweep: SweepConfig, sweep_dir: Path, resume: bool,
           retry_failed: bool, address: str | None, write: Callable[[str], None],
           status_every_s: float) -> dict[str, Any]:
    """The sweep once everything is checked and the lock is held: state, Tune, results."""
    import socket

    from ray import tune

    from mvit_lab.search.progress import SweepProgress
    from mvit_lab.tracking import (
        Tracker,
        ensure_experiment,
        flatten_params,
        runs_dataframe,
        store_lock,
    )

    state_file = sweep_dir / "sweep.json"
    trials_dir = sweep_dir / "trials"
    with _store_errors(exp, trials_dir, sweep):
        ensure_experiment(sweep.mlflow_experiment, sweep.tracking_uri)
        tracker = Tracker(sweep.tracking_uri, sweep.mlflow_experiment)
        if resume:
            state = json.loads(state_file.read_text())
            parent = state["parent_run_id"]
            tracker.start_parent(exp.name, {}, {}, run_id=parent)  # RUNNING again
        else:
            with store_lock(sweep.tracking_uri):  # two folders starting one name at once
                claim_name(exp, sweep, sweep_dir)
                parent = tracker.start_parent(exp.name, flatten_params(dict(
                    experiment=exp.to_dict(),
                    objectives={o.name: o.sense for o in sweep.objectives})),
                    dict(algorithm=sweep.algorithm, search_mode=sweep.space.mode,
                         # MLflow returns params sorted by name: the objectives' order in a tag
                         objectives=",".join(f"{o.name}:{o.sense}" for o in sweep.objectives),
                         sweep_dir=str(sweep_dir), driver_host=socket.gethostname()))
            # the search space as it ran (the experiment may name it by a relative path)
            tracker.log_dict(parent, sweep.space_tree, SPACE_ARTIFACT)
            if sweep.points:  # the sampled populations, to resume and to read back
                points = [dataclasses.asdict(p) for p in sweep.points]
                (sweep_dir / DESIGN_POINTS).write_text(json.dumps(points, indent=1))
                tracker.log_dict(parent, points, DESIGN_POINTS)
            state_file.write_text(json.dumps(dict(parent_run_id=parent, name=exp.name),
                                             indent=2))
    measure = dict(sweep.measure)
    measure["cache"] = measure.get("cache") or str(sweep_dir / "cost_cache")
    spec = dict(experiment={k: v for k, v in exp.to_dict().items()
                            if k in ("name", "data", "model", "train", "pretrain")},
                space=sweep.space_tree, point={}, seed=sweep.seeds[0],
                tracking_uri=sweep.tracking_uri, mlflow_experiment=sweep.mlflow_experiment,
                parent_run_id=parent, trials_dir=str(trials_dir), measure=measure,
                workers=dataclasses.asdict(sweep.workers) if sweep.workers.multi else {},
                replay=sweep.replay or {})
    if resume:  # what trials recorded while the store refused writes goes in first
        _replay(trials_dir, sweep, exp)
    if retry_failed:  # a failed outcome is reused by later draws; a retry must run again
        _forget_failures(trials_dir)
    total = sweep.total
    columns = tuple(dict.fromkeys([*(o.name for o in sweep.objectives), "gflops",
                                   "throughput"]))
    callback = SweepProgress(total, _describer(sweep), columns, write, every_s=status_every_s)
    callback.stop_notes = str(trials_dir)
    interrupted = False
    try:
        trainable = tune.with_resources(_trainable, sweep.workers.driver_resources())
        if resume and tune.Tuner.can_restore(str(sweep_dir / "tune")):
            tuner = tune.Tuner.restore(str(sweep_dir / "tune"), trainable=trainable,
                                       resume_unfinished=True, resume_errored=False,
                                       restart_errored=retry_failed)
            # Tuner.restore takes no RunConfig: the live progress callback goes in here
            tuner._local_tuner.get_run_config().callbacks = [callback]
        else:
            tuner = tune.Tuner(trainable, param_space=_param_space(sweep, spec),
                               tune_config=_tune_config(sweep, sweep_dir),
                               run_config=tune.RunConfig(
                                   name="tune", storage_path=str(sweep_dir), verbose=0,
                                   callbacks=[callback],
                                   failure_config=tune.FailureConfig(max_failures=0)))
        with catch_interrupts() as ctrl_c:
            results = tuner.fit()
        interrupted = ctrl_c["requested"]  # Tune stopped, the unfinished trials resumable
        if not interrupted:
            with _store_errors(exp, trials_dir, sweep):
                _replay(trials_dir, sweep, exp)  # trials that lost the store during this run
                _record_errors(results, sweep, tracker, parent,
                               exp.to_dict().get("pretrain"))
    except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune took over the signal
        interrupted = True
    finally:
        try:
            _settle_ended(trials_dir, sweep, tracker, parent)
            tracker.close_stale(parent)
        except Exception as err:  # an unwritable store: the error raised says what to do
            log.warning("runs left RUNNING not closed: %s", err)
    if interrupted:
        with _store_errors(exp, trials_dir, sweep):
            counts = counts_by_status(runs_dataframe(
                sweep.tracking_uri, sweep.mlflow_experiment, parent_run_id=parent))
            tracker.set_tags(parent, dict(status="interrupted"))
            tracker.finish(parent, "KILLED")
        raise SweepInterrupted(exp.name, parent, counts)
    with _store_errors(exp, trials_dir, sweep):
        result = _finish_sweep(sweep, tracker, parent)
    result["log_file"] = str(sweep_dir / "sweep.log")
    return result


def _settle_ended(trials_dir: Path, sweep: SweepConfig, tracker: Any, parent: str,
                  wait_s: float = 10.0) -> None:
    """Finish, from their outcome, the runs still RUNNING whose trial has ended.

    Tune counts a trial the scheduler stopped as ended as soon as it decides, so ``fit`` may
    return while the trial's thread is still recording itself (outcome, tags, status): left
    alone, ``close_stale`` would mark such a run interrupted, and a resumed sweep reuses the
    outcome without touching the run again. A run whose trial has a stop note but no outcome
    yet is given ``wait_s`` to write it."""
    import time

    from mvit_lab.search.moasha import STOPPED
    from mvit_lab.search.trial import OUTCOME
    from mvit_lab.tracking import runs_dataframe

    runs = runs_dataframe(sweep.tracking_uri, sweep.mlflow_experiment, parent_run_id=parent)
    if not len(runs) or "tag.trial_id" not in runs:
        return
    live = runs[runs["status"] == "RUNNING"]
    deadline = time.monotonic() + wait_s
    for run_id, tid in zip(live["run_id"], live["tag.trial_id"]):
        folder = trials_dir / str(tid)
        while not (folder / OUTCOME).is_file() and (folder / STOPPED).is_file() and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            outcome = json.loads((folder / OUTCOME).read_text())
        except (OSError, ValueError):
            continue  # no outcome: interrupted (close_stale), resumable
        status = outcome.get("status", "finished")
        tags = {k: v for k, v in outcome.items() if k not in ("status", "result")}
        tracker.set_tags(run_id, dict(tags, status=status))
        tracker.finish(run_id, "FAILED" if status == "failed" else "FINISHED")


def _finish_sweep(sweep: SweepConfig, tracker: Any, parent: str) -> dict[str, Any]:
    from mvit_lab.tracking import runs_dataframe

    runs = runs_dataframe(sweep.tracking_uri, sweep.mlflow_experiment, parent_run_id=parent)
    records = sweep_records(runs, sweep.objectives)
    front = front_table(records, sweep.objectives)
    tracker.log_dict(parent, front, "pareto_front.json")
    ladder = None
    if sweep.space.mode == "ladder":
        from mvit_lab.search.tables import format_ladder, ladder_table

        ladder = ladder_table(records, sweep.objectives[0].name)
        tracker.log_text(parent, format_ladder(ladder, sweep.objectives[0].name), "ladder.md")
    ablations = []
    if sweep.space.mode == "grid":
        from mvit_lab.search.tables import ablation_table, format_ablation

        metric = sweep.objectives[0].name
        ablations = [ablation_table(records, k, metric) for k in sweep.space.grid
                     if not k.startswith("train.")]
        tracker.log_text(parent, "\n\n".join(format_ablation(t, metric) for t in ablations
                                              if t), "ablation.md")
    design = None
    if sweep.space.mode == "design_spaces":
        from mvit_lab.search.design_analysis import analyse_design_spaces, format_design_table

        objective = sweep.objectives[0]
        try:
            design = analyse_design_spaces(records, metric=objective.name,
                                           sense=objective.sense, order=list(sweep.space.spaces))
            tracker.log_text(parent, format_design_table(design), "design_spaces.md")
        except ValueError as err:  # no finished trial yet: nothing to compare
            log.warning("design spaces not analysed: %s", err)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    tracker.set_tags(parent, {f"trials_{k}": str(v) for k, v in counts.items()})
    tracker.finish(parent, "FINISHED")
    return dict(parent_run_id=parent, counts=counts, front=front, records=records,
                ladder=ladder, ablations=ablations, design=design, tracking_uri=sweep.tracking_uri,
                mlflow_experiment=sweep.mlflow_experiment, objectives=sweep.objectives)


def _replay(trials_dir: Path, sweep: SweepConfig, exp: Experiment) -> None:
    from mvit_lab.search.journal import replay_journals

    with _store_errors(exp, trials_dir, sweep):
        done = replay_journals(trials_dir, sweep.tracking_uri, sweep.mlflow_experiment)
    if done:
        log.warning("recorded %d trial(s) kept on disk while the store refused writes",
                    len(done))


def _forget_failures(trials_dir: Path) -> None:
    from mvit_lab.search.trial import OUTCOME

    for path in trials_dir.glob(f"*/{OUTCOME}"):
        try:
            if json.loads(path.read_text()).get("status") == "failed":
                path.unlink()
        except (OSError, ValueError):
            continue


def _is_store_error(err: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(err, (MlflowException, OSError)) or type(err).__module__.startswith(
        "sqlalchemy")


@contextlib.contextmanager
def _store_errors(exp: Experiment, trials_dir: Path, sweep: SweepConfig) -> Iterator[None]:
    """A store that refuses writes becomes one line that says what is kept and what to do."""
    try:
        yield
    except Exception as err:
        if not _is_store_error(err):
            raise
        from mvit_lab.search.journal import JOURNAL, plain_text

        pending = len(list(trials_dir.glob(f"*/{JOURNAL}")))
        what = " ".join(plain_text(f"{type(err).__name__}: {err}", 200).split())
        where = f"{exp.path}" if exp.path else "the experiment"
        raise ValueError(f"tracking store {sweep.tracking_uri} refused a write ({what}); "
                         f"{pending} trial record(s) are kept under {trials_dir}; once the "
                         f"store is writable, run `mvit-lab sweep {where} --resume` to record "
                         "them") from None


def _record_errors(results: Any, sweep: SweepConfig, tracker: Any, parent: str,
                   pretrain: dict[str, Any] | None = None) -> None:
    """Trials whose process died (SIGKILL, out of memory) never reached their own failure
    handler: finish their MLflow runs as FAILED, with Ray's error as the reason."""
    from mvit_lab.search.journal import plain_text
    from mvit_lab.tracking import runs_dataframe

    errored = [r for r in results if r.error is not None]
    if not errored or results.num_errors + results.num_terminated < len(results):
        return  # nothing died, or an interrupted run: close_stale and --resume handle it
    runs = runs_dataframe(sweep.tracking_uri, sweep.mlflow_experiment, parent_run_id=parent)
    if not len(runs):
        return
    live = runs[runs["status"] == "RUNNING"]
    running = dict(zip(live["tag.trial_id"], live["run_id"]))
    reasons: dict[str, str] = {}
    for result in errored:
        config = result.config
        if not config:  # errored before its first report
            continue
        if "point_index" in config:
            point = sweep.space.points()[config["point_index"]]
            seed = int(config["seed"])
        elif "point" in config:
            point, seed = Point(**config["point"]), int(config["seed"])
        else:
            point = _sampled_point(sweep.space, {k: config[k] for k in sweep.space.params})
            seed = sweep.seeds[0]
        reasons[trial_id(point, seed, pretrain)] = plain_text(
            f"{type(result.error).__name__}: {result.error}")
    first = plain_text(f"{type(errored[0].error).__name__}: {errored[0].error}", 500)
    for tid, run_id in running.items():
        reason = reasons.get(tid, f"the trial's process died before reporting ({first})")
        tracker.set_tags(run_id, dict(status="failed", reason=reason[:1000]))
        tracker.finish(run_id, "FAILED")


def _param_space(sweep: SweepConfig, spec: dict[str, Any]) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {"spec": spec}
    if sweep.space.mode in ("grid", "ladder"):
        space["point_index"] = tune.grid_search(list(range(len(sweep.space.points()))))
        space["seed"] = tune.grid_search(list(sweep.seeds))
    elif sweep.space.mode == "design_spaces":
        from mvit_lab.search.design_spaces import interleave

        space["point"] = tune.grid_search([dataclasses.asdict(p)
                                           for p in interleave(list(sweep.points))])
        space["seed"] = tune.grid_search(list(sweep.seeds))
    else:
        space.update(_optuna_param_space(sweep.space))
    return space


def _tune_config(sweep: SweepConfig, sweep_dir: Path) -> Any:
    from ray import tune

    # reused actors keep torch, MLflow and mvit-lab imported between trials
    concurrency = sweep.concurrency
    if sweep.workers.multi:  # Tune does not reserve Train's workers: never more trials
        import ray  # than the cluster can place, or their drivers wait forever for workers

        concurrency = max_concurrent(sweep.workers, ray.cluster_resources(), concurrency)
        if concurrency < sweep.concurrency:
            log.warning("budget.concurrency: %d trials of %d workers need more than the "
                        "cluster has; running %d at a time", sweep.concurrency,
                        sweep.workers.workers, concurrency)
    kw: dict[str, Any] = dict(max_concurrent_trials=concurrency, reuse_actors=True)
    if sweep.time_s:
        kw["time_budget_s"] = sweep.time_s
    if sweep.space.mode == "params":
        # never TuneConfig(metric=, mode=): it would make the search single-objective
        kw.update(search_alg=_searcher(sweep), num_samples=sweep.samples)
    if sweep.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        (objective,) = sweep.objectives
        kw["scheduler"] = ASHAScheduler(metric=objective.name, mode=objective.sense)
    if sweep.scheduler == "moasha":
        from mvit_lab.search.moasha import MOASHAScheduler

        kw["scheduler"] = MOASHAScheduler(sweep.moasha, sweep.objectives,
                                          trials_dir=sweep_dir / "trials", state_dir=sweep_dir)
    return tune.TuneConfig(**kw)
