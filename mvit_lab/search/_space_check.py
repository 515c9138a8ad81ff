"""Checking an Optuna ``params`` space before anything runs.

A grid's points are all built up front (``validate_points``). An Optuna space has no points
until the sampler draws them, so: a space of ``choice`` and ``int`` knobs small enough to
enumerate is enumerated and every point built, exactly like a grid (one unbuildable point
refuses the space, naming it); any other space is checked on a seeded sample of draws. A
sample where most points cannot build is refused; otherwise the unbuildable fraction is
reported (those draws become failed trials).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mvit_lab.config import ArchConfig
from mvit_lab.search.space import Distribution, Point, SearchSpace, resolve_point

__all__ = ["MAX_ENUMERATED", "SAMPLE_DRAWS", "SpaceCheck", "check_params_space"]

MAX_ENUMERATED = 4096  # a finite space up to this many points is built point by point
SAMPLE_DRAWS = 256  # draws checked for a space too large (or continuous) to enumerate
REFUSE_FRACTION = 0.5  # refuse a sampled space where more than this fraction cannot build


@dataclass(frozen=True)
class SpaceCheck:
    checked: int  # points built
    bad: int  # of those, how many cannot build
    exhaustive: bool  # every point of the space (True) or a seeded sample (False)
    problems: tuple[str, ...]  # ``name: error``: every bad point, or a sample's distinct errors

    @property
    def fraction_bad(self) -> float:
        return self.bad / self.checked if self.checked else 0.0

    def warning(self) -> str | None:
        """One line for a sampled space where some (not most) points cannot build."""
        if not self.bad:
            return None
        return (f"search.params: {self.bad} of {self.checked} sampled points "
                f"({100 * self.fraction_bad:.0f}%) cannot build, e.g. {self.problems[0]}; "
                "such draws are recorded as failed trials")


def _size(dist: Distribution) -> int | None:
    if dist.kind == "choice":
        return len(dist.values)
    if dist.kind == "int":
        return dist.values[1] - dist.values[0] + 1
    return None  # float / log: continuous


def _values(dist: Distribution) -> list[Any]:
    if dist.kind == "choice":
        return list(dist.values)
    return list(range(dist.values[0], dist.values[1] + 1))


def _point(change: dict[str, Any]) -> Point:
    name = ",".join(f"{k}={v}" for k, v in change.items())
    model = {k: v for k, v in change.items() if not k.startswith("train.")}
    train = {k[len("train."):]: v for k, v in change.items() if k.startswith("train.")}
    return Point(name=name, model=model, train=train)


def check_params_space(space: SearchSpace, model_base: ArchConfig,
                       check: Callable[[ArchConfig], Any] | None = None, *,
                       max_enumerated: int = MAX_ENUMERATED, draws: int = SAMPLE_DRAWS,
                       seed: int = 0) -> SpaceCheck:
    """Build the points of an Optuna ``params`` space (all of them, or ``draws`` seeded ones).

    Only the model knobs matter for building: ``train.*`` knobs are left out of the
    enumeration (they cannot make a point unbuildable), so a space of a few architectures and
    a continuous learning rate is still checked exhaustively.
    """
    model_keys = [k for k in space.params if not k.startswith("train.")]
    sizes = [_size(space.params[k]) for k in model_keys]
    exhaustive = all(s is not None for s in sizes) and math.prod(sizes) <= max_enumerated
    if exhaustive:
        changes = [dict(zip(model_keys, combo)) for combo in
                   itertools.product(*(_values(space.params[k]) for k in model_keys))]
    else:
        rng = random.Random(seed)
        changes = [{k: space.params[k].draw(rng) for k in model_keys} for _ in range(draws)]
    problems: dict[str, str] = {}  # one example per distinct error (a sample repeats them)
    bad = 0
    for change in changes:
        point = _point(change)
        try:
            cfg = resolve_point(space, model_base, point)
            if check is not None:
                check(cfg)
        except ValueError as err:
            bad += 1
            problems.setdefault(point.name if exhaustive else str(err),
                                f"{point.name}: {err}")
    return SpaceCheck(checked=len(changes), bad=bad, exhaustive=exhaustive,
                      problems=tuple(problems.values()))
