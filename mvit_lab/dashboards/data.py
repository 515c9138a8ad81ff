"""Dashboard data: an MLflow store read back as plain data (experiments, sweeps, trial records).

Everything is read through :mod:`mvit_lab.tracking`, the module the sweeps write through. A
sweep is a parent run (tags ``algorithm``, ``search_mode``; params ``experiment.*``) and its
child runs, one per trial (tags ``trial_id``, ``point``, ``seed``, ``status``; params
``model.*``, ``train.*``, ``data.*``; metrics per epoch). Trial records are the dicts of
:func:`mvit_lab.search.records.sweep_records`, with every logged metric, the trial's full
config and its architecture's difference from the search space's base added.

Problems a user can cause (no store, an empty experiment, a missing metric) raise
:class:`DataError`, whose message is shown on the page as it is.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mvit_lab.search.pareto import Objective
from mvit_lab.search.records import SPACE_ARTIFACT, sweep_records, unflatten

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_OBJECTIVES",
    "DataError",
    "StoreReader",
    "Sweep",
    "arch_diff",
    "load_sweep",
    "overview",
    "sense_of",
]

DEFAULT_OBJECTIVES = (Objective("val_top1", "max"), Objective("gflops", "min"),
                      Objective("throughput", "max"))
STATUSES = ("running", "finished", "failed", "pruned", "interrupted")
_MLFLOW_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
                  "FAILED": "failed", "KILLED": "interrupted"}
# metrics where smaller is better, when the sweep does not name them as objectives
_SMALLER_IS_BETTER = ("gflops", "params", "latency", "loss", "seconds", "memory")
# logged per epoch or as bookkeeping; not something to put on an axis
_NOT_AXES = ("epoch", "epochs", "lr", "num_classes")


class DataError(ValueError):
    """A problem with the store or with what was asked of it, worded for the page."""


def sense_of(name: str, objectives: Iterable[Objective] = ()) -> str:
    """``max`` or ``min``: the sweep's own sense for an objective, else a guess from the name."""
    for objective in objectives:
        if objective.name == name:
            return objective.sense
    return "min" if any(word in name for word in _SMALLER_IS_BETTER) else "max"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def arch_diff(model: dict[str, Any], base: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """``(knob, base value, value)`` for every knob of ``model`` that differs from ``base``."""
    if not base:
        return []
    return [(k, base.get(k), v) for k, v in model.items() if not _same(base.get(k), v)]


# -- the store ------------------------------------------------------------------------------------
def _read_runs(uri: str, experiment: str) -> pd.DataFrame:
    from mvit_lab.tracking import runs_dataframe

    try:
        return runs_dataframe(uri, experiment)
    except ValueError as err:
        raise DataError(str(err)) from err
    except Exception as err:  # an unreachable server, a broken database
        raise DataError(f"cannot read experiment {experiment!r} from {uri}: "
                        f"{_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _experiments(uri: str) -> list[dict[str, str]]:
    from mvit_lab.tracking import list_experiments

    try:
        return list_experiments(uri)
    except ValueError as err:
        raise DataError(f"{err}. Run a sweep first (make quickstart, or mvit-lab sweep "
                        "experiments/quickstart.yaml), or give --tracking-uri.") from err
    except Exception as err:
        raise DataError(f"cannot reach the MLflow store {uri}: {_first_line(err)}") from err


def _trial_rows(runs: pd.DataFrame) -> pd.DataFrame:
    if not len(runs) or "parent_run_id" not in runs:
        return runs.iloc[0:0]
    return runs[runs["parent_run_id"].notna()]


def _sweep_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Every sweep of an experiment: parent runs, and parents referenced by trials, newest
    first, each with ``run_id``, ``name`` and ``start_time``."""
    if not len(runs):
        return []
    trials = _trial_rows(runs)
    parent_ids = set(trials["parent_run_id"])
    is_trial = runs["run_id"].isin(trials["run_id"])
    has_trial_tag = runs["tag.trial_id"].notna() if "tag.trial_id" in runs else False
    parents = runs[~is_trial & ~has_trial_tag]
    out = {row["run_id"]: dict(run_id=row["run_id"], name=row["run_name"] or row["run_id"],
                               start_time=row["start_time"]) for _, row in parents.iterrows()}
    for parent in parent_ids - set(out):  # a parent run that was deleted
        starts = trials.loc[trials["parent_run_id"] == parent, "start_time"]
        out[parent] = dict(run_id=parent, name=f"sweep {parent[:8]}", start_time=starts.min())
    return sorted(out.values(), key=lambda s: (pd.isna(s["start_time"]), s["start_time"]),
                  reverse=True)


def _status(row: pd.Series | dict[str, Any]) -> str:
    tag = _text(row.get("tag.status"))
    return tag or _MLFLOW_STATUS.get(row.get("status"), str(row.get("status")).lower())


def _counts(trials: pd.DataFrame) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES[:4], 0)
    for _, row in trials.iterrows():
        status = _status(row)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _sweep_frame(runs: pd.DataFrame, parent_run_id: str) -> pd.DataFrame:
    """The parent run and the trials of one sweep, in the store's order."""
    mask = runs["run_id"] == parent_run_id
    if "parent_run_id" in runs:
        mask |= runs["parent_run_id"] == parent_run_id
    return runs[mask]


def _fingerprint(runs: pd.DataFrame) -> str:
    """Changes whenever a run starts or ends, or logs a metric, a tag or a param."""
    if not len(runs):
        return "empty"
    cols = [c for c in runs.columns if c not in ("start_time", "end_time")]
    text = runs[cols].astype(str).to_json(orient="values")
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def overview(uri: str, runs_of: Any = None) -> list[dict[str, Any]]:
    """One row per experiment with runs: its id, how many sweeps, trial counts by status.

    ``runs_of(experiment)`` reads an experiment's runs (default: straight from the store).
    """
    read = runs_of or (lambda name: _read_runs(uri, name))
    rows = []
    for exp in _experiments(uri):
        runs = read(exp["name"])
        if not len(runs):
            continue
        trials = _trial_rows(runs)
        rows.append(dict(name=exp["name"], experiment_id=exp["experiment_id"],
                         sweeps=len(_sweep_rows(runs)), trials=len(trials),
                         counts=_counts(trials), last_start=runs["start_time"].max()))
    return rows


# -- one sweep ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sweep:
    """One sweep read back: its objectives, its base architecture and its trial records."""

    tracking_uri: str
    experiment: str
    experiment_id: str | None
    parent_run_id: str | None
    name: str
    mode: str | None  # params | grid | ladder (None if the sweep did not say)
    objectives: tuple[Objective, ...]
    base: dict[str, Any] | None  # the search space's base ArchConfig, as a dict
    base_source: str  # where the base came from, or why it is unknown
    records: list[dict[str, Any]]
    counts: dict[str, int]
    fingerprint: str
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # every sweep of the experiment
    parent_status: str | None = None  # the sweep's parent run: running while its driver runs
    # what the views computed from this sweep (see ``memo``): a refresh that changed nothing
    # hands the same Sweep back, so its figures' data is not computed again
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, key: Any, build: Any) -> Any:
        """``build()``, computed once per ``key`` for this sweep. A Sweep's records are not
        changed once built (a refresh builds a new Sweep), so the key names only what else
        the value depends on (a view's axes, say). Treat the value as read-only."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = build()
            return value

    @property
    def running(self) -> bool:
        return self.counts.get("running", 0) > 0

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == "finished" and not r["truncated"]]

    def metrics(self) -> list[str]:
        """The numeric metrics the finished trials logged, the objectives first."""
        return list(self.memo(("metrics",), self._metrics))

    def _metrics(self) -> list[str]:
        logged: dict[str, None] = {}
        for rec in self.finished:
            logged.update((k, None) for k in rec.get("metric_names", ()) if k not in _NOT_AXES)
        first = [o.name for o in self.objectives if o.name in logged]
        return first + [k for k in logged if k not in first]

    def knobs(self) -> list[str]:
        """Model knobs and ``train.*`` keys whose value differs between the trials."""
        return list(self.memo(("knobs",), self._knobs))

    def _knobs(self) -> list[str]:
        out = []
        for group, prefix in (("model", ""), ("train", "train.")):
            values: dict[str, set[str]] = {}
            for rec in self.records:
                for key, value in (rec.get(group) or {}).items():
                    values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
            out += [prefix + k for k, v in values.items() if len(v) > 1 and k != "seed"]
        return out

    def objective(self, name: str) -> Objective:
        return Objective(name, sense_of(name, self.objectives))

    def describe_counts(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "no trials"


def _objectives(parent: dict[str, str], order: str | None = None) -> tuple[Objective, ...]:
    """The sweep's objectives in the experiment's order (the parent run's ``objectives`` tag,
    ``name:sense,...``). Sweeps from before that tag: params come back sorted by name, so a
    top-1 metric (else the first ``max`` one) leads."""
    if order:
        try:
            return tuple(Objective(*item.split(":", 1)) for item in order.split(","))
        except (TypeError, ValueError):
            pass  # a hand-edited tag: fall back to the params
    named = unflatten(parent, "experiment.objectives.")
    try:
        objectives = [Objective(k, v) for k, v in named.items()]
    except ValueError:
        return DEFAULT_OBJECTIVES
    if not objectives:
        return DEFAULT_OBJECTIVES
    lead = next((o for o in objectives if "top1" in o.name),
                next((o for o in objectives if o.sense == "max"), objectives[0]))
    return (lead, *(o for o in objectives if o is not lead))


def _space_tree(parent: dict[str, str], search_dirs: Sequence[Path],
                logged: Any = None) -> tuple[Any, str]:
    """The sweep's search space: ``logged`` (the parent run's ``search_space.json``), else as
    in its params: inline (flattened), or a file path, looked for relative to
    ``search_dirs``."""
    from mvit_lab.configfile import safe_load

    if isinstance(logged, dict):
        return logged, "the search space logged on the sweep's parent run"
    text = parent.get("experiment.search")
    if text is None:
        tree = unflatten(parent, "experiment.search.")
        if tree:
            return tree, "the search space logged on the sweep's parent run"
        return None, "the sweep's parent run logged no search space"
    rel = Path(text)
    # lexically normalised: "experiments/../search_spaces/x.yaml" without needing experiments/
    candidates = [rel] if rel.is_absolute() else [
        Path(os.path.normpath(Path(d) / rel)) for d in search_dirs]
    for path in candidates:
        if path.is_file():
            return safe_load(path.read_text()), f"search space file {path}"
    where = ", ".join(str(d) for d in search_dirs)
    return None, (f"the sweep's search space file {text!r} is not found from {where}; run the "
                  "dashboard from the directory the sweep ran in")


def _base(parent: dict[str, str], search_dirs: Sequence[Path],
          logged: Any = None) -> tuple[dict | None, str]:
    """The search space's base architecture (space base over the experiment's model)."""
    from mvit_lab.config import ArchConfig
    from mvit_lab.search.space import Point, parse_space, resolve_point

    if not parent:
        return None, "the sweep's parent run is missing"
    tree, source = _space_tree(parent, search_dirs, logged)
    if tree is None:
        return None, source
    try:
        model = ArchConfig(**unflatten(parent, "experiment.model."))
        cfg = resolve_point(parse_space(tree), model, Point("base", {}, {}))
    except (ValueError, TypeError) as err:
        return None, f"the base architecture cannot be rebuilt from {source}: {err}"
    return cfg.to_dict(), source


def _trial_records(trials: pd.DataFrame | list[dict[str, Any]],
                   objectives: tuple[Objective, ...],
                   base: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The records of ``trials``: a runs frame, or its rows as dicts (``flat_rows``)."""
    rows = trials.to_dict("records") if isinstance(trials, pd.DataFrame) else trials
    records = sweep_records(rows, objectives)
    memo: dict[str, tuple] = {}  # logged texts parsed once (see records.unflatten)
    for rec, row in zip(records, rows):
        rec["status"] = _status(row)
        for key in ("run_name", "point", "seed", "ladder_step", "design_space", "reason"):
            rec[key] = _text(rec.get(key))
        params = {c[len("param."):]: v for c, v in row.items()
                  if c.startswith("param.") and isinstance(v, str)}
        rec["config"] = unflatten(params, "", memo)
        rec["train"] = rec["config"].get("train") or {}
        rec["trial_id"] = _text(row.get("tag.trial_id"))
        rec["start_time"] = row.get("start_time")
        rec["end_time"] = row.get("end_time")
        names = []
        for col, value in row.items():
            if col.startswith("metric.") and isinstance(value, (int, float)) \
                    and math.isfinite(value):
                name = col[len("metric."):]
                names.append(name)
                rec.setdefault(name, float(value))
        rec["metric_names"] = names
    _set_diffs(records, rows, base)
    return records


def _set_diffs(records: list[dict[str, Any]], rows: list[dict[str, Any]],
               base: dict[str, Any] | None) -> None:
    """``rec["diff"] = arch_diff(rec["model"], base)`` for every record, with each distinct
    logged value turned into canonical JSON once: a sweep repeats a few values per knob
    thousands of times, and two ``json.dumps`` per knob per trial took seconds at 5,000."""
    if not base:
        for rec in records:
            rec["diff"] = []
        return
    base_text = {k: json.dumps(v, sort_keys=True) for k, v in base.items()}
    canonical: dict[str, str] = {}  # a logged param's text -> its value's canonical JSON
    for rec, row in zip(records, rows):
        diff = []
        for knob, value in rec["model"].items():  # each parsed from param.model.<knob>
            text = row[f"param.model.{knob}"]
            same = canonical.get(text)
            if same is None:
                same = canonical[text] = json.dumps(value, sort_keys=True)
            if same != base_text.get(knob, "null"):  # a knob the base lacks: None
                diff.append((knob, base.get(knob), value))
        rec["diff"] = diff


def load_sweep(uri: str, experiment: str, parent_run_id: str | None = None,
               search_dirs: Sequence[Path] | None = None,
               runs: pd.DataFrame | None = None, fingerprint: str | None = None) -> Sweep:
    """A sweep of ``experiment`` (the newest if ``parent_run_id`` is None) read back.

    ``search_dirs``: where to look for a search space file the sweep names by a relative path
    (default: the working directory and its ``experiments/``). ``fingerprint``: the caller's
    own (hashing every row of a large sweep takes seconds).
    """
    runs = _read_runs(uri, experiment) if runs is None else runs
    sweeps = _sweep_rows(runs)
    parent_run_id = _chosen(experiment, sweeps, parent_run_id)
    parent_row = runs[runs["run_id"] == parent_run_id]
    trials = _trial_rows(runs)
    trials = trials[trials["parent_run_id"] == parent_run_id]
    return _build_sweep(
        uri, experiment, runs.attrs.get("experiment_id"), parent_run_id, sweeps,
        parent_row.iloc[0].to_dict() if len(parent_row) else None, trials.to_dict("records"),
        search_dirs, fingerprint or (lambda: _fingerprint(_sweep_frame(runs, parent_run_id))))


def _chosen(experiment: str, sweeps: list[dict[str, Any]], parent_run_id: str | None) -> str:
    """The sweep asked for (the newest if ``parent_run_id`` is None); a DataError if none."""
    if not sweeps:
        raise DataError(f"experiment {experiment!r} has no sweeps yet: start one with "
                        "mvit-lab sweep; this page updates by itself")
    if parent_run_id is None:
        return sweeps[0]["run_id"]
    if not any(s["run_id"] == parent_run_id for s in sweeps):
        raise DataError(f"experiment {experiment!r} has no sweep with parent run "
                        f"{parent_run_id!r}")
    return parent_run_id


def _build_sweep(uri: str, experiment: str, experiment_id: str | None, parent_run_id: str,
                 sweeps: list[dict[str, Any]], parent_row: dict[str, Any] | None,
                 trial_rows: list[dict[str, Any]], search_dirs: Sequence[Path] | None,
                 fingerprint: Any) -> Sweep:
    """The :class:`Sweep` from its parent run's row and its trials' rows, each a dict with
    the :func:`mvit_lab.tracking.runs_dataframe` columns as keys (a frame's rows, or
    :func:`mvit_lab.tracking.flat_rows`, which leave out what a run did not log).
    ``fingerprint``: a string, or a function computing it."""
    if search_dirs is None:
        search_dirs = [Path.cwd() / "experiments", Path.cwd()]
    chosen = next(s for s in sweeps if s["run_id"] == parent_run_id)
    parent: dict[str, str] = {}
    mode = order = parent_status = None
    if parent_row is not None:
        row = parent_row
        parent_status = _MLFLOW_STATUS.get(row.get("status"), str(row.get("status")).lower())
        parent = {c[len("param."):]: v for c, v in row.items()
                  if c.startswith("param.") and isinstance(v, str)}
        mode = _text(row.get("tag.search_mode"))
        order = _text(row.get("tag.objectives"))
    if mode is None and trial_rows:
        mode = _text(trial_rows[0].get("tag.search_mode"))
    objectives = _objectives(parent, order)
    logged = None
    if parent_row is not None:
        from mvit_lab.tracking import load_json_artifact

        try:
            logged = load_json_artifact(uri, parent_run_id, SPACE_ARTIFACT)
        except Exception as err:  # an unreadable artifact store: fall back to the params
            log.warning("search space artifact of %s not read: %s", parent_run_id, err)
    base, base_source = _base(parent, search_dirs, logged)
    records = _trial_records(trial_rows, objectives, base)
    return Sweep(tracking_uri=uri, experiment=experiment, experiment_id=experiment_id,
                 parent_run_id=parent_run_id, name=chosen["name"], mode=mode,
                 objectives=objectives, base=base, base_source=base_source,
                 records=records, counts=_counts_of(records),
                 fingerprint=fingerprint if isinstance(fingerprint, str) else fingerprint(),
                 sweeps=sweeps, parent_status=parent_status)


def _counts_of(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES[:4], 0)
    for rec in records:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return counts


def _row_status(row: dict[str, Any]) -> str:
    tag = _text(row["tags"].get("status"))
    return tag or _MLFLOW_STATUS.get(row["status"], str(row["status"]).lower())


def _ts(ms: Any) -> pd.Timestamp:
    return pd.NaT if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def _sweep_key(row: dict[str, Any]) -> tuple:
    """What a run's place in the sweep list depends on (``_mini_frame``'s columns)."""
    from mvit_lab.tracking import PARENT_TAG

    return (row["run_name"], row["start_time"], row["tags"].get(PARENT_TAG),
            row["tags"].get("trial_id"))


def _mini_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """What ``_sweep_rows`` needs of every run, without the params and metrics."""
    from mvit_lab.tracking import PARENT_TAG

    return pd.DataFrame(
        [dict(run_id=r["run_id"], run_name=r["run_name"], start_time=_ts(r["start_time"]),
              parent_run_id=r["tags"].get(PARENT_TAG), **{"tag.trial_id": r["tags"].get(
                  "trial_id")}) for r in rows],
        columns=["run_id", "run_name", "start_time", "parent_run_id", "tag.trial_id"])


class StoreReader:
    """Reads a store for the live dashboard, incrementally and narrowly.

    Each experiment's runs are kept as rows (:func:`mvit_lab.tracking.runs_cache`): a refresh
    (at most every ``max_age_s``) asks the store whether anything started, ended, logged or
    runs, and re-reads only those runs. A sweep's records are rebuilt only for the runs that
    changed since it was last built; the overview's counts only for experiments that changed.
    ``runs()`` builds the full frame only when asked for it.
    """

    def __init__(self, uri: str, search_dirs: Sequence[Path] | None = None,
                 max_age_s: float = 1.0, full_every_s: float = 300.0,
                 freeze_gc: bool = False) -> None:
        from mvit_lab.tracking import resolve_tracking_uri

        self.uri = resolve_tracking_uri(uri)
        self.search_dirs = search_dirs
        self.max_age_s = max_age_s
        self.full_every_s = full_every_s
        self._lock = threading.RLock()
        self._caches: dict[str, Any] = {}
        self._checked: dict[str, float] = {}
        self._frames: dict[str, tuple[int, pd.DataFrame]] = {}
        self._minis: dict[str, tuple[int, pd.DataFrame]] = {}
        # experiment -> (cache version, its sweeps, each run's _sweep_key)
        self._sweep_lists: dict[str, tuple[int, list[dict[str, Any]], dict[str, tuple]]] = {}
        self._overview: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._sweeps: dict[tuple[str, str | None], tuple[int, Sweep]] = {}
        self.reads = 0  # store refreshes made, for tests and the status line
        self.freeze_gc = freeze_gc
        self._settled = 0  # the full reads made when the collector last settled

    def _cache(self, experiment: str) -> Any:
        from mvit_lab.tracking import runs_cache

        with self._lock:
            cache = self._caches.get(experiment)
            try:
                if cache is None:
                    cache = self._caches[experiment] = runs_cache(self.uri, experiment,
                                                                  self.full_every_s)
                now = time.monotonic()
                if now - self._checked.get(experiment, -math.inf) >= self.max_age_s:
                    cache.refresh()
                    self._checked[experiment] = now
                    self.reads += 1
            except ValueError as err:
                raise DataError(str(err)) from err
            except Exception as err:  # an unreachable server, a broken database
                raise DataError(f"cannot read experiment {experiment!r} from {self.uri}: "
                                f"{_first_line(err)}") from err
            return cache

    def runs(self, experiment: str) -> pd.DataFrame:
        """Every run of ``experiment`` as the :func:`mvit_lab.tracking.runs_dataframe`
        frame (built again only when a run changed)."""
        from mvit_lab.tracking import frame_from_rows

        with self._lock:
            cache = self._cache(experiment)
            cached = self._frames.get(experiment)
            if cached is None or cached[0] != cache.version:
                cached = (cache.version, frame_from_rows(list(cache.rows.values()),
                                                         cache.experiment_id))
                self._frames[experiment] = cached
            return cached[1]

    def runs_of(self, experiment: str, run_ids: Iterable[str]) -> pd.DataFrame:
        """The rows of ``run_ids`` alone, as :meth:`runs` has them: a view that needs a few
        runs (a sweep's parent) does not build the frame of every run of the experiment."""
        from mvit_lab.tracking import frame_from_rows

        wanted = set(run_ids)
        with self._lock:
            cache = self._cache(experiment)
            return frame_from_rows([r for r in cache.rows.values() if r["run_id"] in wanted],
                                   cache.experiment_id)

    def _sweep_list(self, experiment: str, cache: Any) -> list[dict[str, Any]]:
        """``_sweep_rows`` of the experiment, computed again only when a run came or went or
        changed its name, start or sweep (not on every logged epoch of a live sweep)."""
        cached = self._sweep_lists.get(experiment)
        if cached is not None and cached[0] != cache.version:
            keys = cached[2]
            moved = [k for k, v in cache.touched.items() if v > cached[0]]
            if all(k in keys and k in cache.rows and _sweep_key(cache.rows[k]) == keys[k]
                   for k in moved):
                cached = self._sweep_lists[experiment] = (cache.version, *cached[1:])
        if cached is None or cached[0] != cache.version:
            cached = (cache.version, _sweep_rows(self._mini(experiment, cache)),
                      {k: _sweep_key(r) for k, r in cache.rows.items()})
            self._sweep_lists[experiment] = cached
        return cached[1]

    def _mini(self, experiment: str, cache: Any) -> pd.DataFrame:
        cached = self._minis.get(experiment)
        if cached is None or cached[0] != cache.version:
            cached = (cache.version, _mini_frame(cache.rows.values()))
            self._minis[experiment] = cached
        return cached[1]

    def overview(self) -> list[dict[str, Any]]:
        """:func:`overview` of the store, each experiment's row rebuilt only when it changed."""
        from mvit_lab.tracking import PARENT_TAG

        out = []
        for exp in _experiments(self.uri):
            with self._lock:
                cache = self._cache(exp["name"])
                cached = self._overview.get(exp["name"])
                if cached is None or cached[0] != cache.version:
                    row = None
                    if cache.rows:
                        trials = [r for r in cache.rows.values() if r["tags"].get(PARENT_TAG)]
                        row = dict(name=exp["name"], experiment_id=exp["experiment_id"],
                                   sweeps=len(self._sweep_list(exp["name"], cache)),
                                   trials=len(trials),
                                   counts=_counts_of(dict(status=_row_status(r))
                                                     for r in trials),
                                   last_start=_ts(max(r["start_time"] or 0
                                                      for r in cache.rows.values())))
                    cached = (cache.version, row)
                    self._overview[exp["name"]] = cached
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def sweep(self, experiment: str, parent_run_id: str | None = None) -> Sweep:
        """A sweep of ``experiment`` (the newest if ``parent_run_id`` is None), its records
        rebuilt only for the runs that changed since the last call."""
        from mvit_lab.tracking import PARENT_TAG, flat_rows

        with self._lock:
            cache = self._cache(experiment)
            sweeps = self._sweep_list(experiment, cache)
            if parent_run_id is None:
                parent_run_id = sweeps[0]["run_id"] if sweeps else None
            key = (experiment, parent_run_id)
            cached = self._sweeps.get(key)
            if cached is not None and cached[0] == cache.version \
                    and len(cached[1].sweeps) == len(sweeps):
                return cached[1]
            mine = [r for r in cache.rows.values() if r["run_id"] == parent_run_id
                    or r["tags"].get(PARENT_TAG) == parent_run_id]
            touched = set() if cached is None else {
                k for k, v in cache.touched.items() if v > cached[0]}
            fingerprint = hashlib.sha1(
                f"{experiment}|{parent_run_id}|{cache.version}|{cache.token}".encode()
            ).hexdigest()[:16]
            if cached is None or parent_run_id in touched or not sweeps:
                # straight from the rows: no frame of every run's every column
                parent_run_id = _chosen(experiment, sweeps, parent_run_id)
                flat = flat_rows(mine)
                sweep = _build_sweep(
                    self.uri, experiment, cache.experiment_id, parent_run_id, sweeps,
                    next((r for r in flat if r["run_id"] == parent_run_id), None),
                    [r for r in flat if r["parent_run_id"] == parent_run_id],
                    self.search_dirs, fingerprint)
            else:
                old = cached[1]
                ids = {r["run_id"] for r in mine} - {parent_run_id}
                if not touched & (ids | {rec["run_id"] for rec in old.records}):
                    sweep = dataclasses.replace(old, sweeps=sweeps)
                    sweep._memo.update(old._memo)  # the same records: the same views
                else:
                    by_id = {rec["run_id"]: rec for rec in old.records if rec["run_id"] in ids}
                    redo = [r for r in mine if r["run_id"] in touched and r["run_id"] in ids]
                    for rec in _trial_records(flat_rows(redo), old.objectives, old.base):
                        by_id[rec["run_id"]] = rec
                    records = [by_id[r["run_id"]] for r in mine if r["run_id"] in by_id]
                    sweep = dataclasses.replace(old, records=records,
                                                counts=_counts_of(records),
                                                fingerprint=fingerprint, sweeps=sweeps)
            self._sweeps[key] = (cache.version, sweep)
            self._settle()
            return sweep

    def _settle(self) -> None:
        """With ``freeze_gc`` (the dashboard's own process): after a full read, collect once
        and freeze what survives (``gc.freeze``), so that the rows and records of thousands of
        runs a reader keeps are not traversed by every later full collection (0.3 CPU-s at
        5,000 runs, every few ticks of a live sweep). Done again at each full read (unfreeze,
        collect, freeze), so cyclic garbage waits at most until then; acyclic garbage (replaced
        rows and records) is freed as always, by reference counting."""
        full = sum(c.full_reads for c in self._caches.values())
        if self.freeze_gc and full != self._settled:
            self._settled = full
            gc.unfreeze()
            gc.collect()
            gc.freeze()
