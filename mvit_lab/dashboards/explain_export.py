"""Issue 18's views in the static report: per sweep, the recipe (flagged when not a published
one), knob importance, every trial in a table, and the sweep's progress; across the exported
sweeps, their fronts side by side. The page's own ``export`` module places them."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from mvit_lab.dashboards.data import DataError, Sweep

__all__ = ["explain_section", "overlay_section", "recipe_html"]


def _message(text: str) -> str:
    return f'<p class="message">{html.escape(text)}</p>'


def recipe_html(sweep: Sweep, runs: pd.DataFrame) -> str:
    """The recipe lines, under a red flag unless it is a published recipe unchanged."""
    from mvit_lab.dashboards.meta import parent_params
    from mvit_lab.dashboards.recipe_view import format_recipe, recipe_info

    info = recipe_info(parent_params(runs, sweep.parent_run_id), sweep.knobs())
    head = (f'<p class="flag">{html.escape(info["flag"])}</p>' if info["flag"] else
            '<p class="ok">published recipe, unchanged</p>')
    lines = "".join(f"<div>{html.escape(line)}</div>" for line in format_recipe(info))
    return f'<div class="recipe">{head}{lines}</div>'


def explain_section(sweep: Sweep, figure_html: Callable[[Any], str],
                    runs: pd.DataFrame | None = None) -> str:
    """Recipe, importance, all trials and progress of ``sweep`` (``figure_html``: how the
    report embeds a figure)."""
    from mvit_lab.dashboards.curves import _render_progress, progress_info
    from mvit_lab.dashboards.importance import (
        _render_importance,
        format_importance,
        importance_info,
    )
    from mvit_lab.dashboards.meta import parent_params, read_runs, run_times, search_space
    from mvit_lab.dashboards.tables import to_html
    from mvit_lab.dashboards.trials import trial_table

    runs = read_runs(sweep) if runs is None else runs
    parts = [recipe_html(sweep, runs)]
    try:
        info = importance_info(sweep, search_space(sweep, parent_params(runs,
                                                                        sweep.parent_run_id)))
        if info["message"]:
            parts.append(_message(f"Knob importance per objective: {info['message']}"))
        else:
            parts += [to_html(format_importance(info)), figure_html(_render_importance(info))]
    except DataError as err:
        parts.append(_message(str(err)))
    times = run_times(runs, [r["run_id"] for r in sweep.records])
    table = trial_table(sweep, times)
    cols = table["columns"]
    parts.append(to_html(dict(
        title="All trials", columns=[c["name"] for c in cols],
        rows=[[_cell(r[c["id"]]) for c in cols] for r in table["rows"]],
        note="the live dashboard's Trials tab sorts, filters and highlights them")))
    try:
        parts.append(figure_html(_render_progress(progress_info(sweep, times))))
    except DataError as err:
        parts.append(_message(str(err)))
    return "\n".join(parts)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def overlay_section(sweeps: Sequence[Sweep], figure_html: Callable[[Any], str]) -> str:
    """The exported sweeps' fronts side by side on their first two shared metrics (the first
    sweep's objectives first); empty for fewer than two sweeps with finished trials."""
    from mvit_lab.dashboards.overlay import _render_overlay, format_overlay, overlay_info
    from mvit_lab.dashboards.tables import to_html

    usable = [s for s in sweeps if s.finished]
    if len(usable) < 2:
        return ""
    common = [m for m in usable[0].metrics() if all(m in s.metrics() for s in usable[1:])]
    first = [o.name for o in usable[0].objectives if o.name in common]
    axes = list(dict.fromkeys(first + common))[:2]
    if len(axes) < 2:
        return _message("Sweeps side by side: the exported sweeps share fewer than two "
                        "metrics")
    y, x = axes
    try:
        info = overlay_info(usable, x, y)
    except DataError as err:
        return _message(f"Sweeps side by side: {err}")
    return (f"<h2>{html.escape(format_overlay(info)['title'])}</h2>"
            + figure_html(_render_overlay(info)) + to_html(format_overlay(info)))
