"""Measurement: FLOPs, parameters, throughput, latency, memory and MFU."""

from mvit_lab.measure.flops import FlopReport, count_flops
from mvit_lab.measure.speed import ThroughputReport, measure_throughput

__all__ = ["FlopReport", "ThroughputReport", "count_flops", "measure_throughput"]
