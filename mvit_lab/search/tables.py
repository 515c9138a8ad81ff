"""Tables from trial records: ablation levels over seeds, and the Hiera paper's Table 1.

Records are the plain dicts ``search.sweep`` builds from MLflow runs (``status``, ``point``,
``ladder_step``, ``seed`` and metrics). Only finished, untruncated trials count.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from typing import Any

__all__ = ["ablation_table", "compare_cells", "compare_ladders", "format_ablation",
           "format_compare", "format_ladder", "ladder_table", "mean_cell", "mean_ci"]

# two-sided 95% Student t quantiles for 1..30 degrees of freedom
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(values: Iterable[float]) -> tuple[float, float, float]:
    """(mean, std, half-width of the 95% interval); std and interval are 0 for one value."""
    xs = [float(v) for v in values]
    if not xs:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, 0.0, 0.0
    std = statistics.stdev(xs)
    t = _T95[min(len(xs) - 2, len(_T95) - 1)]
    return mean, std, t * std / math.sqrt(len(xs))


def _usable(r: dict[str, Any]) -> bool:
    return r.get("status") == "finished" and not r.get("truncated")


def ladder_table(records: list[dict[str, Any]], metric: str = "val_top1") -> list[dict[str, Any]]:
    """One row per ladder step, in step order: metric mean / std / 95% interval over seeds,
    GFLOPs, throughput, and the speed-up over the first step (Hiera paper, Table 1)."""
    steps: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        if _usable(r) and r.get("ladder_step") is not None:
            steps.setdefault(int(r["ladder_step"]), []).append(r)
    rows = []
    for step in sorted(steps):
        rs = steps[step]
        mean, std, ci = mean_ci(r[metric] for r in rs if r.get(metric) is not None)
        speed = statistics.fmean(r["throughput"] for r in rs if r.get("throughput"))
        rows.append(dict(step=step, name=rs[0].get("point"), seeds=len(rs), mean=mean, std=std,
                         ci95=ci, gflops=rs[0].get("gflops"), throughput=speed))
    if rows:
        first = rows[0]["throughput"]
        for row in rows:
            row["speedup"] = row["throughput"] / first if first else math.nan
    return rows


def mean_cell(mean: float, spread: float, n: int, show_n: bool = True) -> str:
    """``mean ± spread (n)``; one trial has no spread to show: ``mean (n = 1)``."""
    if n < 2:
        return f"{mean:.2f} (n = {n})" if show_n else f"{mean:.2f}"
    return f"{mean:.2f} ± {spread:.2f}" + (f" ({n})" if show_n else "")


def format_ladder(rows: list[dict[str, Any]], metric: str = "val_top1") -> str:
    """The ladder as a markdown table in the form of the Hiera paper's Table 1."""
    lines = [f"| step | {metric} (mean ± std, n) | GFLOPs | throughput (/s) | speed-up |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {mean_cell(r['mean'], r['std'], r['seeds'])} | "
                     f"{r['gflops']:.3f} | {r['throughput']:.1f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def compare_ladders(ladders: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Ladders of the same steps side by side (e.g. from scratch and with MAE), one row per
    step in the first ladder's order: each ladder's ``mean`` / ``std`` / ``seeds`` under its
    label, and ``delta[label]``: its mean minus the first ladder's."""
    if not ladders:
        return []
    first_label = ladders[0][0]
    names = [r["name"] for r in ladders[0][1]]
    for _, rows in ladders[1:]:
        names += [r["name"] for r in rows if r["name"] not in names]
    by_label = {label: {r["name"]: r for r in rows} for label, rows in ladders}
    out = []
    for name in names:
        row: dict[str, Any] = dict(name=name, results={}, delta={})
        for label, _ in ladders:
            r = by_label[label].get(name)
            if r is not None:
                row.setdefault("gflops", r.get("gflops"))
                row["results"][label] = dict(mean=r["mean"], std=r["std"], seeds=r["seeds"])
        base = row["results"].get(first_label)
        for label, _ in ladders[1:]:
            r = row["results"].get(label)
            row["delta"][label] = r["mean"] - base["mean"] if r and base else math.nan
        out.append(row)
    return out


def format_compare(rows: list[dict[str, Any]], labels: list[str],
                   metric: str = "val_top1") -> str:
    """``compare_ladders`` as a markdown table: one column per ladder, then the differences
    from the first."""
    head = ["step", "GFLOPs", *(f"{metric} {label}" for label in labels),
            *(f"{label} − {labels[0]}" for label in labels[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(compare_cells(r, labels)) + " |" for r in rows]
    return "\n".join(lines)


def compare_cells(row: dict[str, Any], labels: list[str], gflops: str = ".3f") -> list[str]:
    """One ``compare_ladders`` row as text cells: step, GFLOPs, ``mean ± std (n)`` per ladder
    (– where it has no finished trial), then the differences from the first ladder."""
    cells = [row["name"], format(row["gflops"], gflops) if row.get("gflops") is not None
             else ""]
    for label in labels:
        res = row["results"].get(label)
        cells.append(mean_cell(res["mean"], res["std"], res["seeds"]) if res else "–")
    cells += [f"{row['delta'][label]:+.2f}" if not math.isnan(row["delta"][label]) else "–"
              for label in labels[1:]]
    return cells


def ablation_table(records: list[dict[str, Any]], factor: str, metric: str = "val_top1",
                   baseline: Any = None) -> list[dict[str, Any]]:
    """One row per level of ``factor`` (a model knob, read from each record's ``model``):
    the metric's mean, std and 95% interval over every trial at that level (seeds and the
    other factors' levels), and the difference from the ``baseline`` level (default: the
    first level seen)."""
    levels: dict[str, list[float]] = {}
    shown: dict[str, Any] = {}
    for r in records:
        if not _usable(r) or r.get(metric) is None or factor not in (r.get("model") or {}):
            continue
        value = r["model"][factor]
        key = json.dumps(value, sort_keys=True)
        shown.setdefault(key, value)
        levels.setdefault(key, []).append(float(r[metric]))
    if not levels:
        return []
    base_key = json.dumps(baseline, sort_keys=True) if baseline is not None else next(iter(levels))
    if base_key not in levels:
        raise ValueError(f"baseline: {factor}={baseline!r} has no finished trials")
    base_mean = mean_ci(levels[base_key])[0]
    rows = []
    for key, values in levels.items():
        mean, std, ci = mean_ci(values)
        rows.append(dict(factor=factor, level=shown[key], n=len(values), mean=mean, std=std,
                         ci95=ci, diff=mean - base_mean, baseline=key == base_key))
    return rows


def format_ablation(rows: list[dict[str, Any]], metric: str = "val_top1") -> str:
    """An ablation table as markdown: level, mean ± 95% interval (n), difference."""
    if not rows:
        return ""
    lines = [f"| {rows[0]['factor']} | {metric} (mean ± 95% CI, n) | vs baseline |",
             "|---|---|---|"]
    for r in rows:
        diff = "baseline" if r["baseline"] else f"{r['diff']:+.2f}"
        lines.append(f"| {r['level']} | {mean_cell(r['mean'], r['ci95'], r['n'])} | {diff} |")
    return "\n".join(lines)
