"""Sweeps side by side, as plain data: their fronts on the same two axes, the hypervolume of
each against one shared reference point, and which front points of one sweep dominate another's.

The reference point is shared so that the hypervolumes compare: by default the worst value of
each axis over every overlaid sweep's finished trials, moved 10% of that axis' range further
(so the worst points still add volume). A user can pass their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.search.pareto import dominates, hypervolume, pareto_front

__all__ = ["MARKERS", "format_overlay", "overlay_info", "reference_point"]

MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "pentagon")
MARGIN = 0.1  # of each axis' range, beyond the worst value, for the default reference


def _label(sweep: Sweep, taken: set[str]) -> str:
    label = f"{sweep.experiment} / {sweep.name}"
    if label in taken:
        label += f" ({str(sweep.parent_run_id)[:8]})"
    taken.add(label)
    return label


def _sense(sweeps: Sequence[Sweep], metric: str) -> str:
    senses = {s.objective(metric).sense for s in sweeps}
    if len(senses) > 1:
        named = ", ".join(f"{s.name}: {s.objective(metric).sense}" for s in sweeps)
        raise DataError(f"the sweeps disagree on whether {metric} is better large or small "
                        f"({named}); overlay them on other axes")
    return senses.pop()


def reference_point(values: Sequence[Sequence[float]], senses: Sequence[str],
                    margin: float = MARGIN) -> list[float]:
    """The worst value of each axis over ``values``, ``margin`` of its range further (1% of
    the value, or 1, when every value is the same)."""
    if not values:
        raise ValueError("values: needs at least one point")
    ref = []
    for axis, sense in enumerate(senses):
        column = [v[axis] for v in values]
        lo, hi = min(column), max(column)
        pad = margin * (hi - lo) or 0.01 * abs(hi) or 1.0
        ref.append(lo - pad if sense == "max" else hi + pad)
    return ref


def overlay_info(sweeps: Sequence[Sweep], x: str, y: str,
                 reference: Sequence[float] | None = None) -> dict[str, Any]:
    """The fronts of ``sweeps`` on ``(x, y)``.

    Returns ``x``, ``y``, their senses, ``reference`` (shared), and per sweep (``sweeps``, in
    the order given): ``label``, ``marker``, ``points`` (finished, untruncated trials with both
    metrics: ``run_id``, ``x``, ``y``, ``label``, ``on_front``), ``front`` (its points on its
    own front, in x order), ``hypervolume`` and ``dominates`` (``{other label: run ids of this
    front's points that dominate at least one point of the other's front}``).
    """
    if len(sweeps) < 2:
        raise DataError("pick two or more sweeps to set side by side")
    if reference is not None and len(reference) != 2:
        raise ValueError(f"reference: must be 2 numbers ({x}, {y}), got {list(reference)!r}")
    senses = [_sense(sweeps, x), _sense(sweeps, y)]
    out, taken = [], set()
    for i, sweep in enumerate(sweeps):
        points = [dict(run_id=r["run_id"], x=float(r[x]), y=float(r[y]),
                       label=str(r.get("point") or r["run_id"]), seed=r.get("seed"))
                  for r in sweep.finished if r.get(x) is not None and r.get(y) is not None]
        if not points:
            raise DataError(f"sweep {sweep.name!r} of experiment {sweep.experiment!r} has no "
                            f"finished trial with both {x} and {y}")
        on = set(pareto_front([(p["x"], p["y"]) for p in points], senses))
        for j, p in enumerate(points):
            p["on_front"] = j in on
        out.append(dict(label=_label(sweep, taken), marker=MARKERS[i % len(MARKERS)],
                        experiment=sweep.experiment, parent_run_id=sweep.parent_run_id,
                        points=points,
                        front=sorted((p for p in points if p["on_front"]),
                                     key=lambda p: (p["x"], p["y"]))))
    everything = [(p["x"], p["y"]) for s in out for p in s["points"]]
    ref = list(reference) if reference is not None else reference_point(everything, senses)
    for s in out:
        s["hypervolume"] = hypervolume([(p["x"], p["y"]) for p in s["front"]], senses, ref)
        s["dominates"] = {}
        for other in out:
            if other is s:
                continue
            s["dominates"][other["label"]] = [
                p["run_id"] for p in s["front"]
                if any(dominates((p["x"], p["y"]), (q["x"], q["y"]), senses)
                       for q in other["front"])]
    return dict(x=x, y=y, x_sense=senses[0], y_sense=senses[1], reference=ref, sweeps=out,
                line_shape="hv" if senses[0] == "min" else "vh")


def format_overlay(info: dict[str, Any]) -> dict[str, Any]:
    """One row per sweep: front size, hypervolume, and how many of its front points dominate
    some point of each other sweep's front."""
    labels = [s["label"] for s in info["sweeps"]]
    rows = []
    for s in info["sweeps"]:
        beats = [f"{len(s['dominates'][o])} of {len(s['front'])}" if o != s["label"] else "–"
                 for o in labels]
        rows.append([s["label"], str(len(s["points"])), str(len(s["front"])),
                     f"{s['hypervolume']:.4g}", *beats])
    ref = ", ".join(f"{n} {v:.4g}" for n, v in zip((info["x"], info["y"]), info["reference"]))
    return dict(title=f"Sweeps side by side: {info['y']} ({info['y_sense']}) vs {info['x']} "
                      f"({info['x_sense']})",
                columns=["sweep", "trials", "front", "hypervolume", *(
                    f"front points dominating {label}'s front" for label in labels)],
                rows=rows, note=f"hypervolume of each front against the shared reference "
                                f"point ({ref})")


def _render_overlay(info: dict[str, Any], highlight: Sequence[str] = ()) -> Any:
    """The fronts overlaid: each sweep's points faded, its front bold and joined by its
    staircase, one marker symbol per sweep; ``highlight``: run ids ringed."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    chosen = set(highlight)
    for i, s in enumerate(info["sweeps"]):
        color = qualitative.D3[i % len(qualitative.D3)]
        front = s["front"]
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in front], y=[p["y"] for p in front], mode="lines+markers",
            name=f"{s['label']} (HV {s['hypervolume']:.3g})", legendgroup=s["label"],
            line=dict(shape=info["line_shape"], color=color, dash="dot"),
            marker=dict(symbol=s["marker"], size=12, color=color,
                        line=dict(width=1.5, color="#222")),
            customdata=[p["run_id"] for p in front],
            text=[p["label"] for p in front],
            hovertemplate=f"<b>%{{text}}</b><br>{s['label']}<br>{info['y']}: %{{y:.4g}}<br>"
                          f"{info['x']}: %{{x:.4g}}<extra></extra>"))
        rest = [p for p in s["points"] if not p["on_front"]]
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in rest], y=[p["y"] for p in rest], mode="markers",
            name=f"{s['label']}: dominated", legendgroup=s["label"], showlegend=False,
            marker=dict(symbol=s["marker"], size=8, color=color, opacity=0.3),
            customdata=[p["run_id"] for p in rest], text=[p["label"] for p in rest],
            hovertemplate="%{text}<extra></extra>"))
    marked = [p for s in info["sweeps"] for p in s["points"] if p["run_id"] in chosen]
    if marked:
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in marked], y=[p["y"] for p in marked], mode="markers",
            name="selected", hoverinfo="skip", customdata=[p["run_id"] for p in marked],
            marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(width=2.5, color="#d62728"))))
    rx, ry = info["reference"]
    fig.add_trace(go.Scatter(x=[rx], y=[ry], mode="markers", name="reference point",
                             marker=dict(symbol="x-thin", size=12, color="#444",
                                         line=dict(width=2, color="#444")),
                             hovertemplate="reference point<extra></extra>"))
    fig.update_layout(title=dict(text=f"{info['y']} ({info['y_sense']}) vs {info['x']} "
                                      f"({info['x_sense']}): fronts overlaid"),
                      xaxis_title=info["x"], yaxis_title=info["y"], template="plotly_white",
                      hovermode="closest", legend=dict(orientation="h", yanchor="bottom",
                                                       y=-0.35),
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig
