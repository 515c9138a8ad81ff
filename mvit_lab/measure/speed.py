"""Throughput, latency, peak memory and MFU of a model on one device.

The protocol (in the spirit of timm's ``benchmark.py``, made adaptive): warm up for
``warmup_s`` seconds (at least two steps), then time blocks of about ``block_s`` seconds (at
least ``min_iters`` steps, as far as ``max_s`` allows), each step timed on its own (CUDA events
on a GPU, ``perf_counter`` on the CPU), until the medians of the last ``min_blocks`` blocks
agree within ``target_spread`` ((max - min) / median), or ``max_s`` seconds have passed. The
report gives the median over every timed block, the spread of the most consistent window of
``min_blocks`` blocks, the number of blocks, and whether that spread met the target. (Until
``blocks-v3`` the figure was the median of that window alone. Computed from the same blocks,
the median of all of them repeats 1.4-2x more closely at the median and 2.8x at the worst:
``benchmarks/results/estimators.md``.)

``mode="infer"`` times a forward pass under ``inference_mode``; ``mode="train"`` a training
step: forward, cross-entropy, backward and an AdamW update (fused on CUDA).

``Protocol(reference=True)`` also times a fixed reference model (:func:`reference_config`,
the same batch, dtype and mode) in alternate blocks, and judges the spread on the per-block
ratio of the two speeds. A shared CPU's speed drifts by tens of percent from minute to minute
(frequency, neighbours); both models drift together, so their ratio holds where the absolute
figure does not. The report gives the ratio (``reference_ratio``) beside the raw speed;
``measure.costs`` turns it into items/s at the node's calibrated reference speed.

MFU is the achieved model FLOP/s over the device's peak: ``2 * multiply-adds`` per item, times
3 in training (forward + backward), against the datasheet peak for the device name and dtype,
``peak_tflops=`` when given, or a measured matmul rate where the table has no entry (CPUs).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mvit_lab.measure._devices import ProcessPeakMemory, device_name, matmul_tflops, peak_tflops
from mvit_lab.measure.flops import count_flops

# the protocol's data lives in a module without torch (checking a sweep file imports it alone);
# re-exported here, where measure.costs and older callers import it from
from mvit_lab.measure.protocol import (  # noqa: F401
    DTYPES,
    MODES,
    REFERENCE,
    Protocol,
    reference_config,
)
from mvit_lab.models import MultiscaleViT

__all__ = ["Protocol", "ThroughputReport", "measure_throughput", "sdpa_backends"]

@dataclass(frozen=True)
class ThroughputReport:
    device: str
    device_name: str
    mode: str
    dtype: str
    batch_size: int
    compiled: bool
    items_per_s: float  # images or clips per second: the median over every block
    latency_ms: float  # one batch, median step
    spread: float  # (max - min) / median of the most consistent min_blocks blocks
    blocks: int  # blocks timed
    iters: int  # steps per block
    converged: bool  # the spread met the protocol's target
    protocol: str
    seconds: float  # wall time of the whole measurement, warm-up included
    peak_memory_mb: float
    memory_kind: str  # "cuda allocator peak" | "process peak RSS"
    gflops_per_item: float | None  # multiply-adds of one forward (mvit-lab models)
    achieved_tflops: float | None
    peak_tflops: float | None
    peak_source: str | None  # "table" | "given" | "measured matmul"
    mfu: float | None
    sdpa_backend: str | None = None  # the attention kernel(s) that ran, when asked for
    # with Protocol(reference=True): this model's speed over the reference's, block by block
    # (median over every block), and the reference's own speed over them
    reference_ratio: float | None = None
    reference_items_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(device: str, dtype: str, mode: str, batch_size: int) -> torch.device:
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: {device!r} is not a torch device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but no CUDA device is available")
    if dev.type == "cpu" and dtype == "float16":
        raise ValueError("dtype: float16 autocast needs CUDA; on the CPU use float32 or "
                         "bfloat16")
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
    protocol: Protocol | None = None,
    peak_tflops_override: float | None = None,
    backend: bool = False,
) -> ThroughputReport:
    """Time ``model`` on random inputs of ``[batch_size, *input_shape]`` (see the module
    docstring for the protocol).

    ``input_shape`` (without the batch) defaults to an mvit-lab model's configured input.
    ``dtype`` other than float32 runs under autocast (bfloat16 on the CPU too).
    ``backend=True`` also records which scaled-dot-product-attention kernel ran (one profiled
    step).
    """
    dev = _check(device, dtype, mode, batch_size)
    protocol = protocol or Protocol()
    if input_shape is None:
        if not isinstance(model, MultiscaleViT):
            raise ValueError("input_shape: required for models that are not mvit-lab models")
        cfg = model.cfg
        input_shape = (cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    began = time.perf_counter()
    step, optimizer = _step(model, dev, input_shape, batch_size, dtype, mode, compile)
    ref_step = None
    if protocol.reference:
        from mvit_lab.build import build_model

        torch.manual_seed(0)
        ref = build_model(reference_config())
        ref_shape = (ref.cfg.in_chans, *ref.cfg.input_size[1:])
        ref_step, _ = _step(ref, dev, ref_shape, batch_size, dtype, mode, False)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        memory = None
    else:
        memory = ProcessPeakMemory()
    with memory or nullcontext():
        steps = [step] if ref_step is None else [step, ref_step]
        warm = [_warm_up(one, dev, protocol.warmup_s, protocol.warmup_iters) for one in steps]
        iters = [protocol.iters or _block_iters(s, sum(warm), protocol) for s in warm]
        blocks = _timed_blocks(steps, dev, iters, protocol)
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    if dev.type == "cuda":
        peak_bytes, kind = torch.cuda.max_memory_allocated(dev), "cuda allocator peak"
    else:
        peak_bytes = memory.peak_bytes
        kind = "process peak RSS" if memory.exact else "process lifetime peak RSS"
    medians = [b[0] for b in blocks]
    ratio = ref_speed = None
    if ref_step is None:
        spread = _least_spread(medians, protocol.min_blocks)
    else:  # judged on the ratio: the machine's drift moves both models
        ratios = [b[1] / b[0] for b in blocks]
        spread = _least_spread(ratios, protocol.min_blocks)
        ratio = statistics.median(ratios)
        ref_speed = batch_size / statistics.median(b[1] for b in blocks)
    seconds = statistics.median(medians)
    items_per_s = batch_size / seconds
    sdpa = sdpa_backends(step) if backend else None
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
        compiled=compile, items_per_s=items_per_s, latency_ms=seconds * 1e3, spread=spread,
        blocks=len(medians), iters=iters[0], converged=spread <= protocol.target_spread,
        protocol=protocol.name, seconds=time.perf_counter() - began,
        peak_memory_mb=peak_bytes / 2**20, memory_kind=kind, gflops_per_item=gflops,
        achieved_tflops=achieved, peak_tflops=peak, peak_source=source, mfu=mfu,
        sdpa_backend=sdpa, reference_ratio=ratio, reference_items_per_s=ref_speed,
    )


def _step(model: nn.Module, dev: torch.device, input_shape: tuple[int, ...], batch_size: int,
          dtype: str, mode: str, compile: bool) -> tuple[Callable[[], None], Any]:
    """One timed step of ``model`` (inference, or a training step with its AdamW)."""
    model = model.to(dev)
    model.train(mode == "train")
    runner = torch.compile(model) if compile else model
    x = torch.randn(batch_size, *input_shape, device=dev)
    autocast = (torch.autocast(dev.type, dtype=getattr(torch, dtype))
                if dtype != "float32" else nullcontext())
    optimizer = None
    labels = None
    if mode == "train":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12,
                                      **({"fused": True} if dev.type == "cuda" else {}))

    def step() -> None:
        nonlocal labels
        if mode == "infer":
            with torch.inference_mode(), autocast:
                runner(x)
            return
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = runner(x)
            if labels is None:
                labels = torch.randint(0, logits.shape[-1], (batch_size,), device=dev)
            loss = nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()

    return step, optimizer


def _warm_up(step: Callable[[], None], dev: torch.device, seconds: float, least: int) -> float:
    """Run ``step`` for ``seconds`` (at least ``least`` times); returns the last step's time."""
    start = time.perf_counter()
    count, last = 0, 0.0
    while count < least or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        _sync(dev)
        last = time.perf_counter() - t0
        count += 1
    return last


def _block_iters(step_s: float, round_s: float, protocol: Protocol) -> int:
    """Steps per block for a step of ``step_s`` seconds: enough to fill ``block_s``, at least
    ``min_iters``, unless ``min_blocks`` rounds of such blocks (``round_s``: one step of each
    model timed) would take longer than ``max_s``."""
    fill = round(protocol.block_s / max(step_s, 1e-9))
    fits = int(protocol.max_s / max(protocol.min_blocks * round_s, 1e-9))
    return max(1, fill, min(protocol.min_iters, fits))


def _timed_blocks(steps: list[Callable[[], None]], dev: torch.device, iters: list[int],
                  protocol: Protocol) -> list[list[float]]:
    """Per block, the median step time of each of ``steps`` (timed one after the other),
    until the last ``min_blocks`` agree (the first step's times; with two steps, their
    ratio) or time is up."""
    blocks: list[list[float]] = []
    start = time.perf_counter()
    while len(blocks) < protocol.max_blocks:
        blocks.append([statistics.median(_time_steps(one, n, dev))
                       for one, n in zip(steps, iters)])
        if len(blocks) >= protocol.min_blocks:
            last = [b[0] if len(b) == 1 else b[1] / b[0] for b in blocks[-protocol.min_blocks:]]
            if _spread(last) <= protocol.target_spread:
                break
            if time.perf_counter() - start > protocol.max_s:
                break
    return blocks


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def _least_spread(values: list[float], size: int) -> float:
    """The least spread of ``size`` consecutive values: how closely the timing agreed where it
    agreed best (the protocol's convergence test; a disturbed stretch does not count)."""
    size = min(size, len(values))
    return min(_spread(values[i:i + size]) for i in range(len(values) - size + 1))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time_steps(step: Callable[[], None], iters: int, dev: torch.device) -> list[float]:
    """Seconds of each of ``iters`` steps."""
    if dev.type == "cuda":
        events = [torch.cuda.Event(enable_timing=True) for _ in range(iters + 1)]
        torch.cuda.synchronize(dev)
        events[0].record()
        for i in range(iters):
            step()
            events[i + 1].record()
        torch.cuda.synchronize(dev)
        return [events[i].elapsed_time(events[i + 1]) / 1e3 for i in range(iters)]
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


# aten ops behind F.scaled_dot_product_attention, by the kernel they are
_SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
    "aten::_scaled_dot_product_fused_attention_overrideable": "fused (backend)",
}


def sdpa_backends(step: Callable[[], None]) -> str:
    """Which attention kernels one ``step`` ran, from the profiler's op names (``none`` when
    the model has no ``scaled_dot_product_attention``)."""
    from torch.profiler import profile

    with profile() as prof:
        step()
    names = {event.key for event in prof.key_averages()}
    found = sorted({label for op, label in _SDPA_OPS.items() if op in names})
    return ", ".join(found) or "none"
