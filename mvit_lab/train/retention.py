"""What a finished run keeps on disk (``train.keep``, ``train.keep_weights``), and how much
disk its checkpoints take.

A run rewrites one full checkpoint every epoch: the weights, AdamW's two moments (two more
copies of the weights in float32), the EMA's copy when there is one, and the random streams;
MAE pretraining keeps its own for the encoder and decoder. That is about 2.5 GiB for mvitv2_l,
and a sweep keeps one per trial. Once a run has finished:

- ``keep: last`` (the default) keeps the last full checkpoint: ``--resume`` and more epochs
  remain possible;
- ``keep: best`` keeps ``best.pt``, the weights (and EMA weights) of the epoch with the best
  ``val_top1``, saved as training goes, and deletes the full checkpoints (a sharded one's
  ``checkpoint.dcp`` folder too);
- ``keep: none`` deletes them;
- ``keep_weights: true`` also writes ``weights.pt``, the final epoch's weights (and EMA).

A run that has not finished (stopped, failed, killed) keeps everything, so it can resume.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from mvit_lab.train._shared import atomic_save
from mvit_lab.train.checkpoint import SHARDED

__all__ = ["BEST", "CHECKPOINTS", "WEIGHTS", "checkpoint_bytes", "is_best", "retain",
           "save_weights"]

log = logging.getLogger(__name__)

BEST = "best.pt"
WEIGHTS = "weights.pt"
# the resumable checkpoints a finished run may drop (MAE's encoder.pt is the pretraining's
# result, which fine-tuning reads on resume: a resumable file too)
CHECKPOINTS = ("checkpoint.pt", "pretrain_checkpoint.pt", "encoder.pt")


def is_best(history: list[dict[str, Any]], metric: str = "val_top1") -> bool:
    """Whether the last epoch has the best ``metric`` so far (ties go to the later epoch)."""
    if not history or metric not in history[-1]:
        return False
    earlier = [row[metric] for row in history[:-1] if metric in row]
    return not earlier or history[-1][metric] >= max(earlier)


def save_weights(path: Path, model: nn.Module, ema: Any, epoch: int) -> None:
    """The model's weights (and the EMA's), no optimizer state: what evaluation needs."""
    state: dict[str, Any] = dict(model=model.state_dict(), epoch=epoch)
    if ema is not None:
        state["ema"] = ema.module.state_dict()
    atomic_save(state, path)


def retain(out: Path, keep: str, keep_weights: bool, model: nn.Module, ema: Any,
           epoch: int) -> dict[str, list[str]]:
    """Apply the policy to the finished run in ``out``; returns the files kept and removed."""
    if keep not in ("last", "best", "none"):
        raise ValueError(f"train.keep: must be last, best or none; got {keep!r}")
    removed: list[str] = []
    if keep_weights:
        save_weights(out / WEIGHTS, model, ema, epoch)
    for stale in out.glob("*.tmp-*"):  # a save killed mid-write
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    if keep != "last":
        for name in CHECKPOINTS:
            if (out / name).is_file():
                (out / name).unlink()
                removed.append(name)
        if (out / SHARDED).is_dir():
            shutil.rmtree(out / SHARDED)
            removed.append(SHARDED)
    if keep != "best":
        if (out / BEST).is_file():  # from an earlier policy of this run
            (out / BEST).unlink()
            removed.append(BEST)
    kept = sorted(p.name for p in out.glob("*.pt")) + ([SHARDED] if (out / SHARDED).is_dir()
                                                       else [])
    if removed:
        log.info("%s: keep=%s removed %s; kept %s", out, keep, ", ".join(removed),
                 ", ".join(kept) or "no weights")
    return dict(kept=kept, removed=removed)


def checkpoint_bytes(model: nn.Module, *, ema: bool = False) -> int:
    """Bytes of one full checkpoint of ``model`` (a meta-device model is enough): its state
    dict, AdamW's two float32 moments per parameter, and the EMA's state dict when used."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = sum(2 * p.numel() * 4 for p in model.parameters() if p.requires_grad)
    return state * (2 if ema else 1) + moments
