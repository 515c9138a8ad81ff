"""Ladders side by side: the same steps run by several sweeps (the Hiera ladder from scratch and
with MAE pretraining), as plain data first, then as a table and a plotly figure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mvit_lab.dashboards.data import Sweep
from mvit_lab.dashboards.tables import ladder_view
from mvit_lab.search.tables import compare_cells, compare_ladders

__all__ = ["comparison_figure", "comparison_table", "ladder_comparison", "ladder_groups"]


def ladder_groups(sweeps: Sequence[Sweep]) -> list[list[Sweep]]:
    """Ladder sweeps that ran the same steps from the same base architecture (a ladder from
    scratch and the same ladder with MAE), groups of two or more, in the order given."""
    groups: dict[str, list[Sweep]] = {}
    for s in sweeps:
        if s.mode != "ladder":
            continue
        steps = sorted({(int(r["ladder_step"]), r.get("point")) for r in s.records
                        if r.get("ladder_step") is not None})
        key = json.dumps([s.base, steps], sort_keys=True, default=str)
        groups.setdefault(key, []).append(s)
    return [g for g in groups.values() if len(g) > 1]


def ladder_comparison(sweeps: Sequence[Sweep], metric: str | None = None) -> dict[str, Any]:
    """``labels`` (the sweeps' experiments, the first is the reference), ``rows`` (as
    ``compare_ladders``), ``metric``; ``message`` says why there is nothing to compare."""
    ladders = [s for s in sweeps if s.mode == "ladder"]
    metric = metric or (ladders[0].objectives[0].name if ladders else "val_top1")
    named = [(s.experiment, ladder_view(s, metric)) for s in ladders]
    usable = [(label, rows) for label, rows in named if rows]
    if len(usable) < 2:
        found = ", ".join(label for label, _ in usable) or "none"
        return dict(labels=[label for label, _ in usable], rows=[], metric=metric,
                    message=f"Comparing ladders needs two ladder sweeps with finished trials "
                            f"(found: {found}). Run e.g. experiments/hiera_ladder_digits.yaml "
                            f"and experiments/hiera_ladder_digits_mae.yaml.")
    return dict(labels=[label for label, _ in usable], rows=compare_ladders(usable),
                metric=metric, message=None)


def comparison_table(info: dict[str, Any]) -> dict[str, Any]:
    """``ladder_comparison`` as a text table (``title``, ``columns``, ``rows``, ``note``)."""
    labels, metric = info["labels"], info["metric"]
    rows = [compare_cells(r, labels, gflops=".4g") for r in info["rows"]]
    return dict(title="Ladders side by side",
                columns=["step", "GFLOPs", *(f"{metric}: {label}" for label in labels),
                         *(f"{label} − {labels[0]}" for label in labels[1:])],
                rows=rows, note="mean ± std over seeds (n); differences of the means from "
                                f"{labels[0] if labels else 'the first'}; – : no finished trial")


def comparison_figure(info: dict[str, Any]) -> Any:
    """One line per ladder over the steps, with ± std error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    steps = [r["name"] for r in info["rows"]]
    for label in info["labels"]:
        means, stds = [], []
        for r in info["rows"]:
            res = r["results"].get(label)
            means.append(res["mean"] if res else None)
            stds.append(res["std"] if res else None)
        fig.add_trace(go.Scatter(x=steps, y=means, name=label, mode="lines+markers",
                                 error_y=dict(type="data", array=stds, visible=True)))
    fig.update_layout(title="Ladders side by side", xaxis_title="ladder step",
                      yaxis_title=info["metric"], legend=dict(orientation="h", y=-0.25),
                      margin=dict(l=60, r=20, t=50, b=90), template="plotly_white")
    return fig
