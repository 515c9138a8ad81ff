"""A sweep's budget view: the hypervolume its finished trials reached against the epochs it
had consumed, and where each early-stopped trial stopped.

Consumed epochs count what every trial trained, in the order the trials ended: a finished
trial its epochs, an early-stopped one the epoch it stopped at, a failed or interrupted one
the epochs it logged, a pruned (constraint) one none. Only finished, untruncated trials add to
the hypervolume, whose reference is the worst value of each objective among them, 10% of the
objective's range beyond it (said on the figure: the curve compares moments of one sweep, not
sweeps with each other).
"""

from __future__ import annotations

import math
from typing import Any

from mvit_lab.search.pareto import Objective, hypervolume

__all__ = ["budget_info", "render_budget"]


def _epochs(rec: dict[str, Any]) -> float:
    if rec.get("status") == "stopped" and rec.get("stopped_epoch") is not None:
        return float(rec["stopped_epoch"])
    if rec.get("status") == "pruned":
        return 0.0
    value = rec.get("epoch", rec.get("epochs"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _when(rec: dict[str, Any]) -> Any:
    end = rec.get("end_time")
    return (end is None or end != end, end if end == end else None, rec.get("start_time"))


def budget_info(records: list[dict[str, Any]], objectives: tuple[Objective, ...]
                ) -> dict[str, Any]:
    """Plain data: the hypervolume steps and the stopped trials (tested without rendering)."""
    ended = sorted((r for r in records if r.get("status") != "running"), key=_when)
    names = [o.name for o in objectives]
    senses = [o.sense for o in objectives]

    def usable(rec: dict[str, Any]) -> bool:
        return rec.get("status") == "finished" and not rec.get("truncated") and all(
            isinstance(rec.get(n), (int, float)) and math.isfinite(rec[n]) for n in names)

    finals = [[r[n] for n in names] for r in ended if usable(r)]
    reference = None
    if finals:  # the worst finished values, 10% of the range beyond (so extremes count)
        reference = []
        for j, s in enumerate(senses):
            column = [v[j] for v in finals]
            margin = 0.1 * ((max(column) - min(column)) or abs(column[0]) or 1.0)
            reference.append(min(column) - margin if s == "max" else max(column) + margin)
    consumed, steps, seen = 0.0, [dict(epochs=0.0, hypervolume=0.0, trials=0)], []
    for rec in ended:
        consumed += _epochs(rec)
        if usable(rec):
            seen.append([rec[n] for n in names])
        hv = hypervolume(seen, senses, reference) if seen and reference else 0.0
        steps.append(dict(epochs=consumed, hypervolume=hv, trials=len(seen)))
    stopped = [dict(run_id=r.get("run_id"), point=r.get("point") or r.get("run_name"),
                    epoch=_epochs(r), rung=r.get("stopped_rung"),
                    value=r.get(names[0])) for r in ended if r.get("status") == "stopped"]
    finished = [dict(run_id=r.get("run_id"), point=r.get("point") or r.get("run_name"),
                     epoch=_epochs(r), value=r.get(names[0])) for r in ended if usable(r)]
    return dict(steps=steps, stopped=stopped, finished=finished, reference=reference,
                objectives=[f"{n} ({s})" for n, s in zip(names, senses)], metric=names[0],
                consumed=consumed)


def render_budget(info: dict[str, Any]) -> Any:
    """Two panels: hypervolume over consumed epochs; each trial's epochs and first objective
    (stopped trials at the epoch they stopped, finished ones at their last)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], subplot_titles=(
        "hypervolume of the finished trials", "where trials ended"))
    steps = info["steps"]
    fig.add_trace(go.Scatter(x=[s["epochs"] for s in steps],
                             y=[s["hypervolume"] for s in steps], mode="lines+markers",
                             line=dict(shape="hv"), name="hypervolume",
                             customdata=[s["trials"] for s in steps],
                             hovertemplate="%{x} epochs: %{y:.4g} (%{customdata} finished)"
                             "<extra></extra>"), row=1, col=1)
    for group, color, symbol in (("finished", "#1f77b4", "circle"),
                                 ("stopped", "#d62728", "x")):
        rows = info[group]
        fig.add_trace(go.Scatter(
            x=[r["epoch"] for r in rows], y=[r["value"] for r in rows], mode="markers",
            marker=dict(color=color, symbol=symbol, size=9), name=group,
            text=[r["point"] for r in rows], customdata=[r["run_id"] for r in rows],
            hovertemplate="%{text}<br>epoch %{x}: %{y}<extra>" + group + "</extra>"),
            row=1, col=2)
    ref = info["reference"]
    note = ("reference: the worst finished value (10% of the range beyond) of each of "
            + ", ".join(info["objectives"])
            + (f" = {', '.join(f'{v:.4g}' for v in ref)}" if ref else ""))
    fig.update_xaxes(title_text="consumed epochs", row=1, col=1)
    fig.update_xaxes(title_text="epoch the trial ended at", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume", row=1, col=1)
    fig.update_yaxes(title_text=info["metric"], row=1, col=2)
    fig.update_layout(template="plotly_white", margin=dict(t=60, b=80), annotations=[
        *fig.layout.annotations, dict(text=note, showarrow=False, xref="paper", yref="paper",
                                      x=0, y=-0.22, xanchor="left", font=dict(size=11))])
    return fig
