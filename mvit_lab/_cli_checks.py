"""Checks ``build`` and ``profile`` run before any compute: arguments, the ``--save`` target,
and whether a model's float32 forward fits in this machine's free RAM; and a forward pass whose
out-of-memory error becomes one line.

The memory estimate is deliberately rough (weights, plus the largest block's attention scores,
qkv, MLP and residual tensors at the batch size): it is there to refuse a config that is
orders of magnitude too big in milliseconds, instead of letting the kernel swap or kill.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mvit_lab.config import ArchConfig, expand_blocks

if TYPE_CHECKING:
    import torch

__all__ = ["check_fits", "check_save_path", "forward_logits", "memory_needed", "positive_int"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch of 0 or -1 is refused before any work)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def check_save_path(path: str) -> None:
    """Refuse a ``--save`` target that cannot be written, before any compute."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--save {path}: is a directory; give a file name, e.g. "
                         f"{target / 'config.json'}")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--save {path}: {parent} is not a directory")
    if parent != target.parent:  # save_arch creates the missing folders
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"--save {path}: cannot create folders in {parent}")
        return
    existed = target.exists()
    try:  # the only test that holds for root, read-only mounts and /proc alike
        with open(target, "a"):
            pass
    except OSError as err:
        raise ValueError(f"--save {path}: cannot write there ({err.strerror})") from None
    if not existed:
        target.unlink()


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.{1 if n_bytes >= 2**30 else 3}f} GiB"


def memory_needed(cfg: ArchConfig, batch: int, n_params: int) -> tuple[float, float]:
    """(weights, peak activations) in bytes of a float32 inference forward, estimated from the
    block specs: the attention scores, qkv and MLP tensors of the largest block."""
    peak = 0
    cls = int(cfg.cls_token)
    for spec in expand_blocks(cfg):
        n_in, n_q = math.prod(spec.in_grid) + cls, math.prod(spec.q_grid) + cls
        n_kv = math.prod(spec.kv_grid) + cls
        if spec.q_window is not None:  # scores only within each window
            pairs = math.prod(spec.kv_window) * math.prod(spec.q_window) * spec.num_windows
            scores = spec.num_heads * pairs
        else:
            scores = spec.num_heads * n_q * n_kv
        block = 2 * scores + 3 * n_in * spec.attn_dim + 2 * n_q * spec.mlp_hidden \
            + 4 * n_in * max(spec.dim, spec.dim_out)
        peak = max(peak, block)
    return 4.0 * n_params, 4.0 * batch * peak


def _available_memory() -> float | None:
    """Bytes of RAM the kernel says a new allocation can take (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(cfg: ArchConfig, batch: int, n_params: int) -> None:
    """Refuse a model (and batch) whose float32 forward cannot fit in this machine's RAM."""
    weights, activations = memory_needed(cfg, batch, n_params)
    free = _available_memory()
    if free is not None and weights + activations > free:
        raise ValueError(f"{n_params:,} params at batch {batch}, input {list(cfg.input_size)}: "
                         f"needs about {_gib(weights + activations)} (weights "
                         f"{_gib(weights)}, activations {_gib(activations)}) but "
                         f"{_gib(free)} is free; use a smaller model, input_size or --batch")


def forward_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``model(x)``; running out of memory is a one-line error, not a traceback."""
    import torch  # here, so that importing the CLI does not import torch

    try:
        with torch.inference_mode():
            return model(x)
    except (MemoryError, RuntimeError) as err:
        text = str(err)
        if isinstance(err, RuntimeError) and "alloc" not in text and "out of memory" not in text:
            raise
        raise ValueError(f"forward pass at batch {x.shape[0]}: out of memory "
                         f"({text.splitlines()[0] if text else 'MemoryError'}); use a smaller "
                         "--batch or input_size") from None
