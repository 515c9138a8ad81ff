"""What training and MAE pretraining share: the device, AMP, data loaders and their sampler,
the random streams a checkpoint carries, progress bars and atomic saves."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from mvit_lab.measure.isolation import guard

__all__ = ["EpochCallback", "amp_setup", "atomic_save", "get_device", "make_loader",
           "progress", "restore_rng", "rng_state", "seed_everything", "set_epoch", "world"]

EpochCallback = Callable[[dict[str, Any]], None]


def get_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name} requested but no CUDA device is available")
    return torch.device(name)


def world() -> tuple[int, int]:
    """(world size, rank): (1, 0) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def amp_setup(device: torch.device, amp: str) -> tuple[bool, Callable[[], Any], Any]:
    """(enabled, autocast context factory, grad scaler): autocast in ``amp_dtype(amp)`` on
    CUDA or the CPU (bfloat16), a scaler only for float16."""
    from mvit_lab.train.efficiency import amp_dtype, warn_slow_cpu_bf16

    name = amp_dtype(amp, device)
    warn_slow_cpu_bf16(name, device)
    use_amp = name != "float32"
    dtype = getattr(torch, name)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if use_amp else nullcontext
    return use_amp, autocast, torch.amp.GradScaler("cuda", enabled=name == "float16")


def _worker_init(worker_id: int) -> None:
    # decoding workers: one thread each, so they and the training process share the cores
    torch.set_num_threads(1)


def make_loader(ds: Dataset, batch: int, *, train: bool, workers: int, device: torch.device,
                gen: torch.Generator | None = None, seed: int = 0,
                drop_last: bool = False, pin_memory: bool = True) -> DataLoader:
    """uint8 batches: pinned for the copy to a GPU (``pin_memory``; ``BatchPrep`` copies
    without blocking), persistent prefetching workers; training order from ``gen`` (one
    process) or a ``DistributedSampler`` (one shard per rank)."""
    size, rank = world()
    sampler: Any = None
    if size > 1 and train:
        sampler = DistributedSampler(ds, num_replicas=size, rank=rank, shuffle=True, seed=seed,
                                     drop_last=drop_last)
    elif size > 1:  # evaluation: unpadded shards, so the all-reduced sums are exact
        from mvit_lab.train.distributed import ShardSampler

        sampler = ShardSampler(len(ds), size, rank)  # type: ignore[arg-type]
    elif train:
        sampler = RandomSampler(ds, generator=gen)  # type: ignore[arg-type]
    extra = dict(persistent_workers=True, prefetch_factor=4,
                 worker_init_fn=_worker_init) if workers else {}
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers, generator=gen,
                      drop_last=drop_last, pin_memory=pin_memory and device.type == "cuda",
                      **extra)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """A ``DistributedSampler`` reshuffles per epoch only when told the epoch."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def seed_everything(seed: int) -> None:
    """torch, Python and numpy: timm's RandAugment, Mixup and RandomErasing draw from the
    latter two."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def rng_state() -> dict[str, Any]:
    """The process-wide random streams, for a checkpoint (a resumed run continues them)."""
    _, words, gauss = random.getstate()
    _, np_words, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return dict(torch_rng=torch.get_rng_state(),
                py_rng=torch.tensor(words, dtype=torch.int64),
                py_gauss=float("nan") if gauss is None else float(gauss),
                np_rng=torch.from_numpy(np_words.astype(np.int64)),
                np_rng_rest=(int(np_pos), int(np_has_gauss), float(np_gauss)))


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    if "py_rng" not in state:  # checkpoints from before the Python and numpy streams
        return
    gauss = state["py_gauss"]
    random.setstate((3, tuple(state["py_rng"].tolist()), None if gauss != gauss else gauss))
    pos, has_gauss, cached = state["np_rng_rest"]
    np.random.set_state(("MT19937", state["np_rng"].numpy().astype(np.uint32), pos, has_gauss,
                         cached))


def progress(iterable: Any, desc: str, total: int) -> Any:
    """The batches of an epoch, each one a step under the device lock (in sweeps: a cost
    measurement waits for the step, and the next step waits for the measurement)."""
    iterable = guard(iterable)
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill mid-write leaves the previous
    file."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
