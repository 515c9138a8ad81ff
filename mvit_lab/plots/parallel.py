"""Parallel coordinates from knobs to metrics: one line per finished trial.

``_get_parallel_info`` gives plain data (one axis per knob, then one per metric);
``_render_parallel`` draws it; ``plot_parallel`` is the public call. Knobs with non-numeric
levels (``pool_mode``, a ``depths`` list) become categorical axes: levels sorted, placed at
0, 1, 2, ... and labelled; a list is labelled compactly (``1,2,7,2``; booleans ``T`` / ``F``),
since plotly draws a categorical axis's labels beside it, into its neighbours' space.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from mvit_lab.plots._scale import flat_range

__all__ = ["plot_parallel"]


def _knob_value(rec: dict[str, Any], knob: str) -> Any:
    if knob.startswith("train."):
        return (rec.get("train") or {}).get(knob[len("train."):])
    return (rec.get("model") or {}).get(knob)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _tick(value: Any) -> str:
    """A short label of a level: ``[1, 2, 7, 2]`` -> ``1,2,7,2``, ``[true, false]`` -> ``T,F``."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, list):
        return ",".join(_tick(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def _get_parallel_info(records: list[dict[str, Any]], knobs: Sequence[str],
                       metrics: Sequence[str], color: str | None = None) -> dict[str, Any]:
    """Axes (``label``, ``values``, and ``ticks`` for categorical ones) over the finished,
    untruncated trials that have every metric; ``color`` is one of ``metrics``."""
    rows = [r for r in records if r.get("status", "finished") == "finished"
            and not r.get("truncated") and all(_number(r.get(m)) is not None for m in metrics)]
    dims = []
    for knob in knobs:
        values = [_knob_value(r, knob) for r in rows]
        if all(_number(v) is not None for v in values):
            dims.append(dict(label=knob, values=[float(v) for v in values], ticks=None))
            continue
        levels = sorted({json.dumps(v, sort_keys=True) for v in values})
        dims.append(dict(label=knob,
                         values=[levels.index(json.dumps(v, sort_keys=True)) for v in values],
                         ticks=[_tick(json.loads(t)) for t in levels]))
    for metric in metrics:
        dims.append(dict(label=metric, values=[float(r[metric]) for r in rows], ticks=None))
    color_values = [float(r[color]) for r in rows] if color in metrics else None
    lo_hi = None
    if color_values:
        lo_hi = flat_range(color_values) or (min(color_values), max(color_values))
    return dict(dimensions=dims, color=color, color_values=color_values, color_range=lo_hi,
                run_ids=[r.get("run_id") for r in rows], n=len(rows))


def _render_parallel(info: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    dims = []
    for d in info["dimensions"]:
        dim: dict[str, Any] = dict(label=d["label"], values=d["values"])
        if d["ticks"] is not None:
            dim.update(tickvals=list(range(len(d["ticks"]))), ticktext=d["ticks"],
                       range=[-0.25, max(len(d["ticks"]) - 0.75, 0.25)])
        dims.append(dim)
    line: dict[str, Any] = dict(color="#1f77b4")
    if info["color_values"] is not None:
        lo, hi = info["color_range"]
        line = dict(color=info["color_values"], colorscale="Viridis", showscale=True, cmin=lo,
                    cmax=hi, colorbar=dict(title=dict(text=info["color"])))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line, tickfont=dict(size=10)))
    title = f"knobs → metrics ({info['n']} finished trials)"
    fig.update_layout(title=dict(text=title), template="plotly_white",
                      margin=dict(l=80, r=80, t=80, b=40))
    return fig


def plot_parallel(records: list[dict[str, Any]], knobs: Sequence[str], metrics: Sequence[str],
                  color: str | None = None) -> Any:
    """A plotly parallel-coordinates figure from ``knobs`` to ``metrics``."""
    return _render_parallel(_get_parallel_info(records, knobs, metrics, color))
