"""Measurement: FLOPs, parameters, throughput, latency, memory and MFU; costs measured in
isolation and cached."""

from mvit_lab.measure.costs import CostCache, CostRecord, measure_costs
from mvit_lab.measure.flops import FlopReport, count_flops
from mvit_lab.measure.speed import Protocol, ThroughputReport, measure_throughput

__all__ = ["CostCache", "CostRecord", "FlopReport", "Protocol", "ThroughputReport",
           "count_flops", "measure_costs", "measure_throughput"]
