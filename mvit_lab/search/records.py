"""A sweep's trials read back from MLflow as plain records: the one reader that the sweep
driver, the CLI (``pareto``, ``ladders``, ``measure``) and the dashboards share.

A record is a dict: ``run_id``, ``run_name``, ``status`` (the trial's own status tag:
finished, pruned, stopped, failed, interrupted, running), ``truncated``, ``point``, ``seed``,
``ladder_step``, ``design_space``, ``reason``, ``stopped_epoch`` and ``stopped_rung``
(early-stopped trials), ``model`` (the architecture's knobs), every objective, the usual cost
and accuracy metrics, and the labels of the cost axes (``cost_device``,
``cost_protocol``, ...; see :mod:`mvit_lab.measure.costs`).
"""

from __future__ import annotations

import json
from typing import Any

from mvit_lab.search.pareto import Objective

__all__ = ["COST_METRICS", "COST_TAGS", "SPACE_ARTIFACT", "cost_labels", "cost_summary",
           "param_value", "sweep_records", "unflatten"]

SPACE_ARTIFACT = "search_space.json"  # the resolved search space, on the parent run

# the metrics every record carries (None when a trial did not log them)
METRICS = ("gflops", "params", "throughput", "train_throughput", "latency_ms",
           "peak_memory_mb", "train_peak_memory_mb", "val_top1", "val_top5")
# measured on a device (labelled with it, see COST_TAGS), unlike GFLOPs and params
COST_METRICS = frozenset({"throughput", "latency_ms", "peak_memory_mb", "train_throughput",
                          "train_latency_ms", "train_peak_memory_mb"})
# where each cost figure came from: device, dtype, batch and timing protocol
COST_TAGS = ("cost_device", "cost_dtype", "cost_batch", "cost_protocol", "cost_by",
             # CPU figures: the node's reference speed each mode was priced at (measure.costs)
             "cost_infer_calibration", "cost_train_calibration")


def param_value(text: str) -> Any:
    """A flattened MLflow param back to its value (JSON, or the plain string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse(text: str, memo: dict[str, tuple] | None) -> Any:
    """``param_value(text)``, its immutable results remembered in ``memo``: a sweep logs a
    few values per knob thousands of times. Lists and dicts are parsed each time, so that
    every record gets its own."""
    if memo is None:
        return param_value(text)
    hit = memo.get(text)
    if hit is not None:
        return hit[0]
    value = param_value(text)
    if not isinstance(value, (list, dict)):
        memo[text] = (value,)
    return value


def unflatten(params: dict[str, str], prefix: str,
              memo: dict[str, tuple] | None = None) -> dict[str, Any]:
    """``{"a.b": "1", "a.c": "[1, 2]"}`` under ``"a."`` -> ``{"b": 1, "c": [1, 2]}`` (nested):
    a run's flattened params under ``prefix`` back to the tree they were logged from.
    ``memo``: shared between calls over many runs (see ``_parse``)."""
    out: dict[str, Any] = {}
    for key, text in sorted(params.items()):
        if not key.startswith(prefix):
            continue
        *parents, leaf = key[len(prefix):].split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = _parse(text, memo)
    return out


def _rows(runs: Any) -> list[dict[str, Any]]:
    """A runs frame's rows as dicts (much faster than ``iterrows``), or rows as they are."""
    return runs.to_dict("records") if hasattr(runs, "to_dict") else list(runs)


def _float(text: Any) -> float | None:
    try:
        return float(text) if isinstance(text, str) else None
    except ValueError:
        return None


def sweep_records(runs: Any, objectives: tuple[Objective, ...]) -> list[dict[str, Any]]:
    """One record per trial run of ``runs`` (a :func:`mvit_lab.tracking.runs_dataframe`, or
    its rows as dicts: :func:`mvit_lab.tracking.flat_rows`)."""
    out = []
    memo: dict[str, tuple] = {}
    for row in _rows(runs):
        status = row.get("tag.status") or row.get("status", "").lower()
        rec = dict(run_id=row["run_id"], run_name=row.get("run_name"), status=status,
                   truncated=row.get("tag.truncated") == "true",
                   point=row.get("tag.point"), seed=row.get("tag.seed"),
                   ladder_step=row.get("tag.ladder_step"),
                   design_space=row.get("tag.design_space"),
                   reason=row.get("tag.reason"),
                   # early-stopped (MOASHA): the epoch and rung where it stopped
                   stopped_epoch=_float(row.get("tag.stopped_epoch")),
                   stopped_rung=_float(row.get("tag.stopped_rung")))
        rec["model"] = {col[len("param.model."):]: _parse(value, memo)
                        for col, value in row.items()
                        if col.startswith("param.model.") and isinstance(value, str)}
        for name in {o.name for o in objectives} | set(METRICS):
            value = row.get(f"metric.{name}")
            rec[name] = None if value is None or value != value else float(value)
        for tag in COST_TAGS:
            value = row.get(f"tag.{tag}")
            rec[tag] = value if isinstance(value, str) else None
        out.append(rec)
    return out


def cost_labels(records: list[dict[str, Any]]) -> list[str]:
    """The distinct labels of the cost axes of ``records``: ``device, dtype, batch N,
    protocol`` and, for figures priced against the CPU reference, the node's calibrated
    reference speed (more than one label means the axes mix devices, protocols or
    calibrations: a CPU calibration is the node's speed when it was timed, and a shared host's
    speed moves by up to 2x between hours)."""
    labels = []
    for rec in records:
        if rec.get("cost_device") is None:
            continue
        label = (f"{rec['cost_device']}, {rec.get('cost_dtype')}, batch {rec.get('cost_batch')}"
                 f", {rec.get('cost_protocol')}")
        speeds = [f"{float(rec[f'cost_{mode}_calibration']):.0f}/s {mode}"
                  for mode in ("infer", "train") if rec.get(f"cost_{mode}_calibration")]
        if speeds:
            label += f", reference calibrated at {' and '.join(speeds)}"
        if label not in labels:
            labels.append(label)
    return labels


def cost_summary(records: list[dict[str, Any]]) -> str:
    """One line saying where the throughput / memory axes come from."""
    labels = cost_labels(records)
    if not labels:
        return "costs: none measured yet"
    by = {rec.get("cost_by") for rec in records if rec.get("cost_device") is not None}
    if len(labels) == 1 and len(by) == 1 and str(next(iter(by))).startswith("replay table"):
        return f"costs: from the {next(iter(by))} (measured there on {labels[0]})"
    if len(labels) == 1:
        return f"costs: measured in isolation on {labels[0]}"
    return (f"costs: WARNING, {len(labels)} different measurement setups mixed on the cost axes "
            f"(re-measure on one device with `mvit-lab measure`): " + "; ".join(labels))
