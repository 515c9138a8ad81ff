"""The training step's speed switches (the ``train`` section): autocast dtype, TF32, fused
AdamW, activation checkpointing, torch.compile, and which attention kernel ran.

Each switch is data in ``TrainConfig`` and is applied here, in one place, by the training loop
and MAE pretraining. None of them changes what a step computes beyond rounding (bf16 and TF32
round more), so a checkpoint saved with one setting resumes under another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["amp_dtype", "attention_kernel", "cpu_has_native_bf16", "optimizer_options",
           "prepare_model", "set_backends", "warn_slow_cpu_bf16"]

log = logging.getLogger(__name__)


def amp_dtype(amp: str, device: torch.device | str) -> str:
    """The autocast dtype a run uses: ``auto`` is bfloat16 on CUDA and float32 (no autocast)
    on the CPU; ``none`` is float32; bfloat16 runs on either device; float16 needs CUDA."""
    kind = torch.device(device).type
    if amp == "auto":
        return "bfloat16" if kind == "cuda" else "float32"
    if amp == "none":
        return "float32"
    if amp == "float16" and kind != "cuda":
        raise ValueError(f"train.amp: float16 autocast needs CUDA, and this run is on {kind}; "
                         "use bfloat16 or none")
    return amp


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), from the kernel's
    CPU flags; None where they cannot be read (not Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def warn_slow_cpu_bf16(dtype: str, device: torch.device) -> None:
    """bfloat16 autocast on a CPU without native bfloat16 is emulated: on an AVX2 EPYC a
    training step took 13-16x and inference 5-6x the float32 time
    (``benchmarks/results/compile_cpu.md``)."""
    if dtype == "bfloat16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        log.warning("train.amp: bfloat16 on this CPU (%s, no AVX-512 BF16 or AMX) is emulated "
                    "and much slower than float32 (13-16x per training step measured on an "
                    "AVX2 CPU); amp: auto uses float32 on the CPU",
                    torch.backends.cpu.get_cpu_capability())


def set_backends(device: torch.device, tf32: bool) -> None:
    """TF32 for the float32 matmuls and convolutions left outside autocast (CUDA only; the
    CPU has no TF32). Process-wide, as torch's switches are."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def optimizer_options(device: torch.device, fused: bool) -> dict[str, Any]:
    """AdamW's keyword arguments: the fused kernel on CUDA when asked (one launch for all
    parameters instead of a loop of foreach kernels)."""
    return {"fused": True} if fused and device.type == "cuda" else {}


def prepare_model(model: nn.Module, cfg: Any, runner: nn.Module | None = None) -> nn.Module:
    """Applies ``cfg.activation_checkpointing`` to ``model`` and returns what the training step
    calls: ``runner`` (``model`` itself, or its DDP wrapper in a multi-worker trial), or with
    ``cfg.compile`` a ``torch.compile`` of it (parameters shared, so the optimizer, EMA and
    checkpoints keep using ``model``; DDP is compiled whole, as PyTorch recommends)."""
    runner = model if runner is None else runner
    if getattr(cfg, "activation_checkpointing", False):
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"train.activation_checkpointing: {type(model).__name__} has no "
                             "blocks to checkpoint")
        model.set_grad_checkpointing(True)
    if getattr(cfg, "compile", False):
        return torch.compile(runner)
    return runner


def attention_kernel(step: Callable[[], Any]) -> str:
    """Which scaled-dot-product-attention kernel(s) ``step`` ran (profiled once): flash,
    cudnn, memory-efficient, math; ``none`` for a model without attention."""
    from mvit_lab.measure.speed import sdpa_backends

    try:
        return sdpa_backends(step)
    except RuntimeError as err:  # a profiler already running (e.g. the user's own)
        log.warning("attention kernel not recorded: %s", err)
        return "unknown"
