"""Throughput, latency, peak memory and MFU of a model on one device.

Timing runs ``repeats`` blocks of ``iters`` iterations after ``warmup`` iterations; CUDA is
timed with events and synchronised, the CPU with ``perf_counter``. The report gives the median
block and the spread across blocks, ``(max - min) / median``, so a noisy run shows as one.

MFU is the achieved model FLOP/s over the device's peak: ``2 * multiply-adds`` per item, times
3 in training (forward + backward), against the datasheet peak for the device name and dtype,
``peak_tflops=`` when given, or a measured matmul rate where the table has no entry (CPUs).
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mvit_lab.measure._devices import ProcessPeakMemory, device_name, matmul_tflops, peak_tflops
from mvit_lab.measure.flops import count_flops
from mvit_lab.models import MultiscaleViT

__all__ = ["ThroughputReport", "measure_throughput"]

DTYPES = ("float32", "bfloat16", "float16")
MODES = ("infer", "train")


@dataclass(frozen=True)
class ThroughputReport:
    device: str
    device_name: str
    mode: str
    dtype: str
    batch_size: int
    compiled: bool
    items_per_s: float  # images or clips per second, median block
    latency_ms: float  # one batch, median block
    spread: float  # (max - min) / median of the blocks' throughput
    repeats: int
    iters: int
    peak_memory_mb: float
    memory_kind: str  # "cuda allocator peak" | "process peak RSS"
    gflops_per_item: float | None  # multiply-adds of one forward (mvit-lab models)
    achieved_tflops: float | None
    peak_tflops: float | None
    peak_source: str | None  # "table" | "given" | "measured matmul"
    mfu: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(device: str, dtype: str, mode: str, batch_size: int) -> torch.device:
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: {device!r} is not a torch device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but no CUDA device is available")
    if dev.type == "cpu" and dtype != "float32":
        raise ValueError(f"dtype: CPU measurements run in float32, got {dtype}")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: only cpu and cuda are supported, got {device!r}")
    return dev


def measure_throughput(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    mode: str = "infer",
    compile: bool = False,
    *,
    warmup: int = 3,
    iters: int = 10,
    repeats: int = 5,
    peak_tflops_override: float | None = None,
) -> ThroughputReport:
    """Time ``model`` on random inputs of ``[batch_size, *input_shape]``.

    ``input_shape`` (without the batch) defaults to an mvit-lab model's configured input.
    ``dtype`` other than float32 runs under CUDA autocast. ``mode="train"`` times forward,
    cross-entropy, backward (gradients are cleared each step, no optimizer update).
    """
    dev = _check(device, dtype, mode, batch_size)
    if input_shape is None:
        if not isinstance(model, MultiscaleViT):
            raise ValueError("input_shape: required for models that are not mvit-lab models")
        cfg = model.cfg
        input_shape = (cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    if min(warmup, iters, repeats) < 1:
        raise ValueError("warmup, iters and repeats must each be >= 1")
    model = model.to(dev)
    model.train(mode == "train")
    runner = torch.compile(model) if compile else model
    x = torch.randn(batch_size, *input_shape, device=dev)
    out_features = None
    autocast = (torch.autocast("cuda", dtype=getattr(torch, dtype))
                if dev.type == "cuda" and dtype != "float32" else nullcontext())

    def step() -> None:
        nonlocal out_features
        if mode == "infer":
            with torch.inference_mode(), autocast:
                runner(x)
            return
        with autocast:
            logits = runner(x)
            if out_features is None:
                out_features = logits.shape[-1]
            labels = torch.randint(0, out_features, (batch_size,), device=dev)
            loss = nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        for p in model.parameters():
            p.grad = None

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        memory = None
    else:
        memory = ProcessPeakMemory()
    with memory or nullcontext():
        for _ in range(warmup):
            step()
        blocks = [_time_block(step, iters, dev) for _ in range(repeats)]
    if dev.type == "cuda":
        peak_bytes, kind = torch.cuda.max_memory_allocated(dev), "cuda allocator peak"
    else:
        peak_bytes = memory.peak_bytes
        kind = "process peak RSS" if memory.exact else "process lifetime peak RSS"
    seconds = statistics.median(blocks) / iters
    rates = [batch_size * iters / b for b in blocks]
    items_per_s = batch_size / seconds
    name = device_name(dev)
    gflops = None
    if isinstance(model, MultiscaleViT):
        gflops = count_flops(model.cfg).gflops
    peak, source = peak_tflops_override, "given" if peak_tflops_override else None
    if peak is None:
        peak = peak_tflops(name, dtype)
        source = "table" if peak is not None else None
    if peak is None:
        peak, source = matmul_tflops(dev.type, dtype), "measured matmul"
    achieved = None
    mfu = None
    if gflops is not None:
        achieved = 2 * gflops * 1e9 * (3 if mode == "train" else 1) * items_per_s / 1e12
        mfu = achieved / peak
    return ThroughputReport(
        device=str(dev), device_name=name, mode=mode, dtype=dtype, batch_size=batch_size,
        compiled=compile, items_per_s=items_per_s, latency_ms=seconds * 1e3,
        spread=(max(rates) - min(rates)) / statistics.median(rates), repeats=repeats,
        iters=iters, peak_memory_mb=peak_bytes / 2**20, memory_kind=kind,
        gflops_per_item=gflops, achieved_tflops=achieved, peak_tflops=peak,
        peak_source=source, mfu=mfu,
    )


def _time_block(step: Any, iters: int, dev: torch.device) -> float:
    if dev.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(dev)
        start.record()
        for _ in range(iters):
            step()
        end.record()
        torch.cuda.synchronize(dev)
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - begin
