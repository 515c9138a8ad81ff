"""Learning curves of several trials overlaid, and a sweep's progress over wall time, as
plain data first, then plotly figures.

* Curves: one logged per-epoch metric (``val_top1``, ``train_loss``, ...) of each selected
  trial, one value per epoch (the last logged at a step; step 0, the costs measured before
  training, left out).
* Progress: at the end of each trial, how many trials have finished and the best value of
  each objective so far, against the minutes since the sweep's first trial started.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep

__all__ = ["CURVE_METRICS", "curve_metrics", "curves_info", "progress_info"]

# offered first when logged; any other metric a trial logged per epoch can be drawn too
CURVE_METRICS = ("val_top1", "train_loss", "val_loss", "val_top5", "val_top1_shuffled")
MAX_CURVES = 20  # more selected trials than this: the first 20 are drawn, and it is said


def curves_info(sweep: Sweep, run_ids: Sequence[str], metric: str,
                history: Callable[[str, str], Sequence[tuple[int, float]]]) -> dict[str, Any]:
    """``series``: per selected trial (``run_id``, ``label``, ``points`` ``[(epoch, value)]``),
    ``metric``, ``missing`` (labels of selected trials that logged no ``metric``) and
    ``dropped`` (selected beyond :data:`MAX_CURVES`). ``history(run_id, metric)`` reads a
    metric's ``(step, value)`` log (:func:`mvit_lab.tracking.metric_history`)."""
    by_id = {r["run_id"]: r for r in sweep.records}
    unknown = [r for r in run_ids if r not in by_id]
    if unknown:
        raise DataError(f"run {unknown[0]!r} is not a trial of sweep {sweep.name!r}")
    series, missing = [], []
    for run_id in list(run_ids)[:MAX_CURVES]:
        rec = by_id[run_id]
        label = f"{rec.get('point') or run_id} (seed {rec.get('seed')})"
        by_step: dict[int, float] = {}
        if metric in rec.get("metric_names", ()):
            for step, value in history(run_id, metric):
                if step >= 1 and math.isfinite(value):
                    by_step[int(step)] = float(value)
        if by_step:
            series.append(dict(run_id=run_id, label=label, points=sorted(by_step.items())))
        else:
            missing.append(label)
    return dict(metric=metric, series=series, missing=missing,
                dropped=max(0, len(run_ids) - MAX_CURVES))


def curve_metrics(sweep: Sweep, run_ids: Sequence[str]) -> list[str]:
    """Metrics the selected trials logged (the usual curves first), for the metric picker."""
    logged: dict[str, None] = {}
    for rec in sweep.records:
        if rec["run_id"] in run_ids:
            logged.update((k, None) for k in rec.get("metric_names", ()))
    first = [m for m in CURVE_METRICS if m in logged]
    return first + sorted(k for k in logged if k not in first and k != "epoch")


def progress_info(sweep: Sweep,
                  times: Mapping[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """``minutes`` (each trial's end, since the first trial's start), ``finished`` (trials
    ended so far, any status), ``best`` (``{objective: best value so far over finished
    trials}``, None before the first), ``senses``, ``start`` (POSIX seconds), and ``running``
    (trials without an end yet)."""
    started = [times[r["run_id"]][0] for r in sweep.records
               if r["run_id"] in times and times[r["run_id"]][0] is not None]
    if not started:
        raise DataError(f"sweep {sweep.name!r} has no trial start times yet")
    start = min(started)
    ended = sorted((times[r["run_id"]][1], i) for i, r in enumerate(sweep.records)
                   if r["status"] != "running" and r["run_id"] in times
                   and times[r["run_id"]][1] is not None)
    names = [o.name for o in sweep.objectives]
    best: dict[str, float | None] = dict.fromkeys(names)
    out = dict(minutes=[], finished=[], best={n: [] for n in names},
               senses={o.name: o.sense for o in sweep.objectives}, start=start,
               running=len(sweep.records) - len(ended))
    for count, (end, i) in enumerate(ended, start=1):
        rec = sweep.records[i]
        if rec["status"] == "finished" and not rec.get("truncated"):
            for o in sweep.objectives:
                v = rec.get(o.name)
                if v is None:
                    continue
                old = best[o.name]
                better = old is None or (v > old if o.sense == "max" else v < old)
                best[o.name] = v if better else old
        out["minutes"].append((end - start) / 60)
        out["finished"].append(count)
        for n in names:
            out["best"][n].append(best[n])
    return out


def _render_curves_overlay(info: dict[str, Any], highlight: Sequence[str] = ()) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in info["series"]:
        xs, ys = zip(*s["points"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=s["label"],
                                 customdata=[s["run_id"]] * len(xs)))
    notes = []
    if info["missing"]:
        notes.append(f"no {info['metric']} logged: {', '.join(info['missing'])}")
    if info["dropped"]:
        notes.append(f"{info['dropped']} more selected trials not drawn")
    if not info["series"]:
        notes.insert(0, "select trials in the table to draw their curves")
    if notes:
        fig.add_annotation(text="<br>".join(notes), showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=1.0, yanchor="bottom")
    fig.update_layout(title=dict(text=f"{info['metric']} per epoch, selected trials"),
                      xaxis_title="epoch", yaxis_title=info["metric"], template="plotly_white",
                      legend=dict(orientation="h", yanchor="top", y=-0.2),
                      margin=dict(l=60, r=20, t=60, b=40))
    return fig


def _render_progress(info: dict[str, Any]) -> Any:
    from plotly.subplots import make_subplots

    names = list(info["best"])
    fig = make_subplots(rows=1, cols=1 + len(names), subplot_titles=[
        "trials ended", *(f"best {n} ({info['senses'][n]}) so far" for n in names)])
    fig.add_scatter(x=info["minutes"], y=info["finished"], mode="lines+markers",
                    line=dict(shape="hv"), name="trials ended", row=1, col=1)
    for col, n in enumerate(names, start=2):
        fig.add_scatter(x=info["minutes"], y=info["best"][n], mode="lines+markers",
                        line=dict(shape="hv"), name=f"best {n}", row=1, col=col)
    fig.update_xaxes(title_text="minutes since the first trial started")
    fig.update_layout(template="plotly_white", height=320, showlegend=False,
                      margin=dict(l=50, r=20, t=40, b=50))
    return fig
