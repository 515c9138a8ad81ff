"""Replay trials in a real sweep: each trial answers from a recorded table instead of training.

::

    replay: {table: ../benchmarks/replay/digits_small, time_scale: 0.0}

With a ``replay`` section, ``mvit-lab sweep`` runs the real machinery (Ray Tune, the Optuna
searcher, the scheduler, MLflow, stop notes, resume, one run per point), but a trial neither
counts, measures nor trains: it reports the table's costs (GFLOPs, parameters, throughput, ...)
and then the table's per-epoch metrics, one epoch at a time, so a scheduler sees the recorded
learning curves (as Syne Tune's simulator backend does). ``time_scale`` (default 0) makes each
epoch last ``time_scale`` times its recorded ``epoch_seconds``, so trials of different speeds
end out of order and asynchronous decisions are exercised.

``table`` is a folder written by ``benchmarks/record_replay.py`` (see
:mod:`mvit_lab.search.replay`), relative to the experiment file. Everything is checked before
anything runs, each error naming its field: every point the search space can produce must be
a row of the table (matched on the table's knobs, taken from the point or else from
``search.base``), ``train.epochs`` may not exceed the table's epochs, each objective must be
a column of the table, one seed (the table holds one run per point), one worker, no
pretraining, and the parameter counts of a few points must equal the table's (a table recorded
from another base model is refused).

A replayed run is tagged ``cost_by: replay table <folder>`` and ``replay_table``; its
per-epoch metrics are the table's (``epoch_seconds`` included: the recorded seconds), and
``train_seconds`` is the wall time the replay took.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvit_lab._validate import mapping_section
from mvit_lab.search.pareto import Objective
from mvit_lab.search.replay import ReplayTable, load_replay_table
from mvit_lab.search.space import Point, SearchSpace, resolve_point

__all__ = ["REPLAY_KEYS", "ReplayedTrial", "parse_replay", "point_knobs"]

REPLAY_KEYS = ("table", "time_scale")
PROGRESS = "replay.json"  # in a trial's folder: the last epoch replayed (resume from there)
RECORDING = "recording.json"  # the table's totals: seed, cost device and protocol
PARAMS_CHECKED = 4  # points whose parameter count is compared with the table's


def _folder(table: Any, base: str | None) -> Path:
    if not isinstance(table, str) or not table.strip():
        raise ValueError(f"replay.table: must be the folder of a replay table (points.csv + "
                         f"curves.csv), got {table!r}")
    path = Path(table).expanduser()
    if not path.is_absolute() and base:
        path = Path(base).parent / path
    if not path.is_dir():
        raise ValueError(f"replay.table: no such folder {path}")
    return path.resolve()


@dataclass(frozen=True)
class _Loaded:
    table: ReplayTable
    recording: dict[str, Any]  # recording.json ({} when absent)
    rows: dict[tuple[str, ...], int]  # the knobs' JSON values -> point index


@functools.lru_cache(maxsize=8)
def _load(folder: str, stamp: tuple[float, float]) -> _Loaded:
    """The table, its ``recording.json`` and its rows by knob values (``stamp``: the CSVs'
    mtimes, so a reused worker process reads an edited table again)."""
    try:
        table = load_replay_table(folder)
    except ValueError as err:
        raise ValueError(f"replay.table: {err}") from None
    try:
        recording = json.loads((Path(folder) / RECORDING).read_text())
    except (OSError, ValueError):
        recording = {}
    rows = {tuple(_key(p[k]) for k in table.knobs): i for i, p in enumerate(table.points)}
    return _Loaded(table, recording if isinstance(recording, dict) else {}, rows)


def _table(folder: str) -> _Loaded:
    stamp = []
    for name in ("points.csv", "curves.csv"):
        try:
            stamp.append(os.stat(Path(folder) / name).st_mtime)
        except OSError:
            stamp.append(-1.0)  # load_replay_table says which file is missing
    return _load(folder, tuple(stamp))


def point_knobs(point: Point, space: SearchSpace, knobs: Sequence[str]) -> dict[str, Any]:
    """The value of each of the table's ``knobs`` for ``point``: set by the point, else by the
    search space's base. A ValueError names a knob the table does not have, or one that the
    search space sets nowhere."""
    given = {**point.model, **{f"train.{k}": v for k, v in point.train.items()}}
    extra = sorted(set(given) - set(knobs))
    if extra:
        raise ValueError(f"search: {point.name} sets {extra[0]}, which is not a knob of the "
                         f"replay table (its knobs: {', '.join(knobs)})")
    base = space.spaces[point.space].base if point.space else space.base
    out = {}
    for k in knobs:
        if k in given:
            out[k] = given[k]
        elif k in base:
            out[k] = base[k]
        else:
            raise ValueError(f"search.base.{k}: a knob of the replay table that {point.name} "
                             "does not set; set it in search.base or vary it")
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _index(loaded: _Loaded, knobs: dict[str, Any]) -> int | None:
    return loaded.rows.get(tuple(_key(knobs[k]) for k in loaded.table.knobs))


def _space_points(space: SearchSpace, limit: int) -> Iterator[Point]:
    """Every point the search space can produce: a grid's points, a ladder's steps, or the
    first ``limit`` distinct combinations of a params space's choices."""
    if space.mode in ("grid", "ladder"):
        yield from space.points()
        return
    values = {}
    for key, dist in space.params.items():
        if dist.kind == "choice":  # distinct values: more combinations than rows is telling
            values[key] = list({_key(v): v for v in dist.values}.values())
        elif dist.kind == "int":
            values[key] = list(range(dist.values[0], dist.values[1] + 1))
        else:
            raise ValueError(f"search.params.{key}: a replay sweep can only draw the table's "
                             f"values; use choice: [...] (or int), not {dist.kind}")
    keys = list(values)
    for combo in itertools.islice(itertools.product(*values.values()), limit):
        change = dict(zip(keys, combo))
        yield Point(name=",".join(f"{k}={v}" for k, v in change.items()),
                    model={k: v for k, v in change.items() if not k.startswith("train.")},
                    train={k[len("train."):]: v for k, v in change.items()
                           if k.startswith("train.")})


def _check_points(loaded: _Loaded, space: SearchSpace, folder: Path) -> list[Point]:
    """Every point of ``space`` is a row of the table (a ValueError names the first that is
    not); returns the points."""
    table = loaded.table
    if space.mode == "design_spaces":
        raise ValueError("replay: a design_spaces search samples its own architectures, which "
                         "a table does not hold; use grid, ladder or params (choice)")
    # a params space with more combinations than rows misses one of the first len + 1
    points = list(_space_points(space, len(table.points) + 1))
    for point in points:
        knobs = point_knobs(point, space, table.knobs)
        if _index(loaded, knobs) is None:
            raise ValueError(f"replay.table: the search space's point {point.name} "
                             f"({json.dumps(knobs)}) is not in {folder}")
    return points


def _check_params(loaded: _Loaded, space: SearchSpace, exp: Any, points: list[Point],
                  folder: Path) -> None:
    """The parameter counts of a few points equal the table's: the experiment's model and the
    space's base are the ones the table was recorded with (knob values alone cannot tell)."""
    table = loaded.table
    if not points or "params" not in table.costs[0]:
        return
    from mvit_lab.build import count_params

    step = max(1, len(points) // PARAMS_CHECKED)
    for point in points[::step][:PARAMS_CHECKED]:
        index = _index(loaded, point_knobs(point, space, table.knobs))
        recorded = int(table.costs[index]["params"])
        counted = count_params(resolve_point(space, exp.model, point))
        if counted != recorded:
            raise ValueError(f"replay.table: {point.name} has {counted:,} parameters here but "
                             f"{recorded:,} in {folder}: the experiment's model or search.base "
                             "differs from the one the table was recorded with")


def parse_replay(tree: Any, exp: Any, space: SearchSpace, objectives: Sequence[Objective],
                 seeds: Sequence[int], workers: Any) -> dict[str, Any]:
    """The ``replay`` section, checked against the table (see the module docstring); returns
    the plain data a trial needs: ``table`` (an absolute folder) and ``time_scale``."""
    if tree is None:
        raise ValueError("replay: needs table: <folder of a replay table>")
    tree = mapping_section("replay", tree, REPLAY_KEYS)
    if "table" not in tree:
        raise ValueError("replay.table: missing (the folder of a replay table: points.csv + "
                         "curves.csv)")
    folder = _folder(tree["table"], exp.path)
    loaded = _table(str(folder))
    table, recording = loaded.table, loaded.recording
    scale = tree.get("time_scale", 0.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(
            scale) or scale < 0:
        raise ValueError(f"replay.time_scale: must be a number >= 0 (seconds slept per "
                         f"recorded second), got {scale!r}")
    if scale > 0 and "epoch_seconds" not in table.metrics:
        raise ValueError(f"replay.time_scale: {folder} records no epoch_seconds to scale")
    if exp.pretrain is not None:
        raise ValueError("replay: a table holds no pretraining; drop the pretrain section")
    if workers.multi:
        raise ValueError("resources.workers: a replay trial trains nothing; use one worker")
    if len(seeds) != 1:
        seed = recording.get("seed", "?")
        raise ValueError(f"budget.seeds: the replay table holds one run per point (seed "
                         f"{seed}); give one seed, got {list(seeds)}")
    if exp.train.epochs > table.epochs:
        raise ValueError(f"train.epochs: {exp.train.epochs} is more than the {table.epochs} "
                         f"epochs recorded in {folder}")
    columns = [*table.metrics, *table.costs[0]]
    for o in objectives:
        if o.name not in columns:
            raise ValueError(f"objectives.{o.name}: the replay table {folder} has no such "
                             f"column (it has {', '.join(columns)})")
    points = _check_points(loaded, space, folder)
    _check_params(loaded, space, exp, points, folder)
    return dict(table=str(folder), time_scale=float(scale))


@dataclass(frozen=True)
class Counted:
    """What a trial counts before anything else (as :func:`mvit_lab.measure.count_flops`)."""

    gflops: float
    params: int


class ReplayedTrial:
    """One trial's answers from the table: its counted and measured costs, then its curve.

    ``replay`` is the parsed section (:func:`parse_replay`), ``point`` and ``space`` the
    trial's; a point that is not a row of the table is a ValueError naming it.
    """

    def __init__(self, replay: dict[str, Any], point: Point, space: SearchSpace) -> None:
        self.folder = replay["table"]
        self.time_scale = float(replay.get("time_scale", 0.0))
        loaded = _table(self.folder)
        self.table, self.recording = loaded.table, loaded.recording
        knobs = point_knobs(point, space, self.table.knobs)
        index = _index(loaded, knobs)
        if index is None:
            raise ValueError(f"replay.table: {point.name} ({json.dumps(knobs)}) is not in "
                             f"{self.folder}")
        self.index = index

    @property
    def counted(self) -> Counted:
        costs = self.table.costs[self.index]
        return Counted(gflops=float(costs.get("gflops", math.nan)),
                       params=int(costs.get("params", 0)))

    def costs(self) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
        """(metrics, tags, the record for ``cost.json``), as a measurement returns them."""
        metrics = {k: v for k, v in self.table.costs[self.index].items()
                   if k not in ("gflops", "params")}
        rec = self.recording
        tags = dict(cost_by=f"replay table {self.folder}", replay_table=self.folder,
                    replay_point=str(self.index),
                    cost_device=str(rec.get("cost_device", "not recorded")),
                    cost_protocol=str(rec.get("cost_protocol", "not recorded")),
                    cost_dtype=str(rec.get("cost_dtype", "not recorded")),
                    cost_batch=str(rec.get("cost_batch", "not recorded")))
        record = dict(replay_table=self.folder, point_id=self.index,
                      costs=self.table.costs[self.index], recording=rec)
        return metrics, tags, record

    def epoch_metrics(self, epoch: int, epochs: int, eval_every: int = 1) -> dict[str, Any]:
        """Epoch ``epoch``'s row of the curve; validation metrics only on the epochs a real
        trial evaluates (every ``eval_every``-th and the last)."""
        row = self.table.curves[self.index, epoch - 1]
        evaluating = epoch == epochs or epoch % eval_every == 0
        return dict(epoch=epoch, **{m: float(v) for m, v in zip(self.table.metrics, row)
                                    if math.isfinite(v) and (evaluating
                                                             or not m.startswith("val_"))})

    def train(self, out_dir: str | Path, cfg: Any,
              callback: Callable[[dict[str, Any]], None]) -> Any:
        """The curve epoch by epoch through ``callback`` (as :func:`mvit_lab.train.train`
        reports; raising in it stops the trial), from the epoch after the last one replayed
        (a resumed trial); ``cfg`` is the trial's ``TrainConfig``."""
        from mvit_lab.train.loop import TrainResult

        epochs = cfg.epochs
        if epochs > self.table.epochs:
            raise ValueError(f"train.epochs: {epochs} is more than the {self.table.epochs} "
                             f"epochs recorded in {self.folder}")
        out_dir = Path(out_dir)
        done = self._replayed(out_dir)
        history = [self.epoch_metrics(e, epochs, cfg.eval_every) for e in range(1, done + 1)]
        started = time.perf_counter()
        for epoch in range(done + 1, epochs + 1):
            metrics = self.epoch_metrics(epoch, epochs, cfg.eval_every)
            if self.time_scale > 0:
                time.sleep(self.time_scale * metrics.get("epoch_seconds", 0.0))
            history.append(metrics)
            self._save(out_dir, epoch)  # before the report, as a checkpoint is
            callback(dict(metrics))
        recorded = sum(m.get("epoch_seconds", 0.0) for m in history)
        final = dict(history[-1], params=self.counted.params, epochs=epochs,
                     train_seconds=time.perf_counter() - started,
                     recorded_train_seconds=recorded)
        return TrainResult(history=history, final=final, data_reports=[],
                           out_dir=str(out_dir))

    def _replayed(self, out_dir: Path) -> int:
        try:
            state = json.loads((out_dir / PROGRESS).read_text())
        except (OSError, ValueError):
            return 0
        same = state.get("table") == self.folder and state.get("point_id") == self.index
        return int(state.get("epoch", 0)) if same else 0

    def _save(self, out_dir: Path, epoch: int) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{PROGRESS}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(dict(table=self.folder, point_id=self.index, epoch=epoch)))
        os.replace(tmp, out_dir / PROGRESS)
