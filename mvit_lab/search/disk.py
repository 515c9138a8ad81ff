"""The disk a sweep's checkpoints will need, printed before it starts.

Per trial (sizes from each point's model built on the meta device, see
``mvit_lab.train.retention.checkpoint_bytes``): while it trains, its full checkpoint twice
(the previous one stays until the new one is written whole), plus MAE's pretraining
checkpoint when there is a ``pretrain`` section, plus ``best.pt`` twice with ``keep: best``;
once it has finished, what ``train.keep`` / ``train.keep_weights`` retain. A sweep needs every
finished trial's share, plus ``concurrency`` trials in flight at their peak.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mvit_lab.config import ArchConfig
from mvit_lab.experiment import Experiment

__all__ = ["DiskEstimate", "estimate_disk", "format_disk"]

_PARAMS_DRAWS = 64  # Optuna spaces: the largest of this many seeded draws stands for all


@dataclass(frozen=True)
class DiskEstimate:
    trials: int
    concurrency: int
    keep: str
    keep_weights: bool
    largest_checkpoint: int  # bytes of the largest trial's full checkpoint
    running_peak: int  # bytes one trial holds at most while training (the largest trial)
    kept_total: int  # bytes all finished trials keep
    total: int  # kept_total + concurrency * running_peak: the sweep's worst case
    exact: bool  # every point was sized (grid / ladder); else the largest of a sample
    free: int | None  # free bytes where the sweep writes, when known


def _weights_bytes(model: torch.nn.Module, ema: bool) -> int:
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return state * (2 if ema else 1)


def _trial_bytes(exp: Experiment, cfg: ArchConfig) -> tuple[int, int, int]:
    """(full checkpoint, running peak, kept after finishing) of one trial, in bytes."""
    from mvit_lab.build import build_model
    from mvit_lab.train.retention import checkpoint_bytes

    t = exp.train
    ema = t.ema_decay is not None
    with torch.device("meta"):
        model = build_model(cfg)
        mae = None
        if exp.pretrain is not None:
            from dataclasses import replace

            from mvit_lab.train.pretrain import build_mae

            mae = build_mae(replace(exp, model=cfg))
    full = checkpoint_bytes(model, ema=ema)
    weights = _weights_bytes(model, ema)
    pretrain_full = checkpoint_bytes(mae) if mae is not None else 0
    encoder = _weights_bytes(model, False) if mae is not None else 0
    # the largest moment of a run: fine-tuning's checkpoint being rewritten next to the
    # pretraining's files and best.pt
    running = 2 * full + pretrain_full + encoder + (2 * weights if t.keep == "best" else 0)
    kept = {"last": full + pretrain_full + encoder, "best": weights, "none": 0}[t.keep]
    if t.keep_weights:
        kept += weights
    return full, running, kept


def _configs(exp: Experiment, sweep: Any) -> tuple[list[ArchConfig], bool]:
    from mvit_lab.search.space import resolve_point

    space = sweep.space
    if space.mode not in ("params", "design_spaces"):
        return [resolve_point(space, exp.model, p) for p in space.points()], True
    from mvit_lab.search._space_check import _point

    rng = random.Random(0)
    # (space name, distributions): design spaces are sampled when the sweep starts, after
    # this estimate, so each space's draws stand for its population, band or not
    spaces = ([(name, sub.params) for name, sub in space.spaces.items()]
              if space.mode == "design_spaces" else [(None, space.params)])
    out = []
    for name, params in spaces:
        keys = [k for k in params if not k.startswith("train.")]
        for _ in range(_PARAMS_DRAWS if keys else 1):
            point = _point({k: params[k].draw(rng) for k in keys})
            try:
                out.append(resolve_point(space, exp.model,
                                         dataclasses.replace(point, space=name)))
            except ValueError:
                continue  # unbuildable draws fail in milliseconds and write nothing
    return out or [exp.model], False


def estimate_disk(exp: Experiment, sweep: Any, where: str | Path | None = None,
                  ) -> DiskEstimate:
    """The disk ``sweep`` (a ``SweepConfig`` of ``exp``) needs for checkpoints; ``where`` is
    the folder it writes to (its nearest existing parent is asked for free space)."""
    configs, exact = _configs(exp, sweep)
    sizes = [_trial_bytes(exp, cfg) for cfg in configs]
    seeds = len(sweep.seeds)
    if exact:
        trials = len(configs) * seeds
        kept_total = sum(kept for _, _, kept in sizes) * seeds
    else:
        trials = sweep.total
        kept_total = max(kept for _, _, kept in sizes) * trials
    running_peak = max(running for _, running, _ in sizes)
    concurrency = min(sweep.concurrency, trials)
    free = None
    if where is not None:
        path = Path(where).resolve()
        while not path.exists() and path != path.parent:
            path = path.parent
        free = shutil.disk_usage(path).free
    return DiskEstimate(
        trials=trials, concurrency=concurrency, keep=exp.train.keep,
        keep_weights=exp.train.keep_weights, largest_checkpoint=max(f for f, _, _ in sizes),
        running_peak=running_peak, kept_total=kept_total,
        total=kept_total + concurrency * running_peak, exact=exact, free=free)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def format_disk(d: DiskEstimate) -> list[str]:
    """The lines ``mvit-lab sweep`` prints before it starts (the last a warning when the disk
    looks too small)."""
    size = "" if d.exact else "up to "
    weights = " + final weights" if d.keep_weights else ""
    lines = [f"disk: checkpoints {size}{_gib(d.largest_checkpoint)} per trial; "
             f"{_gib(d.kept_total)} kept by {d.trials} finished trials (keep: {d.keep}"
             f"{weights}) + {_gib(d.concurrency * d.running_peak)} for {d.concurrency} "
             f"running = {size}{_gib(d.total)}"
             + (f" of {_gib(d.free)} free" if d.free is not None else "")]
    if d.free is not None and d.total > d.free:
        lines.append(f"warning: the sweep may need {_gib(d.total)} for checkpoints but only "
                     f"{_gib(d.free)} is free; set train.keep: best or none (after a trial "
                     "finishes), or free space")
    return lines
