"""The dashboard's tables: numbers first (tested), then text tables the page and the export show.

* trial counts per experiment;
* the front (rank 0 over all the sweep's objectives);
* ablations: per level of each knob the sweep varies, the first objective's mean and 95%
  interval (Student t) over every trial at that level, and the difference from the baseline
  level (the search space's base value when it is one of the levels);
* a ladder in the form of the Hiera paper's Table 1: step, top-1, GFLOPs, throughput, speed-up.

A text table is ``dict(title, columns, rows, note)`` with ``rows`` lists of strings;
``to_html`` renders one as escaped HTML.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from mvit_lab.dashboards.data import STATUSES, Sweep
from mvit_lab.search.pareto import front_table
from mvit_lab.search.tables import ablation_table, ladder_table, mean_cell

__all__ = ["ABLATION_NOTE", "UNBALANCED_NOTE", "ablation_views", "counts_table",
           "format_ablation_view", "format_front", "format_ladder_view", "front_rows",
           "ladder_view", "to_html"]


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.{digits}g}"
    if v is None:
        return "-"
    return v if isinstance(v, str) else json.dumps(v)


def counts_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per experiment: sweeps, trials and trials by status."""
    statuses = list(STATUSES[:4]) + sorted({s for r in rows for s in r["counts"]}
                                           - set(STATUSES[:4]))
    return dict(title="Experiments", columns=["experiment", "sweeps", "trials", *statuses],
                rows=[[r["name"], str(r["sweeps"]), str(r["trials"]),
                       *(str(r["counts"].get(s, 0)) for s in statuses)] for r in rows],
                note="")


# -- the front ------------------------------------------------------------------------------------
def front_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """The trials on the front of all the sweep's objectives, best first objective first."""
    return front_table(sweep.records, sweep.objectives)


def format_front(sweep: Sweep) -> dict[str, Any]:
    names = [o.name for o in sweep.objectives]
    extra = [k for k in ("params",) if k not in names]
    rows = [[str(r.get("point") or ""), str(r.get("seed")), *(_fmt(r.get(k)) for k in names),
             *(_fmt(r.get(k)) for k in extra), r["run_id"]] for r in front_rows(sweep)]
    title = "Pareto front of " + ", ".join(f"{o.name} ({o.sense})" for o in sweep.objectives)
    return dict(title=title, columns=["point", "seed", *names, *extra, "MLflow run"], rows=rows,
                note=f"{len(rows)} of {len(sweep.finished)} finished trials")


# -- ablations ------------------------------------------------------------------------------------
def ablation_views(sweep: Sweep, metric: str | None = None) -> list[dict[str, Any]]:
    """Per model knob the sweep varies: ``factor``, ``metric``, and ``rows`` of
    :func:`mvit_lab.search.tables.ablation_table` against the base's level (if tried)."""
    if sweep.mode == "ladder":
        return []  # ladder steps change knobs cumulatively: see ladder_view
    metric = metric or sweep.objectives[0].name
    views = []
    for factor in sweep.knobs():
        if factor.startswith("train."):
            continue
        baseline = (sweep.base or {}).get(factor)
        tried = {json.dumps((r.get("model") or {}).get(factor), sort_keys=True)
                 for r in sweep.finished if r.get(metric) is not None}
        if json.dumps(baseline, sort_keys=True) not in tried:
            baseline = None  # the base's level was not tried: the first level seen
        rows = ablation_table(sweep.records, factor, metric, baseline)
        if rows:
            views.append(dict(factor=factor, metric=metric, rows=rows))
    return views


def format_ablation_view(view: dict[str, Any]) -> dict[str, Any]:
    rows = [[_fmt(r["level"]), str(r["n"]), mean_cell(r["mean"], r["ci95"], r["n"], False),
             f"{r['std']:.2f}" if r["n"] > 1 else "-",
             "baseline" if r["baseline"] else f"{r['diff']:+.2f}"] for r in view["rows"]]
    return dict(title=f"Ablation: {view['factor']}",
                columns=[view["factor"], "n", f"{view['metric']} (mean ± 95% CI)", "std",
                         "vs baseline"], rows=rows, note="")


UNBALANCED_NOTE = ("Ablations of a sampled (Optuna) search: each level pools its trials whatever "
                   "the other knobs, so levels are not like for like; a grid sweep is.")
ABLATION_NOTE = ("Per level: the mean and 95% interval (Student t) over every finished trial "
                 "at that level (seeds included), and the difference of the means from the "
                 "baseline level (the search space's base value when it was tried).")


# -- ladders --------------------------------------------------------------------------------------
def ladder_view(sweep: Sweep, metric: str | None = None) -> list[dict[str, Any]]:
    """The rows of :func:`mvit_lab.search.tables.ladder_table` (empty unless a ladder)."""
    if sweep.mode != "ladder":
        return []
    return ladder_table(sweep.records, metric or sweep.objectives[0].name)


def format_ladder_view(rows: list[dict[str, Any]], metric: str = "val_top1") -> dict[str, Any]:
    out = [[str(r["step"]), str(r["name"]),
            mean_cell(r["mean"], r["std"], r["seeds"]), _fmt(r["gflops"]),
            f"{r['throughput']:.1f}", f"{r['speedup']:.2f}x"] for r in rows]
    return dict(title="Ladder (the Hiera paper's Table 1)",
                columns=["step", "name", f"{metric} (mean ± std, n)", "GFLOPs",
                         "throughput (/s)", "speed-up"], rows=out,
                note="speed-up: throughput over the first step's")


def to_html(table: dict[str, Any]) -> str:
    """A text table as escaped HTML (a caption, a header row, the rows, a note)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table["columns"])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in table["rows"])
    note = f'<p class="note">{esc(table["note"])}</p>' if table.get("note") else ""
    return (f'<div class="table-wrap"><table class="data"><caption>{esc(table["title"])}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}")
