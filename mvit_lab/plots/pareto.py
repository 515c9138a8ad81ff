"""A Pareto view: any two metrics on the axes, the 2-D front drawn, the full front highlighted.

``_get_front_info`` turns trial records into plain data (tested without rendering);
``_render_front`` draws it; ``plot_front`` is the public call.
"""

from __future__ import annotations

import math
from typing import Any

from mvit_lab.search.pareto import Objective, front_ranks, pareto_front

__all__ = ["plot_front"]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _get_front_info(records: list[dict[str, Any]], objectives: tuple[Objective, ...],
                    x: Objective, y: Objective, color: str | None = None) -> dict[str, Any]:
    """Points (finished trials with both metrics), which are on the full front, and the
    staircase of the 2-D front of (x, y) in x order."""
    ranks = front_ranks(records, objectives)
    points = []
    for rec, rank in zip(records, ranks):
        px, py = _num(rec.get(x.name)), _num(rec.get(y.name))
        if px is None or py is None or rec.get("status", "finished") != "finished" or \
                rec.get("truncated"):
            continue
        points.append(dict(x=px, y=py, color=_num(rec.get(color)) if color else None,
                           on_front=rank == 0, label=str(rec.get("point", "")),
                           run_id=rec.get("run_id")))
    front2d = pareto_front([(p["x"], p["y"]) for p in points], [x.sense, y.sense])
    stairs = sorted((points[i]["x"], points[i]["y"]) for i in front2d)
    return dict(x=x.name, y=y.name, color=color, points=points, front=stairs,
                title=f"{y.name} ({y.sense}) vs {x.name} ({x.sense})")


def _render_front(info: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for on_front, opacity, name in ((False, 0.3, "dominated"), (True, 1.0, "Pareto front")):
        pts = [p for p in info["points"] if p["on_front"] is on_front]
        marker: dict[str, Any] = dict(size=10 if on_front else 7, opacity=opacity)
        if info["color"] and any(p["color"] is not None for p in pts):
            marker.update(color=[p["color"] for p in pts], colorscale="Viridis",
                          showscale=on_front, colorbar=dict(title=info["color"]))
        fig.add_trace(go.Scatter(x=[p["x"] for p in pts], y=[p["y"] for p in pts],
                                 mode="markers", name=name, marker=marker,
                                 text=[p["label"] for p in pts],
                                 customdata=[p["run_id"] for p in pts],
                                 hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
    if info["front"]:
        xs, ys = zip(*info["front"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="2-D front",
                                 line=dict(shape="hv", dash="dot"), hoverinfo="skip"))
    fig.update_layout(title=info["title"], xaxis_title=info["x"], yaxis_title=info["y"],
                      template="plotly_white")
    return fig


def plot_front(records: list[dict[str, Any]], objectives: tuple[Objective, ...],
               x: Objective, y: Objective, color: str | None = None) -> Any:
    """A plotly figure of ``y`` against ``x`` over the trials, front highlighted."""
    return _render_front(_get_front_info(records, objectives, x, y, color))
