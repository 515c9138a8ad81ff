"""A Pareto view: any two metrics on the axes, their front drawn and highlighted.

``_get_front_info`` turns trial records into plain data (tested without rendering);
``_render_front`` draws it; ``plot_front`` is the public call.

The front drawn is that of the two metrics on the axes: its points are highlighted and joined
by the attainment staircase, every other point is faded. With more than two objectives, points
on the front of all of them that the two axes alone dominate are drawn as diamonds, and a third
metric can colour every point. Hovering a point shows how its architecture differs from the
search space's base (the record's ``diff``: ``(knob, base value, value)`` triples).

Legend swatches have fixed colours (the front blue with an outline, the rest grey) in every
view, whatever colour scale the points take. An axis or colour scale whose values are all equal
gets an explicit range around that value, never plotly's ``v - 1 .. v + 1`` (negative GFLOPs).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from mvit_lab.plots._scale import flat_range
from mvit_lab.search.pareto import Objective, front_ranks, pareto_front

__all__ = ["plot_front"]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _get_front_info(records: list[dict[str, Any]], objectives: tuple[Objective, ...],
                    x: Objective, y: Objective, color: str | None = None,
                    ranks: list[int | None] | None = None) -> dict[str, Any]:
    """Plain data of the view of ``y`` against ``x``.

    ``points``: the finished, untruncated trials with both metrics, each with ``on_front``
    (not dominated in ``(x, y)``), ``rank`` (its rank over all ``objectives``; None if it lacks
    one) and ``diff`` (``"knob: base -> value"`` lines). ``front``: the front's ``(x, y)`` in x
    order, drawn as a staircase of shape ``line_shape``. ``missing``: finished trials without
    ``x`` or ``y``; ``not_finished``: the other trials, counted by status. ``ranks``: the
    records' :func:`front_ranks` over ``objectives``, when the caller has them already.
    """
    if ranks is None:
        ranks = front_ranks(records, objectives)
    points: list[dict[str, Any]] = []
    missing = 0
    not_finished: dict[str, int] = {}
    for rec, rank in zip(records, ranks):
        status = rec.get("status", "finished")
        if status != "finished" or rec.get("truncated"):
            key = "truncated" if status == "finished" else str(status)
            not_finished[key] = not_finished.get(key, 0) + 1
            continue
        px, py = _num(rec.get(x.name)), _num(rec.get(y.name))
        if px is None or py is None:
            missing += 1
            continue
        points.append(dict(x=px, y=py, color=_num(rec.get(color)) if color else None,
                           on_front=False, rank=rank, label=str(rec.get("point") or ""),
                           seed=rec.get("seed"), run_id=rec.get("run_id"),
                           diff=[f"{k}: {_short(b)} → {_short(v)}"
                                 for k, b, v in rec.get("diff") or ()]))
    for i in pareto_front([(p["x"], p["y"]) for p in points], [x.sense, y.sense]):
        points[i]["on_front"] = True
    colors = [p["color"] for p in points if p["color"] is not None]
    return dict(
        x=x.name, y=y.name, x_sense=x.sense, y_sense=y.sense, color=color,
        color_range=(flat_range(colors) or (min(colors), max(colors))) if colors else None,
        x_range=flat_range([p["x"] for p in points]),
        y_range=flat_range([p["y"] for p in points]),
        objectives=[o.name for o in objectives], points=points,
        front=sorted((p["x"], p["y"]) for p in points if p["on_front"]),
        # the best y reachable at each x: flat until the next front point (x min) or up to it
        line_shape="hv" if x.sense == "min" else "vh",
        missing=missing, not_finished=not_finished,
        title=f"{y.name} ({y.sense}) vs {x.name} ({x.sense})")


def _hover(p: dict[str, Any], info: dict[str, Any]) -> str:
    lines = [f"<b>{html.escape(p['label'] or str(p['run_id']))}</b>"
             + (f" (seed {html.escape(str(p['seed']))})" if p["seed"] is not None else ""),
             f"{info['y']}: {p['y']:.4g}", f"{info['x']}: {p['x']:.4g}"]
    if info["color"] and p["color"] is not None:
        lines.append(f"{info['color']}: {p['color']:.4g}")
    if p["rank"] is not None and len(info["objectives"]) > 2:
        lines.append(f"front rank over {', '.join(info['objectives'])}: {p['rank']}")
    if p["diff"]:
        lines.append("<i>vs the search space's base:</i>")
        lines += [html.escape(d) for d in p["diff"]]
    elif p["diff"] == []:
        lines.append("<i>the search space's base</i>")
    return "<br>".join(lines)


# legend swatches: one colour per kind of point in every view (a colour scale colours the points)
_SWATCH = {"dominated": "#7f7f7f", "all": "#7f7f7f", "axes": "#1f77b4"}


def _render_front(info: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    if info["front"]:
        xs, ys = zip(*info["front"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="front",
                                 line=dict(shape=info["line_shape"], dash="dot", color="#444"),
                                 hoverinfo="skip", showlegend=False))
    full = len(info["objectives"]) > 2
    groups = [("dominated", "dominated",
               lambda p: not p["on_front"] and not (full and p["rank"] == 0),
               dict(size=8, opacity=0.35, symbol="circle")),
              ("all", f"front of all {len(info['objectives'])} objectives",
               lambda p: full and not p["on_front"] and p["rank"] == 0,
               dict(size=11, opacity=0.6, symbol="diamond")),
              ("axes", f"front of {info['y']} vs {info['x']}", lambda p: p["on_front"],
               dict(size=13, opacity=1.0, symbol="circle",
                    line=dict(width=1.5, color="#222")))]
    for i, (kind, name, keep, marker) in enumerate(groups):
        is_front = i == len(groups) - 1  # drawn last, on top; always present for the legend
        pts = [p for p in info["points"] if keep(p)]
        if not pts and not is_front:
            continue
        # the legend's entry: a point-less trace with the swatch colour
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 legendgroup=kind, hoverinfo="skip",
                                 marker=dict(marker, color=_SWATCH[kind])))
        if info["color_range"] is not None:
            lo, hi = info["color_range"]
            marker = dict(marker, color=[p["color"] for p in pts], colorscale="Viridis",
                          cmin=lo, cmax=hi, showscale=is_front,
                          colorbar=dict(title=dict(text=info["color"])))
        else:
            marker = dict(marker, color=_SWATCH[kind])
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=name,
            legendgroup=kind, showlegend=False, marker=marker,
            text=[_hover(p, info) for p in pts], customdata=[p["run_id"] for p in pts],
            hovertemplate="%{text}<extra></extra>"))
    if not info["points"]:
        fig.add_annotation(text=f"no finished trials with both {info['x']} and {info['y']}",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=dict(text=info["title"]), xaxis_title=info["x"],
                      yaxis_title=info["y"], template="plotly_white", hovermode="closest",
                      legend=dict(orientation="h", yanchor="bottom", y=-0.3),
                      margin=dict(l=60, r=20, t=50, b=40))
    if info.get("x_range"):
        fig.update_xaxes(range=list(info["x_range"]))
    if info.get("y_range"):
        fig.update_yaxes(range=list(info["y_range"]))
    return fig


def plot_front(records: list[dict[str, Any]], objectives: tuple[Objective, ...],
               x: Objective, y: Objective, color: str | None = None) -> Any:
    """A plotly figure of ``y`` against ``x`` over the trials, their front highlighted."""
    return _render_front(_get_front_info(records, objectives, x, y, color))
