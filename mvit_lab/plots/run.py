"""Figures of one trial: its per-epoch curves and its cost per stage and per module.

``_get_curves_info`` turns metric histories into plain data; ``_render_curves`` and
``_render_cost`` draw curves and a cost breakdown (as given by
:func:`mvit_lab.dashboards.run.cost_breakdown`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_cost", "plot_curves"]

# the panels of the curves figure and the metrics each one shows, when logged
PANELS = (("accuracy (%)", ("val_top1", "val_top5", "val_top1_shuffled")),
          ("loss", ("train_loss", "val_loss")))


def _get_curves_info(histories: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, Any]:
    """Per panel, each logged metric's ``(epoch, value)`` series: one value per epoch (the
    last logged, as a trial logs its final metrics again at the last epoch), epoch 0 (cost
    measurements before training) left out, NaN dropped."""
    panels = []
    for title, names in PANELS:
        series = {}
        for name in names:
            by_step: dict[int, float] = {}
            for step, value in histories.get(name) or ():
                if step >= 1 and math.isfinite(value):
                    by_step[int(step)] = float(value)
            if by_step:
                series[name] = sorted(by_step.items())
        panels.append(dict(title=title, series=series))
    return dict(panels=panels, epochs=max((s[-1][0] for p in panels for s in p["series"].values()),
                                          default=0))


def _render_curves(info: dict[str, Any]) -> Any:
    from plotly.subplots import make_subplots

    panels = info["panels"]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p["title"] for p in panels])
    for col, panel in enumerate(panels, start=1):
        for name, points in panel["series"].items():
            xs, ys = zip(*points)
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    if not info["epochs"]:
        fig.add_annotation(text="no epochs logged yet", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5)
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=50, r=20, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.45))
    return fig


def _render_cost(info: dict[str, Any]) -> Any:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["GFLOPs per stage", "GFLOPs per module"])
    stages, modules = info["by_stage"], info["by_module"]
    fig.add_bar(x=list(stages), y=list(stages.values()), name="per stage", row=1, col=1,
                marker_color="#1f77b4")
    fig.add_bar(x=list(modules), y=list(modules.values()), name="per module", row=1, col=2,
                marker_color="#ff7f0e")
    fig.update_yaxes(tickformat=".2~g", title_text="GFLOPs")
    fig.update_layout(template="plotly_white", height=300, showlegend=False,
                      margin=dict(l=50, r=20, t=40, b=40))
    return fig


def plot_curves(histories: Mapping[str, Sequence[tuple[int, float]]]) -> Any:
    """Accuracy and loss per epoch from ``{metric: [(step, value), ...]}``."""
    return _render_curves(_get_curves_info(histories))


def plot_cost(breakdown: dict[str, Any]) -> Any:
    """GFLOPs per stage and per module, from ``cost_breakdown``."""
    return _render_cost(breakdown)
