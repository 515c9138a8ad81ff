"""An architecture's cost on a device, measured once, in isolation, and cached.

A cost (throughput, latency, peak memory) belongs to (architecture, device, dtype, batch,
mode), not to the trial that asked for it. :func:`measure_costs` looks each mode up in a
:class:`CostCache` keyed by exactly those (plus the torch version and the timing protocol);
on a miss it takes the device's lock exclusively (``measure.isolation``: co-tenant trials pause
between two steps), looks again (a co-tenant may have just measured the same architecture),
measures with the adaptive protocol (``measure.speed``) and stores the result. So seeds,
ladder steps that do not change cost and repeated draws of one architecture are measured
once per device, and no measurement times another trial's work.

The cache is a folder of small JSON files, one per key, written atomically (a rename), so
concurrent trials and nodes sharing the folder never read a half-written entry.

On the CPU (``protocol.reference`` unset or true) each measurement also times the reference
model in alternate blocks (``measure.speed``) and reports the architecture's speed at the
node's calibrated reference speed: ``items_per_s = ratio * calibration``. The calibration is
the reference model timed alone, once per node, (dtype, batch, mode, torch) and kept in
``$MVIT_LAB_CACHE/calibration`` (default ``~/.cache/mvit-lab/calibration``), so two sweeps on one
node share it and their figures differ only by the ratio's noise, not by the machine's drift
between them. The raw figure is kept beside it (``raw_items_per_s``); on a GPU, where isolated
timings hold, no reference is timed unless asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mvit_lab.config import ArchConfig
from mvit_lab.measure._devices import device_name
from mvit_lab.measure.isolation import device_lock, foreground
from mvit_lab.measure.speed import (
    MODES,
    REFERENCE,
    Protocol,
    ThroughputReport,
    measure_throughput,
)

__all__ = ["CostCache", "CostRecord", "calibration_dir", "calibration_protocol", "cost_key",
           "cost_metrics", "cost_tags", "measure_costs", "reference_speed"]

log = logging.getLogger(__name__)

# the metric names a cost record becomes, by mode
METRICS = {"infer": ("throughput", "latency_ms", "peak_memory_mb"),
           "train": ("train_throughput", "train_latency_ms", "train_peak_memory_mb")}


def cost_key(cfg: ArchConfig, device: str, dtype: str, batch_size: int, mode: str,
             protocol: str, torch_version: str | None = None) -> str:
    """The cache key: a hash of everything a cost depends on, and nothing else."""
    fields = dict(arch=cfg.to_dict(), device=device, dtype=dtype, batch_size=batch_size,
                  mode=mode, protocol=protocol, torch=torch_version or torch.__version__)
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CostRecord:
    """One mode's measurement, with what it was measured on and how."""

    key: str
    mode: str
    device_name: str
    dtype: str
    batch_size: int
    protocol: str
    torch_version: str
    items_per_s: float
    latency_ms: float
    peak_memory_mb: float
    memory_kind: str
    spread: float
    blocks: int
    converged: bool
    isolated: bool  # the device lock was held (False: it timed out, see measure.isolation)
    waited_s: float  # waiting for co-tenants' steps to finish
    seconds: float  # the measurement itself
    sdpa_backend: str | None = None
    nice: int = 0  # the measuring process's nice value (Ray workers start at 15)
    measured_at: float = field(default_factory=time.time)
    # with a reference: the speed as timed, the ratio to the reference in the same window,
    # and the node's calibrated reference speed that items_per_s = ratio * calibration uses
    raw_items_per_s: float | None = None
    reference_ratio: float | None = None
    reference_calibration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @classmethod
    def from_report(cls, key: str, report: ThroughputReport, waited: float | None,
                    nice: int = 0, calibration: float | None = None) -> CostRecord:
        speed = report.items_per_s
        extra: dict[str, Any] = {}
        if report.reference_ratio is not None and calibration is not None:
            speed = report.reference_ratio * calibration
            extra = dict(raw_items_per_s=report.items_per_s,
                         reference_ratio=report.reference_ratio,
                         reference_calibration=calibration)
        return cls(key=key, mode=report.mode, device_name=report.device_name,
                   dtype=report.dtype, batch_size=report.batch_size, protocol=report.protocol,
                   torch_version=torch.__version__, items_per_s=speed,
                   latency_ms=1e3 * report.batch_size / speed,
                   peak_memory_mb=report.peak_memory_mb,
                   memory_kind=report.memory_kind, spread=report.spread, blocks=report.blocks,
                   converged=report.converged, isolated=waited is not None,
                   waited_s=waited or 0.0, seconds=report.seconds,
                   sdpa_backend=report.sdpa_backend, nice=nice, **extra)


class CostCache:
    """A folder of cost records, one JSON file per key (``None``: no caching)."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> CostRecord | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.json"
        try:
            return CostRecord.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as err:  # a damaged entry: measure again
            log.warning("cost cache: ignoring unreadable %s (%s)", path, err)
            return None

    def put(self, record: CostRecord) -> None:
        if self.directory is None:
            return
        path = self.directory / f"{record.key}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)

    def records(self) -> list[CostRecord]:
        if self.directory is None:
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            record = self.get(path.stem)
            if record is not None:
                out.append(record)
        return out


def measure_costs(cfg: ArchConfig, *, device: str = "cpu", dtype: str = "float32",
                  batch_size: int = 32, modes: tuple[str, ...] = MODES,
                  protocol: Protocol | None = None, cache: CostCache | None = None,
                  lock_timeout: float | None = 600.0, backend: bool = False,
                  refresh: bool = False) -> tuple[dict[str, CostRecord], dict[str, bool]]:
    """Each mode's :class:`CostRecord` for ``cfg``, and whether it came from the cache.

    ``refresh=True`` measures again even on a hit (and replaces the entry).
    """
    from mvit_lab.build import build_model

    protocol = protocol or Protocol()
    cache = cache or CostCache(None)
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise ValueError(f"modes: each must be one of {', '.join(MODES)}; got {list(modes)}")
    dev = torch.device(device)
    if protocol.reference is None:  # auto: a shared CPU drifts, an isolated GPU does not
        protocol = dataclasses.replace(protocol, reference=dev.type == "cpu")
    name = device_name(dev)
    keys = {m: cost_key(cfg, name, dtype, batch_size, m, protocol.name) for m in modes}
    out: dict[str, CostRecord] = {}
    cached: dict[str, bool] = {}
    for mode in modes:
        hit = None if refresh else cache.get(keys[mode])
        if hit is not None:
            out[mode], cached[mode] = hit, True
    missing = [m for m in modes if m not in out]
    if not missing:
        return out, cached
    lock = device_lock(dev)
    with lock.exclusive(timeout=lock_timeout) as waited, foreground() as nice:
        for mode in missing:
            # a co-tenant may have measured it while this one waited for the lock
            hit = None if refresh else cache.get(keys[mode])
            if hit is not None:
                out[mode], cached[mode] = hit, True
                continue
            calibration = (reference_speed(device, dtype, batch_size, mode, protocol)
                           if protocol.reference else None)
            torch.manual_seed(0)
            report = measure_throughput(build_model(cfg), batch_size=batch_size, device=device,
                                        dtype=dtype, mode=mode, protocol=protocol,
                                        backend=backend)
            record = CostRecord.from_report(keys[mode], report, waited, nice, calibration)
            if record.isolated:  # an unisolated figure is reported, never reused
                cache.put(record)
            out[mode], cached[mode] = record, False
    return out, cached


def calibration_dir() -> Path:
    """Where this node keeps its reference speeds: ``$MVIT_LAB_CACHE/calibration`` (default
    ``~/.cache/mvit-lab/calibration``), beside the dataset manifests."""
    from mvit_lab.data.manifest import cache_dir

    return cache_dir() / "calibration"


def calibration_protocol(protocol: Protocol) -> Protocol:
    """The reference timed alone: the measurements' protocol with three times the blocks."""
    return dataclasses.replace(protocol, reference=False, min_blocks=3 * protocol.min_blocks,
                               max_blocks=max(protocol.max_blocks, 3 * protocol.min_blocks))


def reference_speed(device: str, dtype: str, batch_size: int, mode: str,
                    protocol: Protocol | None = None) -> float:
    """The reference model's items/s on this node for (device, dtype, batch, mode, torch,
    protocol): timed alone once (call it holding the device lock exclusively), then read
    back."""
    from mvit_lab.build import build_model
    from mvit_lab.measure.speed import reference_config

    name = device_name(torch.device(device))
    timing = calibration_protocol(protocol or Protocol())
    key = cost_key(reference_config(), name, dtype, batch_size, mode,
                   f"calibration:{REFERENCE}:{timing.name}")
    folder = calibration_dir()
    path = folder / f"{key}.json"
    try:
        return float(json.loads(path.read_text())["items_per_s"])
    except FileNotFoundError:
        pass
    except (ValueError, TypeError, KeyError) as err:  # damaged: calibrate again
        log.warning("calibration: ignoring unreadable %s (%s)", path, err)
    torch.manual_seed(0)
    report = measure_throughput(build_model(reference_config()), batch_size=batch_size,
                                device=device, dtype=dtype, mode=mode,
                                protocol=timing)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(reference=REFERENCE, device_name=name, dtype=dtype,
                                   batch_size=batch_size, mode=mode, torch=torch.__version__,
                                   items_per_s=report.items_per_s, spread=report.spread,
                                   measured_at=time.time()), indent=1) + "\n")
    os.replace(tmp, path)
    log.info("calibrated %s on %s (%s, batch %d, %s): %.1f items/s", REFERENCE, name, dtype,
             batch_size, mode, report.items_per_s)
    return report.items_per_s


def cost_metrics(records: dict[str, CostRecord]) -> dict[str, float]:
    """The records as trial metrics: ``throughput``, ``latency_ms``, ``peak_memory_mb`` for
    inference and ``train_*`` for the training step."""
    out: dict[str, float] = {}
    for mode, record in records.items():
        speed, latency, memory = METRICS[mode]
        out.update({speed: record.items_per_s, latency: record.latency_ms,
                    memory: record.peak_memory_mb})
    return out


def cost_tags(records: dict[str, CostRecord], cached: dict[str, bool]) -> dict[str, str]:
    """What labels a cost axis: device, dtype, batch, protocol, and where each figure came
    from (measured now, or the cache)."""
    first = next(iter(records.values()))
    tags = dict(cost_device=first.device_name, cost_dtype=first.dtype,
                cost_batch=str(first.batch_size), cost_protocol=first.protocol,
                cost_torch=first.torch_version)
    for mode, record in records.items():
        tags[f"cost_{mode}_key"] = record.key
        tags[f"cost_{mode}_source"] = "cache" if cached.get(mode) else "measured"
        tags[f"cost_{mode}_spread"] = f"{record.spread:.4f}"
        tags[f"cost_{mode}_isolated"] = str(record.isolated).lower()
        if record.sdpa_backend:
            tags["cost_sdpa_backend"] = record.sdpa_backend
        if record.reference_ratio is not None:  # the speed as timed, before the reference
            tags[f"cost_{mode}_raw"] = f"{record.raw_items_per_s:.2f}"
            tags[f"cost_{mode}_reference_ratio"] = f"{record.reference_ratio:.4f}"
            tags[f"cost_{mode}_calibration"] = f"{record.reference_calibration:.2f}"
            tags["cost_reference"] = (f"{REFERENCE}: items/s = ratio to the reference model x "
                                      "the node's calibrated reference speed")
    return tags
