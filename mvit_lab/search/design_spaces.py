"""Design spaces: populations sampled from several named spaces within one complexity band.

A ``design_spaces`` search (Radosavovic et al., "On Network Design Spaces", 2019) names
several spaces, each a base and Optuna-style distributions, and one band::

    design_spaces:
      mvitv2: {base: {rel_pos: spatial, ...}, params: {depths: {choice: [...]}, ...}}
      hiera:  {base: {mask_unit_attn: [true, false, false], ...}, params: {...}}
    band: {gflops: {min: 0.01, max: 0.04}}

``budget.samples`` distinct architectures are drawn from each space by rejection sampling:
every draw is built and counted (GFLOPs and parameters on the meta device), and only draws
inside the band are kept, so the spaces are compared at matching complexity. The draws are
seeded by ``budget.sampling_seed`` and the space's name, so a space's population does not
change when another space is added. A band that a space cannot reach is an error before
anything runs, naming the space and the range its draws covered.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

from mvit_lab.config import ArchConfig
from mvit_lab.search.space import Point, SearchSpace, resolve_point

__all__ = ["Cost", "interleave", "sample_design_points"]

log = logging.getLogger(__name__)

Cost = Callable[[ArchConfig], tuple[float, float]]  # config -> (gflops, params)

MAX_DRAWS_PER_SAMPLE = 40  # a space gets up to this many draws per sample it must give
UNREACHABLE_AFTER = 64  # buildable draws with none in the band: the band is unreachable


def _count(cfg: ArchConfig) -> tuple[float, float]:
    from mvit_lab.measure import count_flops

    cost = count_flops(cfg)
    return cost.gflops, float(cost.params)


def _fmt_range(values: list[float]) -> str:
    return f"[{min(values):.4g}, {max(values):.4g}]" if values else "none"


def sample_design_points(space: SearchSpace, model_base: ArchConfig, samples: int, seed: int = 0,
                         *, cost: Cost | None = None,
                         check: Callable[[ArchConfig], Any] | None = None,
                         max_draws_per_sample: int = MAX_DRAWS_PER_SAMPLE) -> list[Point]:
    """``samples`` distinct points from each named space of ``space``, all inside its band.

    ``cost`` maps a config to ``(gflops, params)`` (default: ``count_flops``); ``check`` may
    reject a config with a ``ValueError`` (e.g. one that cannot pretrain sparsely). Raises a
    ``ValueError`` naming the space when its band is unreachable or too narrow for
    ``samples`` distinct points.
    """
    if space.mode != "design_spaces":
        raise ValueError(f"search: a {space.mode} space has no design spaces to sample")
    if samples < 1:
        raise ValueError(f"budget.samples: must be >= 1, got {samples}")
    cost = cost or _count
    band = dict(space.constraints)
    band_text = ", ".join(f"{m} in [{b.get('min', '-inf')}, {b.get('max', 'inf')}]"
                          for m, b in band.items())
    out: list[Point] = []
    for name, sub in space.spaces.items():
        rng = random.Random(f"{seed}:{name}")  # str seeds hash stably (sha512)
        kept: dict[str, Point] = {}
        seen: set[str] = set()
        gflops: list[float] = []
        params: list[float] = []
        unbuildable, draws, first_error = 0, 0, ""
        budget = max(max_draws_per_sample * samples, UNREACHABLE_AFTER)
        while len(kept) < samples and draws < budget:
            draws += 1
            change = {key: dist.draw(rng) for key, dist in sub.params.items()}
            key = json.dumps(change, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            label = ",".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in change.items())
            point = Point(
                name=f"{name}:{label}", space=name,
                model={k: v for k, v in change.items() if not k.startswith("train.")},
                train={k[len("train."):]: v for k, v in change.items()
                       if k.startswith("train.")})
            try:
                cfg = resolve_point(space, model_base, point)
                if check is not None:
                    check(cfg)
            except ValueError as err:
                unbuildable += 1
                first_error = first_error or str(err)
                continue
            g, p = cost(cfg)
            gflops.append(g)
            params.append(p)
            if not space.check_constraints(dict(gflops=g, params=p)):
                kept[key] = point
            elif not kept and len(gflops) >= UNREACHABLE_AFTER:
                break
        if len(kept) < samples:
            seen_text = (f"its {len(gflops)} buildable draws had gflops {_fmt_range(gflops)}, "
                         f"params {_fmt_range(params)}")
            bad = f"; {unbuildable} draws could not build (e.g. {first_error})" \
                if unbuildable else ""
            if not kept:
                raise ValueError(f"search.band: unreachable for design space {name!r}: "
                                 f"{band_text}, but {seen_text}{bad}")
            raise ValueError(f"search.design_spaces.{name}: only {len(kept)} distinct points of "
                             f"{draws} draws fall in the band ({band_text}), budget.samples "
                             f"is {samples}; widen the band or the space ({seen_text}{bad})")
        log.info("design space %s: %d points in the band from %d draws (%d unbuildable)",
                 name, samples, draws, unbuildable)
        out.extend(kept.values())
    return out


def interleave(points: list[Point]) -> list[Point]:
    """The spaces' points taken in turn (the first of each space, then the second, ...): the
    order trials start in, so a sweep stopped early (a time budget, Ctrl-C) still holds
    populations of every space, of about the same size."""
    by_space: dict[str | None, list[Point]] = {}
    for p in points:
        by_space.setdefault(p.space, []).append(p)
    out = []
    for i in range(max((len(v) for v in by_space.values()), default=0)):
        out += [v[i] for v in by_space.values() if i < len(v)]
    return out
