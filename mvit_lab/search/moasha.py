"""MOASHA: asynchronous successive halving over several objectives, as a Ray Tune scheduler.

::

    scheduler: {type: moasha, grace_period: 1, reduction_factor: 3, max_t: 9, brackets: 1,
                ranking: nds, stop_ladder: false}

Rungs sit at ``grace_period * reduction_factor ** k`` epochs (``k = s, s + 1, ...`` in bracket
``s``) below ``max_t``. When a trial first reports an epoch at or past a rung, its objective
vector (the rung's accuracy, and the costs, which trials report from epoch 1 on) is ranked
against every vector recorded at that rung so far (:mod:`mvit_lab.search.rung_rank`): the
trial continues when it is in the top ``1 / reduction_factor`` (at least the best one),
otherwise it is stopped there. Decisions are asynchronous and final, as in ASHA (Li et al.
2020): no trial waits for a rung to fill.

A trial reaching ``max_t`` is never stopped by the scheduler: it ends by itself, so its last
report is its real final result. A stopped trial is told so before Ray stops it: the scheduler
writes ``stopped.json`` (rung, epoch, place) into the trial's folder, and the trial records
itself as ``stopped``, ``truncated`` (see :mod:`mvit_lab.search.trial`). Ladder steps are
never stopped unless ``stop_ladder`` is true. The rungs are kept in ``moasha.json`` in the
sweep folder, so a resumed sweep ranks against everything recorded before the interruption.
Trials are keyed by their stable id (``trial_key`` in each report), not Ray's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

from mvit_lab.search.pareto import Objective
from mvit_lab.search.rung_rank import RANKINGS, rung_positions

__all__ = ["STOPPED", "MOASHAConfig", "MOASHAScheduler", "parse_moasha"]

log = logging.getLogger(__name__)

STOPPED = "stopped.json"  # in a trial's folder: the scheduler stopped it (read by the trial)
STATE = "moasha.json"
KEYS = ("type", "grace_period", "reduction_factor", "max_t", "brackets", "ranking", "weights",
        "stop_ladder", "time_attr")


@dataclass(frozen=True)
class MOASHAConfig:
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_t: int = 9
    brackets: int = 1
    ranking: str = "nds"
    weights: tuple[float, ...] | None = None
    stop_ladder: bool = False
    time_attr: str = "epoch"

    def __post_init__(self) -> None:
        for name, low in (("grace_period", 1), ("max_t", 1), ("brackets", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"scheduler.{name}: must be an integer >= {low}, got {value!r}")
        rf = self.reduction_factor
        if isinstance(rf, bool) or not isinstance(rf, (int, float)) or not rf > 1 or \
                not math.isfinite(rf):
            raise ValueError(f"scheduler.reduction_factor: must be a number > 1, got {rf!r}")
        if self.grace_period >= self.max_t:
            raise ValueError(f"scheduler.grace_period: {self.grace_period} leaves no rung "
                             f"below max_t {self.max_t}")
        if self.ranking not in RANKINGS:
            raise ValueError(f"scheduler.ranking: must be one of {', '.join(RANKINGS)}, got "
                             f"{self.ranking!r}")
        if self.weights is not None and self.ranking != "linear":
            raise ValueError("scheduler.weights: only ranking: linear takes weights")
        if not isinstance(self.stop_ladder, bool):
            raise ValueError(f"scheduler.stop_ladder: must be true or false, got "
                             f"{self.stop_ladder!r}")
        if len(self.rungs(self.brackets - 1)) == 0:
            raise ValueError(f"scheduler.brackets: bracket {self.brackets - 1} has no rung "
                             f"below max_t {self.max_t} (grace_period {self.grace_period}, "
                             f"reduction_factor {rf:g})")

    def rungs(self, bracket: int) -> list[int]:
        """The epochs where bracket ``bracket`` decides, ascending (all below ``max_t``)."""
        out, k = [], bracket
        while True:
            milestone = round(self.grace_period * self.reduction_factor ** k)
            if milestone >= self.max_t:
                return out
            if not out or milestone > out[-1]:
                out.append(milestone)
            k += 1


def parse_moasha(tree: Any, objectives: Sequence[Objective], epochs: int) -> MOASHAConfig:
    """The ``scheduler`` section of type ``moasha``, checked against the objectives and the
    training budget (``max_t`` defaults to ``train.epochs`` and may not exceed it)."""
    unknown = sorted(set(tree) - set(KEYS))
    if unknown:
        raise ValueError(f"scheduler.{unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    args = {k: v for k, v in tree.items() if k != "type"}
    args.setdefault("max_t", epochs)
    if isinstance(args["max_t"], int) and args["max_t"] > epochs:
        raise ValueError(f"scheduler.max_t: {args['max_t']} is more than train.epochs "
                         f"({epochs}); no trial reaches it")
    weights = args.get("weights")
    if weights is not None:
        if not isinstance(weights, list) or len(weights) != len(objectives) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                for w in weights) or not sum(weights) > 0:
            raise ValueError(f"scheduler.weights: one number >= 0 per objective "
                             f"({len(objectives)}), not all 0; got {weights!r}")
        args["weights"] = tuple(float(w) for w in weights)
    if args.get("time_attr", "epoch") != "epoch":
        raise ValueError("scheduler.time_attr: trials count their budget in epochs; only "
                         "'epoch' is supported")
    return MOASHAConfig(**args)


class MOASHAScheduler(FIFOScheduler):
    """The Ray Tune scheduler; see the module docstring.

    ``trials_dir`` receives the stop notes (``<trial_key>/stopped.json``) and ``state_dir``
    the rungs (``moasha.json``); both None keeps everything in memory (the replay benchmark).
    """

    def __init__(self, config: MOASHAConfig, objectives: Sequence[Objective], *,
                 trials_dir: str | Path | None = None, state_dir: str | Path | None = None,
                 ) -> None:
        super().__init__()
        self.config = config
        self.objectives = tuple(objectives)
        self.trials_dir = None if trials_dir is None else str(trials_dir)
        self.state_dir = None if state_dir is None else str(state_dir)
        self._supports_buffered_results = False  # every epoch's result, one at a time
        self._loaded = False
        # rungs[b][r]: trial key -> objective values recorded at rung r of bracket b
        self.rungs: list[list[dict[str, list[float]]]] = [
            [{} for _ in config.rungs(b)] for b in range(config.brackets)]
        self.stopped: dict[str, dict[str, Any]] = {}  # trial key -> where it stopped
        self.bracket_of: dict[str, int] = {}

    # --- state -----------------------------------------------------------------------------
    def _state_file(self) -> Path | None:
        return None if self.state_dir is None else Path(self.state_dir) / STATE

    def _load(self) -> None:
        """The rungs a previous driver recorded (a resumed sweep), once."""
        if self._loaded:
            return
        self._loaded = True
        path = self._state_file()
        if path is None or not path.is_file():
            return
        state = json.loads(path.read_text())
        if [len(r) for r in state["rungs"]] != [len(r) for r in self.rungs]:
            raise ValueError(f"{path}: recorded with other rungs than this scheduler section")
        self.rungs = state["rungs"]
        self.stopped = state["stopped"]
        self.bracket_of = state["bracket_of"]

    def _save(self) -> None:
        path = self._state_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STATE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(rungs=self.rungs, stopped=self.stopped,
                                       bracket_of=self.bracket_of)))
        os.replace(tmp, path)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its config into tuner.pkl: a restored scheduler reloads moasha.json
        state = dict(self.__dict__)
        state["_loaded"] = False
        return state

    # --- decisions -------------------------------------------------------------------------
    def bracket(self, key: str) -> int:
        """A trial's bracket: drawn from its key (so a resumed sweep agrees), with Ray's
        softmax over the brackets' rung counts."""
        if key not in self.bracket_of:
            sizes = [len(self.config.rungs(b)) for b in range(self.config.brackets)]
            weights = [math.exp(s - max(sizes)) for s in sizes]
            u = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16 ** 12
            acc, choice = 0.0, len(sizes) - 1
            for b, w in enumerate(weights):
                acc += w / sum(weights)
                if u < acc:
                    choice = b
                    break
            self.bracket_of[key] = choice
        return self.bracket_of[key]

    def decide(self, key: str, epoch: float, values: Sequence[float], *,
               protected: bool = False) -> str:
        """CONTINUE or STOP for trial ``key`` reporting ``values`` (one per objective) at
        ``epoch``; records it at the highest rung it reached and has not been ranked at."""
        self._load()
        if key in self.stopped:  # a stopped trial seen again (a resumed or twin draw)
            return TrialScheduler.STOP
        if epoch >= self.config.max_t:
            return TrialScheduler.CONTINUE
        b = self.bracket(key)
        milestones = self.config.rungs(b)
        reached = [r for r, m in enumerate(milestones) if epoch >= m]
        if not reached or key in self.rungs[b][reached[-1]]:
            return TrialScheduler.CONTINUE
        r = reached[-1]
        recorded = self.rungs[b][r]
        keys = [*recorded, key]
        points = [*recorded.values(), [float(v) for v in values]]
        place = rung_positions(points, [o.sense for o in self.objectives],
                               ranking=self.config.ranking, weights=self.config.weights)[-1]
        recorded[key] = points[-1]
        keep = max(1, math.floor(len(keys) / self.config.reduction_factor))
        if place < keep or protected:
            self._save()
            return TrialScheduler.CONTINUE
        self.stopped[key] = dict(rung=r, milestone=milestones[r], epoch=epoch, bracket=b,
                                 place=place, of=len(keys))
        self._save()
        self._note_stop(key)
        return TrialScheduler.STOP

    def _note_stop(self, key: str) -> None:
        if self.trials_dir is None:
            return
        folder = Path(self.trials_dir) / key
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{STOPPED}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.stopped[key]) + "\n")
        os.replace(tmp, folder / STOPPED)

    # --- Ray Tune hooks --------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives come from the experiment, never from TuneConfig

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        key = result.get("trial_key")
        epoch = result.get(self.config.time_attr)
        values = [result.get(o.name) for o in self.objectives]
        if not isinstance(key, str) or result.get("status") != "running" or not isinstance(
                epoch, (int, float)) or any(not isinstance(v, (int, float)) for v in values):
            return TrialScheduler.CONTINUE  # a final, pruned or twin report, or no metrics
        protected = not self.config.stop_ladder and result.get("ladder_step") is not None
        return self.decide(key, float(epoch), values, protected=protected)

    def debug_string(self) -> str:
        parts = []
        for b in range(self.config.brackets):
            parts.append(f"bracket {b}: " + ", ".join(
                f"epoch {m}: {len(self.rungs[b][r])}"
                for r, m in enumerate(self.config.rungs(b))))
        return f"MOASHA: {len(self.stopped)} stopped; " + "; ".join(parts)
