"""One self-contained static HTML report: the dashboard's figures and tables, readable offline.

plotly.js is inlined once in the page's head (about 4.8 MB) and every figure is a div drawn by
it; tables are plain HTML. Nothing is fetched from a network. A view that cannot be drawn (no
finished trials, a missing metric) is replaced by its message.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep, load_sweep, overview
from mvit_lab.dashboards.tables import (
    ABLATION_NOTE,
    UNBALANCED_NOTE,
    ablation_views,
    counts_table,
    format_ablation_view,
    format_front,
    format_ladder_view,
    ladder_view,
    to_html,
)
from mvit_lab.dashboards.views import default_views, front_info, parallel_info

__all__ = ["build_report", "export_report", "log_sweep_report", "sweep_section"]

log = logging.getLogger(__name__)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.meta, .note { color: #666; font-size: 0.9em; }
.message { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.6em 1em; }
/* explicit tracks: each figure is drawn as the page parses, before the next one exists */
.figures { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1em; }
@media (max-width: 1000px) { .figures { grid-template-columns: minmax(0, 1fr); } }
.figures > div { min-width: 0; overflow: hidden; }
table.data { border-collapse: collapse; margin: 1em 0 0.2em; font-size: 0.9em; }
table.data caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
table.data th { background: #f4f4f4; }
/* long cells (a point's knobs, a run id) wrap rather than push the table past the page; the
   wrapper scrolls whatever still does not fit */
.table-wrap { max-width: 100%; overflow-x: auto; }
table.data td { overflow-wrap: anywhere; }
.recipe { font-size: 0.9em; } .recipe .ok { color: #2a7a2a; font-weight: bold; }
.recipe .flag { background: #fdecea; border-left: 4px solid #d62728; padding: 0.4em 0.8em;
                font-weight: bold; color: #8a1c1c; }
"""


def _figure_html(fig: Any) -> str:
    return fig.to_html(include_plotlyjs=False, full_html=False, default_height="460px",
                       config=dict(displaylogo=False, responsive=True))


def _message(text: str) -> str:
    return f'<p class="message">{html.escape(text)}</p>'


def sweep_section(sweep: Sweep) -> str:
    """The HTML of one sweep: fronts, parallel coordinates, the front and ablation / ladder
    tables (no plotly.js: the page that holds it loads that once)."""
    from mvit_lab.plots.parallel import _render_parallel
    from mvit_lab.plots.pareto import _render_front

    esc = html.escape
    parts = [f"<h2>{esc(sweep.experiment)}: sweep {esc(sweep.name)}</h2>",
             f'<p class="meta">MLflow parent run {esc(str(sweep.parent_run_id))}; '
             f"{esc(sweep.mode or 'unknown')} search; trials: {esc(sweep.describe_counts())}; "
             f"objectives: {esc(', '.join(f'{o.name} ({o.sense})' for o in sweep.objectives))}"
             f"; base architecture from {esc(sweep.base_source)}</p>"]
    figures = []
    for x, y, color in default_views(sweep):
        try:
            figures.append(_figure_html(_render_front(front_info(sweep, x, y, color))))
        except DataError as err:
            figures.append(_message(str(err)))
    parts.append('<div class="figures">' + "".join(f"<div>{f}</div>" for f in figures)
                 + "</div>")
    try:
        parts.append(_figure_html(_render_parallel(parallel_info(sweep))))
    except DataError as err:
        parts.append(_message(str(err)))
    if sweep.finished:
        parts.append(to_html(format_front(sweep)))
    ladder = ladder_view(sweep)
    if ladder:
        parts.append(to_html(format_ladder_view(ladder, sweep.objectives[0].name)))
    ablations = ablation_views(sweep)
    if ablations:
        parts.append(f'<p class="note">{esc(ABLATION_NOTE)}'
                     + (f" {esc(UNBALANCED_NOTE)}" if sweep.mode != "grid" else "") + "</p>")
    parts += [to_html(format_ablation_view(view)) for view in ablations]
    from mvit_lab.dashboards.explain_export import explain_section

    try:  # issue 18: recipe, knob importance, all trials, progress
        parts.append(explain_section(sweep, _figure_html))
    except DataError as err:
        parts.append(_message(str(err)))
    return "\n".join(parts)


def ladders_section(sweeps: Sequence[Sweep]) -> str:
    """Ladder sweeps of the same steps and base side by side (e.g. from scratch and with
    MAE); empty when no two ladder sweeps match."""
    from mvit_lab.dashboards.compare import (
        comparison_figure,
        comparison_table,
        ladder_comparison,
        ladder_groups,
    )

    parts = []
    for group in ladder_groups(sweeps):
        info = ladder_comparison(group)
        if info["message"]:
            parts.append(_message(info["message"]))
            continue
        parts.append(f"<h2>Ladders side by side: {html.escape(', '.join(info['labels']))}</h2>"
                     + _figure_html(comparison_figure(info)) + to_html(comparison_table(info)))
    return "\n".join(parts)


def build_report(sweeps: Sequence[Sweep], counts: list[dict[str, Any]] | None = None,
                 messages: Sequence[str] = (), title: str = "mvit-lab sweeps") -> str:
    """A complete, self-contained HTML page of ``sweeps`` (and the experiments' counts, and
    ``messages`` about experiments that could not be shown)."""
    from plotly.offline import get_plotlyjs

    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    uri = sweeps[0].tracking_uri if sweeps else ""
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">MLflow store {html.escape(uri)}; written {when} by mvit-lab</p>']
    if counts:
        body.append(to_html(counts_table(counts)))
    body += [_message(m) for m in messages]
    body.append(ladders_section(sweeps))
    from mvit_lab.dashboards.explain_export import overlay_section

    body.append(overlay_section(sweeps, _figure_html))  # issue 18: fronts side by side
    body += [sweep_section(s) for s in sweeps]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
            f"<body>{''.join(body)}</body></html>\n")


def export_report(path: str | Path, tracking_uri: str, experiment: str | None = None,
                  parent_run_id: str | None = None,
                  search_dirs: Sequence[Path] | None = None) -> dict[str, Any]:
    """Write the report of ``experiment`` (default: every experiment with runs; each one's
    newest sweep, or ``parent_run_id``) to ``path``; returns what it wrote."""
    from mvit_lab.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    counts = overview(uri)
    if not counts:
        raise DataError(f"the MLflow store {uri} has no runs yet: nothing to export")
    names = [r["name"] for r in counts]
    if experiment is not None and experiment not in names:
        raise DataError(f"experiment {experiment!r} has no runs in {uri} (experiments with "
                        f"runs: {', '.join(names)})")
    chosen = [experiment] if experiment else names
    sweeps, messages = [], []
    for name in chosen:
        try:
            sweeps.append(load_sweep(uri, name, parent_run_id, search_dirs))
        except DataError as err:
            if experiment is not None:
                raise
            messages.append(str(err))
    text = build_report(sweeps, [r for r in counts if r["name"] in chosen], messages)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return dict(path=str(out), bytes=len(text.encode()), experiments=chosen,
                sweeps=[s.parent_run_id for s in sweeps])


def log_sweep_report(result: dict[str, Any]) -> None:
    """Log a finished sweep's figures to its parent run: the first objective against each
    other one (and GFLOPs), one small HTML file each (plotly.js from its CDN), and
    ``report.html``, this module's self-contained export of the sweep, readable offline.

    ``result`` is what :func:`mvit_lab.search.sweep.run_sweep` returned. The sweep itself
    does not draw (search sits below the dashboards); its command calls this.
    """
    from mvit_lab.plots import plot_front
    from mvit_lab.search.pareto import Objective
    from mvit_lab.tracking import Tracker

    tracker = Tracker(result["tracking_uri"], result["mlflow_experiment"])
    parent, records, objectives = result["parent_run_id"], result["records"], \
        result["objectives"]
    y = objectives[0]
    others = list(objectives[1:]) or [Objective("gflops", "min")]
    for x in others:
        color = next((o.name for o in objectives if o not in (x, y)), None)
        fig = plot_front(records, objectives, x=x, y=y, color=color)
        tracker.log_figure_html(parent, fig.to_html(include_plotlyjs="cdn", full_html=True),
                                f"pareto_{y.name}_vs_{x.name}.html")
    try:
        sweep = load_sweep(tracker.tracking_uri, tracker.experiment_name, parent)
        tracker.log_figure_html(parent, build_report([sweep], title=f"sweep {sweep.name}"),
                                "report.html")
    except Exception as err:  # the trials are logged; a report is not worth failing the sweep
        log.warning("report.html not written to the parent run: %s", err)
