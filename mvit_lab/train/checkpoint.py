"""A training run's resumable checkpoint: one file, or sharded over a trial's workers.

``train.checkpoint_format``:

- ``file`` (``auto`` with one worker): ``checkpoint.pt``, written by rank 0 to a temporary
  file and renamed, so a kill mid-write leaves the previous epoch's.
- ``sharded`` (``auto`` with several workers): PyTorch's distributed checkpoint (DCP). Every
  rank writes, in parallel, to storage all of them see: the replicas' tensors are written
  once, DCP's default planner balancing them over the ranks, so each of N workers writes
  about 1/N of the bytes. Layout::

      checkpoint.dcp/epoch-000007/.metadata, __0_0.distcp, __1_0.distcp, ...  (DCP's)
      checkpoint.dcp/epoch-000007/meta.pt   (epoch, history, every rank's random streams,
                                             the grad scaler: rank 0 writes it last)

  ``meta.pt`` commits the epoch: a folder without it is a save that was interrupted and is
  never read. Once an epoch is committed the older folders are removed.
- ``train.async_checkpoint`` (default true; sharded checkpoints): DCP's ``async_save``
  copies the tensors to CPU memory at once and writes them from a thread, over a gloo
  group of its own so its collectives never interleave with DDP's. The save starts after the
  epoch's last step and the write overlaps validation; the epoch is committed before it is
  reported, so a resumed run never repeats an epoch a sweep has already recorded.

A sharded checkpoint becomes one ``torch.save`` file with DCP's own converter
(``python -m torch.distributed.checkpoint.format_utils dcp_to_torch <folder> <file>``);
``train.keep_weights`` writes the final weights as ``weights.pt`` in any case.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvit_lab.train._shared import atomic_save, rng_state, world

__all__ = ["CHECKPOINT", "SHARDED", "Checkpointer", "has_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
SHARDED = "checkpoint.dcp"
META = "meta.pt"


def _epoch_folders(out: Path) -> list[Path]:
    """The committed epoch folders of a sharded checkpoint, oldest first."""
    root = out / SHARDED
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch-*") if (p / META).is_file())


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a checkpoint a run can resume from (either format)."""
    return (out / CHECKPOINT).is_file() or bool(_epoch_folders(out))


def _tensors(model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> dict[str, Any]:
    """What DCP writes: the model and AdamW state keyed by parameter name (DCP's
    ``get_state_dict``, which also fills a fresh optimizer's state so it can be loaded into),
    and the EMA's weights."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = dict(model=model_state, optimizer=optim_state)
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


class Checkpointer:
    """Saves a run's checkpoint each epoch in its format (every rank must create it and call
    :meth:`start` and :meth:`commit`, in the same order)."""

    def __init__(self, out: Path | None, fmt: str = "auto", async_save: bool = True) -> None:
        size, rank = world()
        self.out, self.rank = out, rank
        self.sharded = out is not None and (fmt == "sharded" or (fmt == "auto" and size > 1))
        self.async_save = self.sharded and async_save
        self.group = None
        if size > 1:  # DCP's collectives: CPU tensors, apart from DDP's
            self.group = torch.distributed.new_group(backend="gloo")
        self._pending: tuple[Any, Path] | None = None
        self.blocked_seconds = 0.0  # how long the training loop waited for saves

    @property
    def format(self) -> str:
        return "sharded" if self.sharded else "file"

    def start(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
              ema: Any) -> None:
        """After the epoch's last step: a sharded save of the tensors begins (in the
        background when asynchronous); a file checkpoint is written whole by :meth:`commit`."""
        if not self.sharded:
            return
        import torch.distributed.checkpoint as dcp

        assert self.out is not None and self._pending is None
        began = time.perf_counter()
        folder = self.out / SHARDED / f"epoch-{epoch:06d}"
        state = _tensors(model, optimizer, ema)
        # a folder left by a save cut short (never committed) is written over
        writer = dcp.FileSystemWriter(str(folder), overwrite=True)
        single = self.group is None  # one process: no collectives
        if self.async_save:
            future = dcp.async_save(state, storage_writer=writer, process_group=self.group,
                                    no_dist=single)
        else:
            dcp.save(state, storage_writer=writer, process_group=self.group, no_dist=single)
            future = None
        self._pending = (future, folder)
        self.blocked_seconds += time.perf_counter() - began

    def commit(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
               gen: torch.Generator, epoch: int, history: list[dict[str, Any]], ema: Any,
               ranks_rng: list[dict[str, Any]] | None) -> None:
        """The epoch's checkpoint, complete on disk when this returns (rank 0 writes the
        file, or the sharded epoch's ``meta.pt`` once every rank's shard is written)."""
        began = time.perf_counter()
        meta = dict(scaler=scaler.state_dict(), data_rng=gen.get_state(), epoch=epoch,
                    history=json.dumps(history), **rng_state())
        if ranks_rng is not None:  # a multi-worker run: each rank's streams
            meta["ranks_rng"] = ranks_rng
        if not self.sharded:
            if self.out is not None and self.rank == 0:
                state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), **meta)
                if ema is not None:
                    state["ema"] = ema.state_dict()
                atomic_save(state, self.out / CHECKPOINT)
            self.blocked_seconds += time.perf_counter() - began
            return
        assert self._pending is not None, "commit without start"
        future, folder = self._pending
        self._pending = None
        if future is not None:  # DCP's thread: every rank's shards written, or its error
            getattr(future, "upload_completion", future).result()
        if self.rank == 0:  # DCP's .metadata is written by the coordinator, rank 0
            atomic_save(meta, folder / META)
            for old in _epoch_folders(self.out)[:-1]:
                shutil.rmtree(old, ignore_errors=True)
            for stale in (self.out / SHARDED).glob("epoch-*"):  # saves interrupted earlier
                if stale.name < folder.name and not (stale / META).is_file():
                    shutil.rmtree(stale, ignore_errors=True)
        self.blocked_seconds += time.perf_counter() - began

    def load_latest(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    ema: Any) -> dict[str, Any] | None:
        """Loads the newest checkpoint in the run folder (either format, whichever was
        committed last) into ``model``, ``optimizer`` and ``ema``; returns the rest (epoch,
        history, random streams, scaler), or None when there is none."""
        from mvit_lab.train.distributed import agree

        assert self.out is not None
        file = self.out / CHECKPOINT
        folders = _epoch_folders(self.out)
        use_file = file.is_file() and (not folders or file.stat().st_mtime
                                       >= (folders[-1] / META).stat().st_mtime)
        chosen = file if use_file else folders[-1] if folders else None
        agree(None if chosen is None else chosen.name, "the checkpoint to resume from")
        if chosen is None:
            return None
        if use_file:
            state = torch.load(file, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None and "ema" in state:
                ema.load_state_dict(state["ema"])
            return state
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        state = _tensors(model, optimizer, ema)
        if ema is not None and "ema" not in _saved_keys(chosen):
            del state["ema"]  # a run that adds an EMA on resume starts it from the weights
        dcp.load(state, checkpoint_id=str(chosen), process_group=self.group,
                 no_dist=self.group is None)
        set_state_dict(model, optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"])
        if "ema" in state:
            ema.load_state_dict(state["ema"])
        return torch.load(chosen / META, map_location="cpu", weights_only=True)


def _saved_keys(folder: Path) -> set[str]:
    from torch.distributed.checkpoint import FileSystemReader

    return {key.split(".", 1)[0] for key in FileSystemReader(str(folder)).read_metadata()
            .state_dict_metadata}
