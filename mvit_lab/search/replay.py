"""A replay table and a trial backend that answers from it, as Syne Tune's simulator does.

A replay table is a folder of two CSV files written once by ``benchmarks/record_replay.py``:
``points.csv`` (one row per architecture: ``point_id``, its knob values as JSON, ``gflops``,
``params`` and the measured costs) and ``curves.csv`` (one row per point and epoch:
``point_id``, ``epoch``, ``val_top1``, ...), every point trained to the full budget once.
:func:`replay_trial` answers a trial epoch by epoch from it, in microseconds, exactly as a trial
reports (costs from epoch 1 on, then that epoch's validation metrics), so a scheduler sees the
real learning curves; :func:`simulate` runs a whole asynchronous sweep on it (an Optuna sampler
asks, ``workers`` trials run at once, each epoch takes its recorded seconds, a scheduler may
stop trials) and returns the budget it consumed and the hypervolume it reached on the way.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvit_lab.search.pareto import Objective, hypervolume

__all__ = ["ReplayTable", "SimulatedSweep", "load_replay_table", "replay_trial", "simulate"]

POINTS, CURVES = "points.csv", "curves.csv"
META = ("point_id", "cost_spread", "cost_isolated")


@dataclass(frozen=True)
class ReplayTable:
    knobs: tuple[str, ...]
    points: tuple[dict[str, Any], ...]  # knob values (decoded) per point
    costs: tuple[dict[str, float], ...]  # gflops, params, throughput, ... per point
    curves: np.ndarray  # [points, epochs, metrics]
    metrics: tuple[str, ...]  # the curve columns, in order

    @property
    def epochs(self) -> int:
        return self.curves.shape[1]

    def choices(self) -> dict[str, list[Any]]:
        """Each knob's values, in the order first seen."""
        out: dict[str, list[Any]] = {k: [] for k in self.knobs}
        for point in self.points:
            for k in self.knobs:
                if point[k] not in out[k]:
                    out[k].append(point[k])
        return out

    def index(self, model: dict[str, Any]) -> int:
        """The point whose knobs equal ``model``'s (a ValueError names what is missing)."""
        unknown = sorted(set(model) - set(self.knobs))
        if unknown:
            raise ValueError(f"model.{unknown[0]}: not a knob of this replay table (knobs: "
                             f"{', '.join(self.knobs)})")
        want = {k: _key(v) for k, v in model.items()}
        for i, point in enumerate(self.points):
            if all(_key(point[k]) == v for k, v in want.items()) and len(want) == len(
                    self.knobs):
                return i
        raise ValueError(f"model: {json.dumps(model)} is not a point of this replay table")

    def result(self, index: int, epoch: int) -> dict[str, Any]:
        """What the trial of point ``index`` reports after ``epoch`` (1-based)."""
        if not 1 <= epoch <= self.epochs:
            raise ValueError(f"epoch: must be in 1..{self.epochs}, got {epoch}")
        row = self.curves[index, epoch - 1]
        return dict(self.costs[index], epoch=epoch,
                    **{m: float(v) for m, v in zip(self.metrics, row)})


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: not a number: {text!r}") from None


def load_replay_table(folder: str | Path) -> ReplayTable:
    """The table in ``folder``; a ValueError names the file, row and column of bad input."""
    folder = Path(folder)
    for name in (POINTS, CURVES):
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: no {name} (a replay table is points.csv + curves.csv)")
    with open(folder / POINTS, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "point_id" not in rows[0]:
        raise ValueError(f"{folder / POINTS}: needs a header with point_id and a row per point")
    header = list(rows[0])
    cost_cols = [c for c in header if c in ("gflops", "params", "throughput", "latency_ms",
                                            "peak_memory_mb", "train_throughput")]
    knobs = tuple(c for c in header if c not in META and c not in cost_cols)
    points, costs = [], []
    for n, row in enumerate(rows, start=2):
        where = f"{folder / POINTS} line {n}"
        if int(_number(row["point_id"], f"{where} point_id")) != n - 2:
            raise ValueError(f"{where} point_id: expected {n - 2} (rows in order)")
        try:
            points.append({k: json.loads(row[k]) for k in knobs})
        except ValueError:
            raise ValueError(f"{where}: knob values must be JSON") from None
        costs.append({c: _number(row[c], f"{where} {c}") for c in cost_cols})
    with open(folder / CURVES, newline="") as f:
        reader = csv.DictReader(f)
        metrics = tuple(c for c in (reader.fieldnames or []) if c not in ("point_id", "epoch"))
        cells: dict[tuple[int, int], list[float]] = {}
        for n, row in enumerate(reader, start=2):
            where = f"{folder / CURVES} line {n}"
            key = (int(_number(row["point_id"], f"{where} point_id")),
                   int(_number(row["epoch"], f"{where} epoch")))
            cells[key] = [_number(row[m], f"{where} {m}") for m in metrics]
    epochs = max((e for _, e in cells), default=0)
    curves = np.full((len(points), epochs, len(metrics)), np.nan)
    for (p, e), values in cells.items():
        if not (0 <= p < len(points) and 1 <= e):
            raise ValueError(f"{folder / CURVES}: point {p} epoch {e} is not in points.csv")
        curves[p, e - 1] = values
    missing = np.argwhere(np.isnan(curves).all(axis=2))
    if len(missing):
        p, e = missing[0]
        raise ValueError(f"{folder / CURVES}: point {p} has no row for epoch {e + 1}")
    return ReplayTable(knobs, tuple(points), tuple(costs), curves, metrics)


def replay_trial(table: ReplayTable, model: dict[str, Any], *,
                 epochs: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the point's reports epoch by epoch (``status: running``), then its final result
    (``status: finished``); deterministic. Stop iterating to stop the trial."""
    index = table.index(model)
    last = table.epochs if epochs is None else epochs
    for epoch in range(1, last + 1):
        yield dict(table.result(index, epoch), status="running", trial_key=str(index))
    yield dict(table.result(index, last), status="finished", trial_key=str(index))


@dataclass
class SimulatedSweep:
    """One simulated sweep: the budget consumed when each trial ended, and its outcome."""

    consumed: list[float]  # epochs consumed when the event happened
    hypervolume: list[float]  # of the finished trials' final objectives, at that moment
    finished: int = 0
    stopped: int = 0
    twins: int = 0  # draws of a point already run (answered from its outcome, no budget)
    stopped_at: dict[int, int] | None = None  # epoch -> trials stopped there

    def at(self, budget: float) -> float:
        """The hypervolume reached once ``budget`` epochs were consumed."""
        i = int(np.searchsorted(self.consumed, budget, side="right")) - 1
        return self.hypervolume[i] if i >= 0 else 0.0


def simulate(table: ReplayTable, objectives: Sequence[Objective], sampler: Any, *,
             scheduler: Any = None, workers: int = 4, budget: float,
             reference: Sequence[float], max_asks: int = 1000) -> SimulatedSweep:
    """An asynchronous sweep on ``table``: ``sampler`` (Optuna) draws points, ``workers``
    trials run at once, each epoch lasts its recorded ``epoch_seconds``, and ``scheduler`` (a
    :class:`~mvit_lab.search.moasha.MOASHAScheduler`, or None) sees every epoch's report
    through its Ray hook. Ends once ``budget`` epochs are consumed (a trial in flight then
    ends where it is, unfinished), once every point has run, or after ``max_asks`` draws.
    Stopped trials are told to Optuna as PRUNED. A draw of a
    point already run or running is a twin, as in a real sweep (one run per point): it costs
    no budget and is told the point's outcome (PRUNED while it is still running)."""
    import optuna
    from ray.tune.schedulers import TrialScheduler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [o.name for o in objectives]
    study = optuna.create_study(
        directions=["maximize" if o.sense == "max" else "minimize" for o in objectives],
        sampler=sampler)
    choices = table.choices()
    dists = {k: optuna.distributions.CategoricalDistribution([_key(v) for v in values])
             for k, values in choices.items()}
    outcome: dict[int, list[float] | None] = {}  # point -> final values, None when stopped
    finals: list[list[float]] = []
    out = SimulatedSweep([0.0], [0.0], stopped_at={})
    consumed, clock, asks = 0.0, 0.0, 0
    running: list[tuple[float, int, Any, int, int]] = []  # (time, worker, trial, point, epoch)

    def start(worker: int, now: float) -> bool:
        nonlocal asks
        while asks < max_asks and len(outcome) < len(table.points):
            asks += 1
            trial = study.ask(dists)
            point = table.index({k: json.loads(trial.params[k]) for k in table.knobs})
            if point in outcome:  # a twin: its outcome, no training
                out.twins += 1
                values = outcome[point]
                if values is None:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, values)
                continue
            outcome[point] = None
            seconds = table.result(point, 1).get("epoch_seconds", 1.0)
            heapq.heappush(running, (now + seconds, worker, trial, point, 1))
            return True
        return False

    for w in range(workers):
        start(w, 0.0)
    while running and consumed < budget:
        clock, worker, trial, point, epoch = heapq.heappop(running)
        consumed += 1
        report = dict(table.result(point, epoch), status="running", trial_key=str(point))
        decision = TrialScheduler.CONTINUE
        if scheduler is not None and epoch < table.epochs:
            decision = scheduler.on_trial_result(None, None, report)
        if epoch == table.epochs:
            values = [report[n] for n in names]
            outcome[point] = values
            study.tell(trial, values)
            finals.append(values)
            out.finished += 1
            out.consumed.append(consumed)
            out.hypervolume.append(hypervolume(finals, [o.sense for o in objectives],
                                               reference))
        elif decision == TrialScheduler.STOP:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            out.stopped += 1
            out.stopped_at[epoch] = out.stopped_at.get(epoch, 0) + 1
        else:
            seconds = table.result(point, epoch + 1).get("epoch_seconds", 1.0)
            heapq.heappush(running, (clock + seconds, worker, trial, point, epoch + 1))
            continue
        start(worker, clock)
    out.consumed.append(max(consumed, out.consumed[-1]))
    out.hypervolume.append(out.hypervolume[-1])
    if not math.isfinite(out.hypervolume[-1]):
        raise ValueError("reference: a point is infinitely better than the reference")
    return out
