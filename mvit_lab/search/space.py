"""Search spaces: a base architecture and what varies, as plain data.

::

    base: {preset: mvitv2_t, input_size: [1, 32, 32], embed_dim: 32}   # optional
    grid:                       # full factorial; or
      pool_mode: [conv, max, avg]
    ladder:                     # ordered, cumulative, named steps; or
      - {name: a_abs_pos, set: {rel_pos: none, abs_pos: joint}}
    params:                     # Optuna distributions
      embed_dim: {choice: [16, 32, 48]}
      mlp_ratio: {float: [2.0, 4.0]}
      num_heads: {int: [1, 2]}
      train.lr: {log: [1.0e-4, 1.0e-2]}
    constraints: {gflops: {max: 10}, params: {max: 30.0e6}}
    design_spaces:              # or several named spaces, each a base and params, sampled
      mvitv2: {base: {...}, params: {depths: {choice: [[1, 1, 2], [1, 2, 3]]}}}
      hiera: {base: {...}, params: {...}}
    band: {gflops: {min: 0.01, max: 0.04}}   # design_spaces: the complexity band

Keys are ArchConfig knobs, or ``train.<key>`` for the recipe. Exactly one of ``grid``,
``ladder``, ``params`` or ``design_spaces`` (see :mod:`mvit_lab.search.design_spaces`, which
samples each named space within the band). ``validate_points`` builds every grid point and
ladder step before anything runs and lists every one that cannot build.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mvit_lab.config import ArchConfig, knob_names
from mvit_lab.experiment import TrainConfig

__all__ = ["Distribution", "Point", "SearchSpace", "parse_space"]

KINDS = ("choice", "int", "float", "log")
CONSTRAINT_METRICS = ("gflops", "params")


@dataclass(frozen=True)
class Distribution:
    kind: str  # choice | int | float | log
    values: tuple[Any, ...]  # choice: the options; int / float / log: (low, high)

    def draw(self, rng: random.Random) -> Any:
        """One value, from ``rng`` (uniform; log-uniform for ``log``)."""
        if self.kind == "choice":
            return rng.choice(self.values)
        low, high = self.values
        if self.kind == "int":
            return rng.randint(low, high)
        if self.kind == "float":
            return rng.uniform(low, high)
        return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass(frozen=True)
class Point:
    """One architecture (and recipe) to run: the changes from the base, and its name."""

    name: str
    model: dict[str, Any]  # ArchConfig knobs to set on the base
    train: dict[str, Any]  # TrainConfig keys to set
    step: int | None = None  # ladder position
    space: str | None = None  # the named design space it was sampled from


@dataclass(frozen=True)
class SearchSpace:
    base: dict[str, Any]  # ArchConfig knobs (may name a preset) applied before any point
    mode: str  # grid | ladder | params | design_spaces
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    ladder: tuple[tuple[str, dict[str, Any]], ...] = ()
    params: dict[str, Distribution] = field(default_factory=dict)
    constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    # design_spaces: each named space (a params-mode space); ``constraints`` is their band
    spaces: dict[str, SearchSpace] = field(default_factory=dict)

    def points(self) -> list[Point]:
        """The grid's points or the ladder's steps (Optuna spaces have none up front)."""
        if self.mode == "grid":
            keys = list(self.grid)
            out = []
            for combo in itertools.product(*(self.grid[k] for k in keys)):
                change = dict(zip(keys, combo))
                name = ",".join(f"{k}={_short(v)}" for k, v in change.items())
                out.append(_point(name or "base", change))
            return out
        if self.mode == "ladder":
            out, acc = [], {}
            for i, (name, change) in enumerate(self.ladder):
                acc = {**acc, **change}
                out.append(dataclasses.replace(_point(name, acc), step=i))
            return out
        return []  # params: Optuna draws them; design_spaces: sampled by design_spaces.py

    def check_constraints(self, metrics: dict[str, float]) -> list[str]:
        """Broken constraints, as readable strings (empty: the point is allowed)."""
        broken = []
        for metric, bounds in self.constraints.items():
            value = metrics.get(metric)
            if value is None:
                continue
            if "max" in bounds and value > bounds["max"]:
                broken.append(f"{metric} {value:.4g} > max {bounds['max']:.4g}")
            if "min" in bounds and value < bounds["min"]:
                broken.append(f"{metric} {value:.4g} < min {bounds['min']:.4g}")
        return broken


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return str(v)


def _point(name: str, change: dict[str, Any]) -> Point:
    model = {k: v for k, v in change.items() if not k.startswith("train.")}
    train = {k[len("train."):]: v for k, v in change.items() if k.startswith("train.")}
    return Point(name=name, model=model, train=train)


def _check_key(key: Any, where: str) -> None:
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    if not isinstance(key, str):
        raise ValueError(f"{where}: key {key!r} is not a string")
    if key.startswith("train."):
        if key[len("train."):] not in train_keys:
            known = ", ".join(sorted(train_keys))
            raise ValueError(f"{where}.{key}: not a train key (known: {known})")
    elif key not in knob_names():
        raise ValueError(f"{where}.{key}: not an ArchConfig knob or train.<key>")


def parse_space(tree: Any) -> SearchSpace:
    """A SearchSpace from its YAML mapping; every error names the offending entry."""
    if not isinstance(tree, dict):
        raise ValueError("search: must be a mapping with base and one of grid, ladder, params")
    known = {"base", "grid", "ladder", "params", "constraints", "design_spaces", "band"}
    unknown = sorted(set(tree) - known)
    if unknown:
        raise ValueError(f"search.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    modes = [m for m in ("grid", "ladder", "params", "design_spaces") if tree.get(m)]
    if len(modes) != 1:
        raise ValueError("search: needs exactly one of grid, ladder, params, design_spaces; got "
                         f"{modes or 'none'}")
    mode = modes[0]
    if mode == "design_spaces":
        return _parse_design_spaces(tree)
    if "band" in tree:
        raise ValueError("search.band: only a design_spaces search has a band (use "
                         "constraints)")
    base = tree.get("base") or {}
    if not isinstance(base, dict):
        raise ValueError("search.base: must be a mapping of ArchConfig knobs")
    for key in base:
        if key != "preset":
            _check_key(key, "search.base")
    constraints = _parse_constraints(tree.get("constraints") or {})
    if mode == "grid":
        grid = tree["grid"]
        if not isinstance(grid, dict):
            raise ValueError("search.grid: must map knobs to lists of values")
        out = {}
        for key, values in grid.items():
            _check_key(key, "search.grid")
            if not isinstance(values, list) or not values:
                raise ValueError(f"search.grid.{key}: must be a non-empty list of values")
            out[key] = tuple(values)
        return SearchSpace(base=base, mode=mode, grid=out, constraints=constraints)
    if mode == "ladder":
        steps = tree["ladder"]
        if not isinstance(steps, list):
            raise ValueError("search.ladder: must be a list of {name, set} steps")
        ladder, names = [], set()
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or set(step) - {"name", "set"} or "name" not in step:
                raise ValueError(f"search.ladder[{i}]: must be {{name: ..., set: {{...}}}}")
            change = step.get("set") or {}
            if not isinstance(change, dict):
                raise ValueError(f"search.ladder[{i}].set: must be a mapping")
            for key in change:
                _check_key(key, f"search.ladder[{i}].set")
            if step["name"] in names:
                raise ValueError(f"search.ladder[{i}].name: {step['name']!r} is used twice")
            names.add(step["name"])
            ladder.append((str(step["name"]), dict(change)))
        return SearchSpace(base=base, mode=mode, ladder=tuple(ladder), constraints=constraints)
    params = {}
    if not isinstance(tree["params"], dict):
        raise ValueError("search.params: must map knobs to distributions")
    for key, spec in tree["params"].items():
        _check_key(key, "search.params")
        params[key] = _parse_distribution(key, spec)
    return SearchSpace(base=base, mode=mode, params=params, constraints=constraints)


def _parse_design_spaces(tree: dict[str, Any]) -> SearchSpace:
    for key in ("base", "params", "constraints"):
        if key in tree:
            raise ValueError(f"search.{key}: a design_spaces search gives each named space its "
                             "own base and params, and one band for all (search.band)")
    named = tree["design_spaces"]
    if not isinstance(named, dict):
        raise ValueError("search.design_spaces: must map space names to {base: ..., params: ...}")
    if "band" not in tree:
        raise ValueError("search.band: a design_spaces search needs a complexity band, e.g. "
                         "{gflops: {min: 0.01, max: 0.04}}")
    spaces = {}
    for name, sub in named.items():
        where = f"search.design_spaces.{name}"
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{where}: a space name must be letters, digits, _ or -")
        if not isinstance(sub, dict) or set(sub) - {"base", "params"} or not sub.get("params"):
            raise ValueError(f"{where}: must be {{base: {{...}}, params: {{knob: distribution}}}}")
        try:
            spaces[name] = parse_space(sub)
        except ValueError as err:  # "search.params.x: ..." -> "search.design_spaces.n.params.x"
            raise ValueError(str(err).replace("search.", f"{where}.", 1)) from None
    if len(spaces) < 1:
        raise ValueError("search.design_spaces: name at least one space")
    band = _parse_constraints(tree["band"], "search.band")
    if not band:
        raise ValueError("search.band: must bound gflops and/or params")
    return SearchSpace(base={}, mode="design_spaces", constraints=band, spaces=spaces)


def _parse_distribution(key: str, spec: Any) -> Distribution:
    where = f"search.params.{key}"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"{where}: must be one of {{choice: [...]}}, {{int: [low, high]}}, "
                         "{float: [low, high]}, {log: [low, high]}")
    (kind, values), = spec.items()
    if kind not in KINDS:
        raise ValueError(f"{where}: unknown distribution {kind!r} (known: {', '.join(KINDS)})")
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}.{kind}: must be a non-empty list")
    if kind == "choice":
        return Distribution(kind, tuple(values))
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{where}.{kind}: must be [low, high] numbers, got {values}")
    low, high = values
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise ValueError(f"{where}.int: bounds must be integers, got {values}")
    if not low < high:
        raise ValueError(f"{where}.{kind}: low {low} must be below high {high}")
    if kind == "log" and low <= 0:
        raise ValueError(f"{where}.log: bounds must be > 0, got {values}")
    return Distribution(kind, (low, high))


def _parse_constraints(tree: Any, where: str = "search.constraints"
                       ) -> dict[str, dict[str, float]]:
    if not isinstance(tree, dict):
        raise ValueError(f"{where}: must map gflops / params to {{max: ..., min: ...}}")
    out = {}
    for metric, bounds in tree.items():
        if metric not in CONSTRAINT_METRICS:
            raise ValueError(f"{where}.{metric}: only "
                             f"{', '.join(CONSTRAINT_METRICS)} can be constrained before training")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"max", "min"}:
            raise ValueError(f"{where}.{metric}: must be {{max: ..., min: ...}}")
        for k, v in bounds.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{where}.{metric}.{k}: must be a number, got {v!r}")
        if "min" in bounds and "max" in bounds and not bounds["min"] < bounds["max"]:
            raise ValueError(f"{where}.{metric}: min {bounds['min']} must be below max "
                             f"{bounds['max']}")
        out[metric] = {k: float(v) for k, v in bounds.items()}
    return out


def resolve_point(space: SearchSpace, model_base: ArchConfig, point: Point) -> ArchConfig:
    """The point's validated ArchConfig: the experiment's model, the space's base, the point."""
    from mvit_lab.presets import get_config

    base = dict(space.spaces[point.space].base if point.space else space.base)
    preset = base.pop("preset", None)
    cfg = get_config(str(preset)).replace(**base) if preset else model_base.replace(**base)
    return cfg.replace(**point.model) if point.model else cfg


def validate_points(space: SearchSpace, model_base: ArchConfig,
                    check: Callable[[ArchConfig], Any] | None = None) -> list[str]:
    """Every grid point or ladder step that cannot build (or that ``check`` rejects with a
    ``ValueError``), as ``name: error`` lines."""
    problems = []
    for point in space.points():
        try:
            cfg = resolve_point(space, model_base, point)
            if check is not None:
                check(cfg)
        except ValueError as err:
            problems.append(f"{point.name}: {err}")
    return problems
