"""What the training loop needs to run as one rank of a data-parallel group (DDP).

Outside ``torch.distributed`` (a plain ``train``, a one-worker trial) every helper here is the
identity, so the loop reads the same either way. Inside a group (a multi-worker trial: Ray
Train starts the processes and the process group, see :mod:`mvit_lab.search.multiworker`):

- the training forward runs through :class:`~torch.nn.parallel.DistributedDataParallel`
  (gloo on CPUs, NCCL on GPUs), which broadcasts rank 0's initial weights and averages the
  gradients; the models have no BatchNorm, so there is no batch statistic to synchronise;
- gradient accumulation all-reduces only on the micro-batch that steps (``set_grad_sync``);
- each rank trains on a disjoint shard (``DistributedSampler``) and evaluates a disjoint,
  unpadded contiguous block of the validation set (``ShardSampler``); sums are all-reduced,
  so the metrics are those of the whole validation set, identical on every rank;
- rank 0 alone writes files; every rank's random streams go into rank 0's checkpoint
  (``gather_rng``), and each rank restores its own (``own_rng``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import Sampler

__all__ = ["ShardSampler", "agree", "all_sum", "check_replicas", "gather_rng", "is_main",
           "own_rng", "rank_seed", "set_grad_sync", "weights_digest", "wrap_model"]


def _group() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def is_main() -> bool:
    """True on rank 0 (and outside a process group): the one process that writes files."""
    return _group()[1] == 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's random streams after initialisation: ``seed`` on rank 0 (so a
    one-worker run is unchanged), distinct per rank elsewhere (drop path, augmentation)."""
    return seed + 100_003 * _group()[1]


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DDP inside a process group (its weights become rank 0's), else itself."""
    if _group()[0] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=ids)


def set_grad_sync(model: nn.Module, sync: bool) -> None:
    """Whether the next backward all-reduces gradients (DDP's ``no_sync`` as a switch, so the
    loop needs no extra block): off for the micro-batches that only accumulate. Set before
    the forward pass."""
    if hasattr(model, "require_backward_grad_sync"):
        model.require_backward_grad_sync = sync


def all_sum(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (float64 on the CPU: gloo and NCCL both take it)."""
    size, _ = _group()
    if size == 1:
        return tuple(values)
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return tuple(t.tolist())


class ShardSampler(Sampler[int]):
    """Rank ``r``'s contiguous block of ``range(n)``: no index twice, none padded (unlike
    ``DistributedSampler``), so all-reduced sums are exactly the whole set's. ``start`` is the
    block's first index (evaluation's per-sample seeds use the global index)."""

    def __init__(self, n: int, num_replicas: int, rank: int) -> None:
        per, extra = divmod(n, num_replicas)
        self.start = rank * per + min(rank, extra)
        self.stop = self.start + per + (1 if rank < extra else 0)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def gather_rng(state: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's random streams (``state``: this rank's), collected on rank 0 for its
    checkpoint; None outside a process group. Every rank must call it."""
    size, rank = _group()
    if size == 1:
        return None
    out: list[Any] = [None] * size if rank == 0 else []
    torch.distributed.gather_object(state, out if rank == 0 else None, dst=0)
    return out if rank == 0 else None


def own_rng(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """This rank's streams from a checkpoint written by :func:`gather_rng`'s rank 0 (the
    checkpoint itself for a one-worker run). A checkpoint from another world size is refused."""
    ranks = checkpoint.get("ranks_rng")
    size, rank = _group()
    if ranks is None:
        if size > 1:
            raise ValueError("resources.workers: the checkpoint was written by a one-worker run; "
                             "resume it with one worker, or start a new run")
        return checkpoint
    if len(ranks) != size:
        raise ValueError(f"resources.workers: the checkpoint was written by {len(ranks)} "
                         f"workers, this run has {size}; resume with {len(ranks)}")
    return ranks[rank]


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in ``state_dict`` order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas(model: nn.Module) -> str | None:
    """After training in a process group: every rank's weights must be bit-identical (DDP's
    promise). Returns the common digest (None outside a group); a RuntimeError naming the
    ranks that differ from rank 0 otherwise. Every rank must call it."""
    size, _ = _group()
    if size == 1:
        return None
    digest = weights_digest(model)
    digests: list[Any] = [None] * size
    torch.distributed.all_gather_object(digests, digest)
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise RuntimeError(f"the weights of rank(s) {differ} differ from rank 0's after "
                           "training: the replicas diverged")
    return digest


def agree(value: Any, what: str) -> None:
    """Every rank must hold the same ``value`` (e.g. the epoch a resumed run starts at); a
    RuntimeError on every rank otherwise. Every rank must call it."""
    size, _ = _group()
    if size == 1:
        return
    values: list[Any] = [None] * size
    torch.distributed.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"the workers disagree on {what}: {values} (rank order); is the "
                           "trial folder on storage every worker sees?")
