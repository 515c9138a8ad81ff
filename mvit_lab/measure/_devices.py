"""Device names, peak FLOP/s for MFU, and process memory: the hardware-facing helpers."""

from __future__ import annotations

import functools
import platform
import resource
import time
from pathlib import Path

import torch

__all__ = ["ProcessPeakMemory", "device_name", "matmul_tflops", "peak_tflops"]

# Dense peak tensor-core TFLOP/s (vendor datasheets), by a substring of the device name; the
# longest matching key wins. float32 on NVIDIA is the non-tensor-core figure.
_PEAKS: dict[str, dict[str, float]] = {
    "H200": dict(bfloat16=989.4, float16=989.4, float32=66.9),
    "H100 NVL": dict(bfloat16=835.5, float16=835.5, float32=60.0),
    "H100 PCIe": dict(bfloat16=756.5, float16=756.5, float32=51.2),
    "H100": dict(bfloat16=989.4, float16=989.4, float32=66.9),  # SXM
    "A100": dict(bfloat16=312.0, float16=312.0, float32=19.5),
    "L40S": dict(bfloat16=362.1, float16=362.1, float32=91.6),
    "A10G": dict(bfloat16=70.0, float16=70.0, float32=31.2),
    "RTX 4090": dict(bfloat16=165.2, float16=165.2, float32=82.6),
    "V100": dict(float16=125.0, float32=15.7),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def peak_tflops(name: str, dtype: str) -> float | None:
    """The datasheet peak for a device name and dtype, or None when the table has no entry."""
    matches = [key for key in _PEAKS if key in name and dtype in _PEAKS[key]]
    if not matches:
        return None
    return _PEAKS[max(matches, key=len)][dtype]


@functools.cache
def matmul_tflops(device_type: str, dtype: str, size: int = 2048, seconds: float = 0.5) -> float:
    """Measured square-matmul TFLOP/s (2 * n^3 per product): the practical peak of a device
    the table does not know (a CPU, say)."""
    device = torch.device(device_type)
    torch_dtype = getattr(torch, dtype)
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    return 2 * size**3 * count / elapsed / 1e12


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ProcessPeakMemory:
    """Peak resident memory of this process over a ``with`` block (Linux: VmHWM, reset through
    /proc/self/clear_refs; elsewhere the lifetime peak, flagged by ``exact=False``)."""

    def __enter__(self) -> ProcessPeakMemory:
        self.exact = True
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.exact = False
        # the reset must show: the high-water mark falls to (about) the current RSS; where it
        # does not (some kernels and sandboxes), the reading is the lifetime peak
        if self.exact and _vm_hwm() > _vm_rss() + 16 * 2**20:
            self.exact = False
        self.peak_bytes = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_bytes = _vm_hwm() if self.exact else _ru_maxrss()
        if self.peak_bytes == 0:
            self.exact = False
            self.peak_bytes = _ru_maxrss()


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _vm_hwm() -> int:
    return _status_kib("VmHWM:")


def _vm_rss() -> int:
    return _status_kib("VmRSS:")


def _ru_maxrss() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if platform.system() == "Darwin" else rss * 1024
