"""The live dashboard: a Dash app over an MLflow store, refreshed without reloading the page.

A ``dcc.Interval`` ticks every ``refresh_s`` seconds; each tick reads the experiments and the
chosen sweep (only the runs that changed, see :class:`StoreReader`) and compares the
sweep's fingerprint (its runs, statuses and metrics) with the last one. Only when it changed
are the figures and tables rebuilt, so an idle page costs a few small queries and zooming or
hovering a figure is never interrupted.

Every callback catches errors: a :class:`DataError` is shown as it is, anything else as a
one-line "internal error" (the traceback goes to the server's log, never to the page).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, no_update
from dash.exceptions import PreventUpdate

from mvit_lab.dashboards import explain, layout
from mvit_lab.dashboards.compare import (
    comparison_figure,
    comparison_table,
    ladder_comparison,
    ladder_groups,
)
from mvit_lab.dashboards.data import DataError, StoreReader, Sweep
from mvit_lab.dashboards.run import run_details
from mvit_lab.dashboards.tables import (
    ABLATION_NOTE,
    UNBALANCED_NOTE,
    ablation_views,
    counts_table,
    format_ablation_view,
    format_front,
    format_ladder_view,
    ladder_view,
)
from mvit_lab.dashboards.views import (
    check_finished,
    default_views,
    front_info,
    live_status,
    parallel_info,
)

__all__ = ["create_app"]

log = logging.getLogger(__name__)

VIEWS = 2  # Pareto views side by side


def _guard(fallback: Callable[[str], Any]) -> Callable:
    """Run a callback; on an error, return ``fallback(message)`` instead of a traceback."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            try:
                return fn(*args)
            except PreventUpdate:
                raise
            except DataError as err:
                return fallback(str(err))
            except Exception as err:
                log.exception("dashboard callback %s failed", fn.__name__)
                first = (str(err).strip().splitlines() or [""])[0]
                return fallback(f"internal error in {fn.__name__} ({type(err).__name__}: "
                                f"{first}); the dashboard's log has the details")
        return wrapper

    return deco


def _empty_figure(text: str = "") -> dict[str, Any]:
    annotations = [dict(text=text, showarrow=False, xref="paper", yref="paper", x=0.5,
                        y=0.5)] if text else []
    return dict(data=[], layout=dict(template="plotly_white", annotations=annotations,
                                     xaxis=dict(visible=False), yaxis=dict(visible=False)))


def create_app(tracking_uri: str | None = None, experiment: str | None = None,
               refresh_s: float = 5.0, search_dirs: Sequence[Path] | None = None,
               warm: bool = False) -> Dash:
    """The dashboard app for the store ``tracking_uri`` (default: ``./mlruns.db``), opening on
    ``experiment`` (default: the one with the newest run). ``warm``: read the store once now
    (MLflow's first connection takes a second or two) rather than on the first page load."""
    from mvit_lab.plots.parallel import _render_parallel
    from mvit_lab.plots.pareto import _render_front
    from mvit_lab.plots.run import _render_cost, _render_curves
    from mvit_lab.tracking import resolve_tracking_uri

    reader = StoreReader(resolve_tracking_uri(tracking_uri), search_dirs, freeze_gc=True)
    if warm:
        try:
            rows = reader.overview()
            names = [r["name"] for r in rows]
            if rows:
                reader.sweep(experiment if experiment in names else
                             max(rows, key=lambda r: r["last_start"])["name"])
        except DataError as err:  # the page will say it, and check again on every tick
            log.warning("%s", err)
    app = Dash(__name__, title="mvit-lab sweeps", update_title=None)
    app.index_string = layout.INDEX
    app.layout = functools.partial(layout.page, reader.uri, refresh_s, VIEWS)
    details_cache: dict[tuple[str, str], Any] = {}

    def current(state: dict | None) -> Sweep:
        if not state or not state.get("experiment"):
            raise PreventUpdate
        return reader.sweep(state["experiment"], state.get("sweep"))

    # -- the store: experiments, sweep choice, fingerprint ---------------------------------
    def refresh_failed(message: str) -> tuple:
        now = dt.datetime.now().strftime("%H:%M:%S")
        return ([], [], None, [], None, None, message, f"checked {now}", "", None)

    @app.callback(
        Output("experiments", "children"), Output("experiment", "options"),
        Output("experiment", "value"), Output("sweep", "options"), Output("sweep", "value"),
        Output("state", "data"), Output("message", "children"), Output("live", "children"),
        Output("sweep-meta", "children"), Output("counts-key", "data"),
        Input("tick", "n_intervals"), Input("experiment", "value"), Input("sweep", "value"),
        State("state", "data"), State("counts-key", "data"),
        # no tick while a read is in flight: the browser drops a callback's answer when the
        # callback is triggered again before it, so reads slower than the interval (a loaded
        # machine, a remote server) would never show
        running=[(Output("tick", "disabled"), True, False)])
    @_guard(refresh_failed)
    def refresh(_: Any, chosen: str | None, sweep_id: str | None, state: dict | None,
                counts_key: str | None) -> tuple:
        rows = reader.overview()
        now = dt.datetime.now().strftime("%H:%M:%S")
        if not rows:
            return refresh_failed(f"the MLflow store {reader.uri} has no runs yet. Start a "
                                  "sweep (mvit-lab sweep experiments/quickstart.yaml); this "
                                  "page updates by itself when its first trial starts.")
        names = [r["name"] for r in rows]
        message = ""
        if chosen not in names:
            chosen = None
            if experiment is not None and experiment not in names:
                message = (f"experiment {experiment!r} has no runs in {reader.uri} yet "
                           f"(experiments with runs: {', '.join(names)}); waiting for it")
            else:
                chosen = experiment or max(rows, key=lambda r: r["last_start"])["name"]
        if ctx.triggered_id == "experiment":
            sweep_id = None  # a new experiment opens on its newest sweep
        # the experiments table and picker are redrawn only when a count changed
        key = json.dumps([[r["name"], r["sweeps"], r["trials"], r["counts"]] for r in rows])
        counts, options = no_update, no_update
        if key != counts_key:
            counts = layout.table(counts_table(rows), id="experiment-counts")
            options = [dict(label=f"{r['name']} ({r['trials']} trials)", value=r["name"])
                       for r in rows]
        if chosen is None:
            return (counts, options, None, [], None, None, message, f"checked {now}", "", key)
        sweep = reader.sweep(chosen, sweep_id)
        sweep_options = [dict(label=f"{s['name']} ({s['run_id'][:8]})", value=s["run_id"])
                         for s in sweep.sweeps]
        new_state = dict(experiment=chosen, sweep=sweep.parent_run_id,
                         fingerprint=sweep.fingerprint)
        live = f"{live_status(sweep, rows)}; refreshes every {refresh_s:g} s; checked {now}"
        meta = (f"{sweep.mode or 'unknown'} search; trials: {sweep.describe_counts()}; "
                "objectives: " + ", ".join(f"{o.name} ({o.sense})" for o in sweep.objectives)
                + f"; base architecture from {sweep.base_source}")
        if new_state == state and ctx.triggered_id == "tick":
            # nothing changed: leave the figures alone (no redraw, zoom and hover kept)
            return (counts, options, no_update, no_update, no_update, no_update, message,
                    live, no_update, key)
        return (counts, options, chosen, sweep_options, sweep.parent_run_id, new_state,
                message, live, meta, key)

    # -- Pareto views -------------------------------------------------------------------------
    def add_front(i: int) -> None:
        def failed(message: str) -> tuple:
            return (_empty_figure(), message, no_update, no_update, no_update, no_update,
                    no_update, no_update)

        @app.callback(
            Output(f"front-{i}", "figure"), Output(f"front-message-{i}", "children"),
            Output(f"x-{i}", "options"), Output(f"y-{i}", "options"),
            Output(f"color-{i}", "options"), Output(f"x-{i}", "value"),
            Output(f"y-{i}", "value"), Output(f"color-{i}", "value"),
            Input("state", "data"), Input(f"x-{i}", "value"), Input(f"y-{i}", "value"),
            Input(f"color-{i}", "value"), Input("highlight", "data"))
        @_guard(failed)
        def front(state: dict | None, x: str | None, y: str | None,
                  color: str | None, highlight: list | None = None) -> tuple:
            if not state:
                return (_empty_figure(), "", [], [], [], None, None, None)
            sweep = current(state)
            metrics = sweep.metrics()
            views = default_views(sweep, VIEWS)
            dx, dy, dc = views[min(i, len(views) - 1)]
            if x not in metrics or y not in metrics:  # a first load, or another sweep
                x, y, color = dx, dy, dc
            color = color if color in metrics else None
            options = [dict(label=m, value=m) for m in metrics]
            info = front_info(sweep, x, y, color)
            notes = []
            if info["missing"]:
                notes.append(f"{info['missing']} finished trial(s) without {x} or {y} not "
                             "shown")
            if not info["base_known"]:
                notes.append(f"architecture differences unavailable: {info['base_source']}")
            fig = _render_front(info)
            explain.highlight_front(fig, info, highlight or [])
            # the same view of the same sweep keeps its zoom when new trials arrive
            fig.update_layout(uirevision=f"{sweep.parent_run_id}|{x}|{y}")
            return fig, "; ".join(notes), options, options, options, x, y, color

    for i in range(VIEWS):
        add_front(i)

    # -- the run panel --------------------------------------------------------------------------
    @app.callback(Output("selected-run", "data"),
                  *(Input(f"front-{i}", "clickData") for i in range(VIEWS)),
                  prevent_initial_call=True)
    def select(*clicks: Any) -> Any:
        data = clicks[int(str(ctx.triggered_id).rsplit("-", 1)[1])]
        points = (data or {}).get("points") or []
        if not points or not points[0].get("customdata"):
            raise PreventUpdate
        return points[0]["customdata"]

    def run_failed(message: str) -> Any:
        return [layout.html.P(message, className="message")]

    @app.callback(Output("run", "children"), Input("selected-run", "data"),
                  Input("state", "data"), prevent_initial_call=True)
    @_guard(run_failed)
    def show_run(run_id: str | None, state: dict | None) -> Any:
        if not run_id or not state:
            raise PreventUpdate
        sweep = current(state)
        key = (run_id, sweep.fingerprint)
        if key not in details_cache:
            if len(details_cache) > 64:
                details_cache.clear()
            details = run_details(sweep, run_id)
            curves = _render_curves(details["curves"])
            cost = _render_cost(details["cost"]) if details["cost"] else None
            details_cache[key] = layout.run_panel(details, curves, cost)
        return details_cache[key]

    # -- parallel coordinates and tables ------------------------------------------------------
    @app.callback(Output("parallel", "figure"), Output("parallel-message", "children"),
                  Input("state", "data"), Input("highlight", "data"))
    @_guard(lambda message: (_empty_figure(), message))
    def parallel(state: dict | None, highlight: list | None = None) -> tuple:
        if not state:
            return _empty_figure(), ""
        sweep = current(state)
        info = parallel_info(sweep)
        fig = _render_parallel(info)
        explain.highlight_parallel(fig, info, highlight or [])
        fig.update_layout(uirevision=sweep.parent_run_id)  # brushed ranges survive a refresh
        return fig, ""

    @app.callback(Output("budget", "figure"), Input("state", "data"))
    @_guard(lambda message: _empty_figure(message))
    def budget(state: dict | None) -> Any:
        from mvit_lab.dashboards.budget import budget_info, render_budget

        if not state:
            return _empty_figure()
        sweep = current(state)
        return render_budget(budget_info(sweep.records, sweep.objectives))

    @app.callback(Output("tables", "children"), Input("state", "data"))
    @_guard(lambda message: [layout.html.P(message, className="message")])
    def tables(state: dict | None) -> list:
        if not state:
            return []
        sweep = current(state)
        check_finished(sweep)
        out = [layout.table(format_front(sweep), id="front-table")]
        ladder = ladder_view(sweep)
        if ladder:
            out.append(layout.table(format_ladder_view(ladder, sweep.objectives[0].name),
                                    id="ladder-table"))
        ablations = ablation_views(sweep)
        if ablations:
            note = ABLATION_NOTE + (f" {UNBALANCED_NOTE}" if sweep.mode != "grid" else "")
            out.append(layout.html.P(note, className="note"))
        out += [layout.table(format_ablation_view(view), id=f"ablation-{view['factor']}")
                for view in ablations]
        return out

    # -- ladders of the same steps, across experiments (scratch vs MAE) -------------------------
    @app.callback(Output("ladders", "children"), Input("counts-key", "data"))
    @_guard(lambda message: [layout.html.P(message, className="message")])
    def ladders(_: Any) -> list:
        sweeps = []
        for row in reader.overview():
            try:
                sweeps.append(reader.sweep(row["name"]))
            except DataError:  # the experiments table says what is wrong with it
                continue
        groups = ladder_groups(sweeps)
        if not groups:
            return [layout.html.P(
                "No two ladder sweeps of the same steps and base architecture in this store "
                "yet. Run, e.g., experiments/hiera_ladder_digits.yaml and "
                "experiments/hiera_ladder_digits_mae.yaml.", className="note")]
        out = []
        for i, group in enumerate(groups):
            info = ladder_comparison(group)
            if info["message"]:
                out.append(layout.html.P(info["message"], className="message"))
                continue
            out += [dcc.Graph(id=f"ladders-{i}", figure=comparison_figure(info),
                              config=dict(displaylogo=False), style={"height": "420px"}),
                    layout.table(comparison_table(info), id=f"ladders-table-{i}")]
        return out

    # -- issue 18: recipe, trials, curves, importance, sweeps side by side -----------------------
    explain.register(app, reader, current, _guard, _empty_figure)
    # -- design spaces: populations compared by their error EDFs ----------------------------
    design_cache: dict[str, list] = {}

    @app.callback(Output("design-spaces", "children"), Input("state", "data"))
    @_guard(lambda message: [layout.html.P(message, className="message")])
    def design_spaces(state: dict | None) -> list:
        from mvit_lab.dashboards.design import design_view
        from mvit_lab.plots.design_spaces import plot_design_spaces

        if not state:
            return []
        sweep = current(state)
        if sweep.fingerprint not in design_cache:  # the bootstraps take a second or two
            view = design_view(sweep)
            figs = plot_design_spaces(view["analysis"])
            graphs = [dcc.Graph(id=f"design-{name.replace('.', '-')}", figure=fig,
                                config=dict(displaylogo=False), style={"height": "440px"})
                      for name, fig in figs.items()]
            design_cache.clear()
            design_cache[sweep.fingerprint] = [
                layout.html.Div(graphs[:2], className="columns"),
                layout.table(view["table"], id="design-table"),
                layout.html.Div(graphs[2:], className="columns")]
        return design_cache[sweep.fingerprint]

    return app
