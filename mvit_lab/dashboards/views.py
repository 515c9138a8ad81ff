"""A sweep's figures as plain data: which Pareto views to show, and each view's points.

The functions here check what a view needs (finished trials, the metrics on its axes) and
raise :class:`DataError` with a message for the page when it is missing; the figures are
drawn by :mod:`mvit_lab.plots` from the returned data.
"""

from __future__ import annotations

from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.plots.parallel import _get_parallel_info
from mvit_lab.plots.pareto import _get_front_info
from mvit_lab.search.pareto import front_ranks
from mvit_lab.search.records import COST_METRICS, cost_labels

__all__ = ["check_finished", "default_views", "front_info", "live_status", "parallel_info"]

View = tuple[str, str, "str | None"]  # x, y, colour



def default_views(sweep: Sweep, count: int = 2) -> list[View]:
    """The first objective (top-1) against each other objective, the one left as colour;
    with a single objective, against GFLOPs and throughput (the issue's defaults)."""
    names = [o.name for o in sweep.objectives]
    y, others = names[0], names[1:] or ["gflops", "throughput"]
    views = []
    for x in others[:count]:
        rest = [n for n in names if n not in (x, y)]
        views.append((x, y, rest[0] if rest else None))
    return views


def live_status(sweep: Sweep, overview_rows: list[dict[str, Any]]) -> str:
    """The header's live line: trials running in the sweep shown, whether its driver still
    runs between trials, and trials running anywhere else in the store (which the experiments
    table counts too)."""
    here = sweep.counts.get("running", 0)
    text = f"live: {here} running in this sweep"
    if not here and sweep.parent_status == "running":
        text += " (its driver is running: trials starting or between trials)"
    elsewhere = []
    for row in overview_rows:
        n = row["counts"].get("running", 0) - (here if row["name"] == sweep.experiment else 0)
        if n > 0:
            where = "other sweeps of this experiment" if row["name"] == sweep.experiment \
                else row["name"]
            elsewhere.append(f"{n} in {where}")
    if elsewhere:
        text += "; also running: " + ", ".join(elsewhere)
    return text


def check_finished(sweep: Sweep) -> list[dict[str, Any]]:
    """The sweep's finished trials; a DataError saying what happened if there are none."""
    finished = sweep.finished
    if finished:
        return finished
    if not sweep.records:
        raise DataError(f"sweep {sweep.name!r} of experiment {sweep.experiment!r} has no "
                        "trials yet; this page updates by itself when they start")
    message = (f"no finished trials in sweep {sweep.name!r} of experiment "
               f"{sweep.experiment!r} yet: {sweep.describe_counts()}")
    reasons = [r["reason"] for r in sweep.records if r["status"] == "failed" and r["reason"]]
    if reasons:
        message += f". First failure: {reasons[0]}"
    raise DataError(message)


def _check_metric(sweep: Sweep, finished: list[dict[str, Any]], name: str) -> None:
    if any(r.get(name) is not None for r in finished):
        return
    logged = ", ".join(sweep.metrics()) or "none"
    raise DataError(f"metric {name!r} is missing from all {len(finished)} finished trials of "
                    f"sweep {sweep.name!r} (experiment {sweep.experiment!r}); logged metrics: "
                    f"{logged}")


def front_info(sweep: Sweep, x: str, y: str, color: str | None = None) -> dict[str, Any]:
    """The Pareto view of ``y`` against ``x`` (coloured by ``color``) over ``sweep``, computed
    once per sweep read (:meth:`Sweep.memo`; treat it as read-only)."""
    return sweep.memo(("front_info", x, y, color), lambda: _front_info(sweep, x, y, color))


def _front_info(sweep: Sweep, x: str, y: str, color: str | None) -> dict[str, Any]:
    finished = check_finished(sweep)
    for name in (x, y):
        _check_metric(sweep, finished, name)
    if color and not any(r.get(color) is not None for r in finished):
        color = None  # nothing to colour by; the view still stands
    ranks = sweep.memo("front_ranks", lambda: front_ranks(sweep.records, sweep.objectives))
    info = _get_front_info(sweep.records, sweep.objectives, sweep.objective(x),
                           sweep.objective(y), color, ranks)
    info["base_source"] = sweep.base_source
    info["base_known"] = sweep.base is not None
    info["cost_labels"] = cost_labels(finished) if {x, y, color} & COST_METRICS else []
    if info["cost_labels"]:  # which device and protocol the cost axis comes from
        mixed = "MIXED: " if len(info["cost_labels"]) > 1 else ""
        info["title"] += f"<br><sup>costs: {mixed}{' | '.join(info['cost_labels'])}</sup>"
    return info


def parallel_info(sweep: Sweep) -> dict[str, Any]:
    """Parallel coordinates from the knobs the sweep varies to its objectives (those logged),
    coloured by the first objective."""
    finished = check_finished(sweep)
    metrics = [o.name for o in sweep.objectives
               if any(r.get(o.name) is not None for r in finished)]
    if not metrics:
        _check_metric(sweep, finished, sweep.objectives[0].name)
    knobs = sweep.knobs()
    if not knobs:
        raise DataError(f"the trials of sweep {sweep.name!r} all share one architecture and "
                        "recipe: no knob to draw")
    info = _get_parallel_info(sweep.records, knobs, metrics, color=metrics[0])
    if not info["n"]:
        raise DataError(f"no finished trial of sweep {sweep.name!r} has all of "
                        f"{', '.join(metrics)}")
    return info
