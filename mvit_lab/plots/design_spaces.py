"""Design-space figures: error EDFs (raw and complexity-normalised), error against each
sampled knob with its bootstrapped good range, and error against GFLOPs and throughput.

Every figure takes the plain data of
:func:`mvit_lab.search.design_analysis.analyse_design_spaces`. ``_get_*_info`` returns plain
data (tested without rendering), ``_render_*`` draws it, ``plot_design_spaces`` returns every
figure by name. One colour per space in every figure.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

__all__ = ["plot_design_spaces"]

# plotly's default qualitative colours: one per space, the same in every figure
COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
          "#b6e880")


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _get_edf_info(analysis: dict[str, Any], normalised: bool) -> dict[str, Any]:
    """One step line per space: ``x`` the errors, ``y`` the (normalised) EDF, and the legend
    label ``name (n | min | mean)``."""
    key = "nedf" if normalised and analysis["normalised"] else "edf"
    lines = []
    for i, s in enumerate(analysis["spaces"]):
        x, y = s[key]
        # start the staircase at F = 0 just left of the first error
        lines.append(dict(name=s["name"], color=_color(i), x=[x[0], *x], y=[0.0, *y],
                          label=f"{s['name']} ({s['n']} | {s['min']:.1f} | {s['mean']:.1f})"))
    metric = analysis["metric"]
    error = f"error (100 − {metric})" if analysis["sense"] == "max" else metric
    title = "error EDF" if key == "edf" else (
        f"error EDF, normalised to the {analysis['complexity']} distribution of "
        f"{analysis['reference']}")
    return dict(lines=lines, x_title=error, title=title)


def _render_edf(info: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for line in info["lines"]:
        fig.add_trace(go.Scatter(x=line["x"], y=line["y"], mode="lines", line_shape="hv",
                                 name=line["label"], line=dict(color=line["color"], width=2)))
    fig.update_layout(title=info["title"], xaxis_title=info["x_title"],
                      yaxis_title="cumulative fraction of models", yaxis_range=[0, 1.02],
                      legend_title_text="space (n | min | mean)", template="plotly_white")
    return fig


def _get_scatter_info(analysis: dict[str, Any], axis: str) -> dict[str, Any]:
    """Error against a per-model quantity: ``axis`` is ``complexity`` (GFLOPs),
    ``throughput``, or a knob name (then each space's good range / levels come along)."""
    series = []
    kind = "num"
    label = axis
    for i, s in enumerate(analysis["spaces"]):
        good = None
        if axis == "complexity":
            xs, label = s["complexity"], analysis["complexity"]
        elif axis == "throughput":
            xs = s["throughput"]
        else:
            knob = s["knobs"].get(axis)
            if knob is None:
                continue
            xs, kind, label, good = knob["values"], knob["kind"], knob["label"], knob["good"]
        pts = [(x, e, p) for x, e, p in zip(xs, s["errors"], s["points"])
               if x is not None and (not isinstance(x, float) or math.isfinite(x))]
        series.append(dict(name=s["name"], color=_color(i), x=[p[0] for p in pts],
                           y=[p[1] for p in pts], text=[p[2] for p in pts],
                           good=None if good is None else (
                               dict(low=good.low, median=good.median, high=good.high)
                               if kind == "num" else dict(good))))
    return dict(series=series, axis=axis, kind=kind, x_title=label,
                y_title="error" if analysis["sense"] == "min" else
                f"error (100 − {analysis['metric']})",
                log_x=axis in ("complexity", "throughput"))


def _render_scatter(info: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for s in info["series"]:
        fig.add_trace(go.Scatter(x=s["x"], y=s["y"], mode="markers", name=s["name"],
                                 text=s["text"], marker=dict(color=s["color"], size=8,
                                                             opacity=0.75)))
        good = s["good"]
        if good and info["kind"] == "num":  # the good range as a band, its median dashed
            fig.add_vrect(x0=good["low"], x1=good["high"], fillcolor=s["color"], opacity=0.12,
                          line_width=0)
            fig.add_vline(x=good["median"], line=dict(color=s["color"], dash="dash"))
    title = f"error vs {info['x_title']}"
    if info["kind"] == "num" and any(s["good"] for s in info["series"]):
        title += " (bands: good range, median dashed: 2.5–97.5% of the best of 25% subsamples)"
    elif info["kind"] == "cat":
        shares = "; ".join(
            f"{s['name']}: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["good"].items())
            for s in info["series"] if s["good"])
        title += f"<br><sup>best of 25% subsamples by level: {shares}</sup>"
    fig.update_layout(title=title, xaxis_title=info["x_title"], yaxis_title=info["y_title"],
                      template="plotly_white")
    if info["log_x"]:
        fig.update_xaxes(type="log")
    if info["kind"] == "cat":
        fig.update_xaxes(type="category")
    return fig


def plot_design_spaces(analysis: dict[str, Any]) -> dict[str, go.Figure]:
    """Every figure: ``edf``, ``nedf``, ``gflops``, ``throughput`` and ``knob.<name>``."""
    figs = {"edf": _render_edf(_get_edf_info(analysis, False)),
            "nedf": _render_edf(_get_edf_info(analysis, True)),
            "gflops": _render_scatter(_get_scatter_info(analysis, "complexity"))}
    if any(t is not None for s in analysis["spaces"] for t in s["throughput"]):
        figs["throughput"] = _render_scatter(_get_scatter_info(analysis, "throughput"))
    knobs = dict.fromkeys(k for s in analysis["spaces"] for k in s["knobs"])
    for knob in knobs:
        figs[f"knob.{knob}"] = _render_scatter(_get_scatter_info(analysis, knob))
    return figs
