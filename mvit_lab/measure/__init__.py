"""Measurement: FLOPs, parameters, throughput, latency, memory and MFU; costs measured in
isolation and cached.

The names below are imported on first use (PEP 562): ``mvit_lab.measure.protocol`` (what a
sweep file's ``measure`` section is checked against) then imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvit_lab.measure.costs import CostCache, CostRecord, measure_costs
    from mvit_lab.measure.flops import FlopReport, count_flops
    from mvit_lab.measure.speed import Protocol, ThroughputReport, measure_throughput

__all__ = ["CostCache", "CostRecord", "FlopReport", "Protocol", "ThroughputReport",
           "count_flops", "measure_costs", "measure_throughput"]

_LAZY = {"CostCache": "costs", "CostRecord": "costs", "measure_costs": "costs",
         "FlopReport": "flops", "count_flops": "flops", "Protocol": "speed",
         "ThroughputReport": "speed", "measure_throughput": "speed"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mvit_lab.measure' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mvit_lab.measure.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
