"""The live dashboard's views that explain a sweep (issue 18): the recipe banner, the trials
table whose selection is highlighted everywhere, curves of the selected trials and the sweep's
progress, knob importance, and sweeps side by side.

Layout pieces (``recipe_banner``, ``tabs``, ``stores``) go into the page; ``register`` wires
their callbacks into the app. The selection lives in the ``highlight`` store (run ids): the
Pareto views, the parallel coordinates, the curves and the overlay all read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from dash import Input, Output, State, dash_table, dcc, html, no_update
from dash.dash_table.Format import Format, Scheme, Trim
from dash.exceptions import PreventUpdate

from mvit_lab.dashboards.data import DataError, Sweep

__all__ = ["highlight_front", "highlight_parallel", "recipe_banner", "register", "stores",
           "tabs"]

HIGHLIGHT = "#d62728"


# -- layout ---------------------------------------------------------------------------------------
def stores() -> list[Any]:
    # explain-state: the sweep shown and the open tab, set in the browser only while one of
    # these tabs is open, so the other tabs cost the server no request at all
    return [dcc.Store(id="highlight", data=[]), dcc.Store(id="explain-state")]

TABS = ("trials", "importance", "overlay")
_ROUTE = ("function(state, tab) {\n    if (!state || !" + json.dumps(list(TABS))
          + ".includes(tab)) { return window.dash_clientside.no_update; }\n"
          "    return {state: state, tab: tab};\n}")


def recipe_banner() -> html.Div:
    return html.Div(id="recipe", className="recipe")


def _picker(id: str, label: str, multi: bool = False, clearable: bool = False) -> html.Div:
    return html.Div([html.Label(label, htmlFor=id),
                     dcc.Dropdown(id=id, multi=multi, clearable=clearable,
                                  style={"minWidth": "16em"})])


def tabs() -> list[Any]:
    trials = html.Div([
        html.P("Sort by a column's header; filter by typing above a column (finished, "
               ">= 90, contains max); tick rows to highlight those trials in the Pareto "
               "views, the parallel coordinates, the curves and the overlay.",
               className="note"),
        html.Div(id="trials-message", className="message"),
        dash_table.DataTable(
            id="trials-table", page_size=25, sort_action="native", sort_mode="multi",
            filter_action="custom", filter_query="", row_selectable="multi",
            selected_rows=[], style_table={"overflowX": "auto"},
            style_cell={"fontFamily": "system-ui, sans-serif", "fontSize": "0.85em",
                        "maxWidth": "18em", "overflow": "hidden", "textOverflow": "ellipsis"},
            style_header={"fontWeight": "bold"}),
        html.P([html.Span(id="trials-count"), html.Span(id="trials-selected")],
               className="meta"),
        html.Div([_picker("curve-metric", "curve metric")], className="controls"),
        dcc.Graph(id="curves", config=dict(displaylogo=False), style={"height": "380px"}),
        dcc.Graph(id="progress", config=dict(displaylogo=False), style={"height": "340px"}),
    ])
    importance = html.Div([
        html.Div(id="importance-message", className="message"),
        html.Div(id="importance-table"),
        dcc.Graph(id="importance", config=dict(displaylogo=False)),
    ])
    overlay = html.Div([
        html.Div([_picker("overlay-sweeps", "sweeps", multi=True),
                  _picker("overlay-y", "y axis"), _picker("overlay-x", "x axis")],
                 className="controls"),
        html.Div(id="overlay-message", className="message"),
        dcc.Graph(id="overlay", config=dict(displaylogo=False), style={"height": "520px"}),
        html.Div(id="overlay-table"),
    ])
    return [dcc.Tab(label="Trials", value="trials", children=trials),
            dcc.Tab(label="Knob importance", value="importance", children=importance),
            dcc.Tab(label="Sweeps side by side", value="overlay", children=overlay)]


# -- highlighting in the existing views ------------------------------------------------------
def highlight_front(fig: Any, info: dict[str, Any], run_ids: Sequence[str]) -> None:
    """Ring the selected trials of a Pareto view (``front_info``) in the figure."""
    chosen = set(run_ids or ())
    points = [p for p in info["points"] if p["run_id"] in chosen]
    if not points:
        return
    fig.add_scatter(x=[p["x"] for p in points], y=[p["y"] for p in points], mode="markers",
                    name=f"selected ({len(points)})", hoverinfo="skip",
                    customdata=[p["run_id"] for p in points],
                    marker=dict(size=22, color="rgba(0,0,0,0)",
                                line=dict(width=2.5, color=HIGHLIGHT)))


def highlight_parallel(fig: Any, info: dict[str, Any], run_ids: Sequence[str]) -> None:
    """Colour the selected trials' lines red and the others grey (no selection: unchanged)."""
    chosen = set(run_ids or ())
    if not chosen & set(info["run_ids"]):
        return
    fig.update_traces(line=dict(color=[1 if r in chosen else 0 for r in info["run_ids"]],
                                colorscale=[[0, "#c8c8c8"], [1, HIGHLIGHT]], cmin=0, cmax=1,
                                showscale=False))
    fig.update_layout(title=dict(text=fig.layout.title.text + " · selected trials in red"))


# -- callbacks ------------------------------------------------------------------------------------
def register(app: Any, reader: Any, current: Callable[[dict | None], Sweep],
             guard: Callable, empty_figure: Callable[[str], Any]) -> None:
    """Wire the views into ``app`` (``reader``: the app's StoreReader; ``current(state)``:
    the sweep shown; ``guard``, ``empty_figure``: the app's error handling)."""
    from mvit_lab.dashboards.curves import (
        _render_curves_overlay,
        _render_progress,
        curve_metrics,
        curves_info,
        progress_info,
    )
    from mvit_lab.dashboards.importance import (
        _render_importance,
        format_importance,
        importance_info,
    )
    from mvit_lab.dashboards.layout import table
    from mvit_lab.dashboards.meta import parent_params, run_times, search_space
    from mvit_lab.dashboards.overlay import _render_overlay, format_overlay, overlay_info
    from mvit_lab.dashboards.recipe_view import format_recipe, recipe_info
    from mvit_lab.dashboards.trials import filter_trials, trial_table
    from mvit_lab.tracking import metric_history

    cache: dict[Any, Any] = {}

    def cached(key: Any, build: Callable[[], Any]) -> Any:
        if key not in cache:
            if len(cache) > 128:
                cache.clear()
            cache[key] = build()
        return cache[key]

    def visible(route: dict | None, wanted: str) -> dict:
        """The sweep's state when the tab ``wanted`` is open (``explain-state``); otherwise
        no update: each view reads the store, and a page that refreshes every few seconds
        should not pay for tabs nobody looks at."""
        if not route or route.get("tab") != wanted or not route.get("state"):
            raise PreventUpdate
        return route["state"]

    app.clientside_callback(_ROUTE, Output("explain-state", "data"), Input("state", "data"),
                            Input("tabs", "value"))

    def message(text: str) -> list[Any]:
        return [html.P(text, className="message")]

    @app.callback(Output("recipe", "children"), Input("state", "data"))
    @guard(message)
    def recipe(state: dict | None) -> Any:
        if not state:
            return []
        sweep = current(state)
        params = parent_params(reader.runs_of(sweep.experiment, [sweep.parent_run_id]),
                               sweep.parent_run_id)
        info = recipe_info(params, sweep.knobs())
        lines = [html.Div(line) for line in format_recipe(info)]
        if info["flag"]:
            return [html.Div(info["flag"], id="recipe-flag", className="flag"), *lines]
        return [html.Div("published recipe, unchanged", id="recipe-ok", className="ok"),
                *lines]

    # -- the trials table: custom filter, selection -> highlight -----------------------------
    @app.callback(Output("trials-table", "data"), Output("trials-table", "columns"),
                  Output("trials-table", "selected_rows"), Output("trials-message", "children"),
                  Output("trials-count", "children"),
                  Input("explain-state", "data"), Input("trials-table", "filter_query"),
                  State("highlight", "data"), prevent_initial_call=True)
    @guard(lambda text: (no_update, no_update, no_update, text, ""))
    def trials(route: dict | None, query: str | None, highlight: list | None) -> tuple:
        state = visible(route, "trials")
        sweep = current(state)
        runs = reader.runs(sweep.experiment)
        t = cached(("trials", sweep.parent_run_id, sweep.fingerprint), lambda: trial_table(
            sweep, run_times(runs, [r["run_id"] for r in sweep.records])))
        ids = [c["id"] for c in t["columns"]]
        try:
            rows = filter_trials(t["rows"], query or "", ids)
        except ValueError as err:
            raise DataError(str(err)) from err
        chosen = set(highlight or ())
        selected = [i for i, r in enumerate(rows) if r["id"] in chosen]
        number = Format(precision=4, scheme=Scheme.decimal_or_exponent, trim=Trim.yes)
        columns = [dict(id=c["id"], name=c["name"], type=c["type"],
                        **(dict(format=number) if c["type"] == "numeric" else {}))
                   for c in t["columns"]]
        return rows, columns, selected, "", f"{len(rows)} of {len(t['rows'])} trials shown"

    @app.callback(Output("highlight", "data"), Input("trials-table", "selected_row_ids"),
                  prevent_initial_call=True)
    def select(ids: list | None) -> list:
        return sorted(ids or [])

    @app.callback(Output("trials-selected", "children"), Input("highlight", "data"),
                  prevent_initial_call=True)
    def selected_count(ids: list | None) -> str:
        return f"; {len(ids or [])} selected" if ids else ""

    # -- curves and progress --------------------------------------------------------------------
    @app.callback(Output("curves", "figure"), Output("curve-metric", "options"),
                  Output("curve-metric", "value"),
                  Input("highlight", "data"), Input("curve-metric", "value"),
                  Input("explain-state", "data"), prevent_initial_call=True)
    @guard(lambda text: (empty_figure(text), no_update, no_update))
    def curves(highlight: list | None, metric: str | None, route: dict | None) -> tuple:
        state = visible(route, "trials")
        sweep = current(state)
        ids = [r["run_id"] for r in sweep.records if r["run_id"] in set(highlight or ())]
        metrics = curve_metrics(sweep, ids) or ["val_top1"]
        metric = metric if metric in metrics else metrics[0]
        info = cached(("curves", sweep.fingerprint, tuple(ids), metric), lambda: curves_info(
            sweep, ids, metric, lambda run_id, m: metric_history(sweep.tracking_uri, run_id, m)))
        return (_render_curves_overlay(info), [dict(label=m, value=m) for m in metrics],
                metric)

    @app.callback(Output("progress", "figure"), Input("explain-state", "data"),
                  prevent_initial_call=True)
    @guard(empty_figure)
    def progress(route: dict | None) -> Any:
        state = visible(route, "trials")
        sweep = current(state)
        runs = reader.runs(sweep.experiment)
        info = progress_info(sweep, run_times(runs, [r["run_id"] for r in sweep.records]))
        return _render_progress(info)

    # -- importance -------------------------------------------------------------------------------
    @app.callback(Output("importance", "figure"), Output("importance-table", "children"),
                  Output("importance-message", "children"), Input("explain-state", "data"),
                  prevent_initial_call=True)
    @guard(lambda text: (empty_figure(""), [], text))
    def importance(route: dict | None) -> tuple:
        state = visible(route, "importance")  # a forest per objective: only when looked at
        sweep = current(state)

        def build() -> dict[str, Any]:
            params = parent_params(reader.runs_of(sweep.experiment, [sweep.parent_run_id]),
                                   sweep.parent_run_id)
            return importance_info(sweep, search_space(sweep, params))

        info = cached(("importance", sweep.parent_run_id, sweep.fingerprint), build)
        if info["message"]:
            return empty_figure(""), [], info["message"]
        return (_render_importance(info), table(format_importance(info), id="importance-rows"),
                "")

    # -- sweeps side by side ----------------------------------------------------------------------
    @app.callback(Output("overlay-sweeps", "options"), Output("overlay-sweeps", "value"),
                  Input("explain-state", "data"), State("overlay-sweeps", "value"),
                  prevent_initial_call=True)
    @guard(lambda text: ([], []))
    def overlay_choices(route: dict | None, chosen: list | None) -> tuple:
        state = visible(route, "overlay")
        options, newest = [], []  # newest: each experiment's newest sweep, if it finished any
        for row in reader.overview():
            try:
                sweep = reader.sweep(row["name"])
            except DataError:
                continue
            options += [dict(label=f"{row['name']} / {s['name']} ({s['run_id'][:8]})",
                             value=f"{row['name']}|{s['run_id']}") for s in sweep.sweeps]
            if sweep.finished:
                newest.append(f"{row['name']}|{sweep.parent_run_id}")
        values = [o["value"] for o in options]
        kept = [v for v in chosen or () if v in values]
        if kept:
            return options, kept
        mine = f"{state['experiment']}|{state['sweep']}"
        # this sweep beside the newest sweep of the next experiment with finished trials
        default = [mine, *[v for v in newest if v != mine][:1]] if mine in values else []
        return options, default

    @app.callback(Output("overlay", "figure"), Output("overlay-table", "children"),
                  Output("overlay-message", "children"), Output("overlay-x", "options"),
                  Output("overlay-y", "options"), Output("overlay-x", "value"),
                  Output("overlay-y", "value"),
                  Input("overlay-sweeps", "value"), Input("overlay-x", "value"),
                  Input("overlay-y", "value"), Input("highlight", "data"),
                  Input("explain-state", "data"), prevent_initial_call=True)
    @guard(lambda text: (empty_figure(""), [], text, no_update, no_update, no_update,
                         no_update))
    def overlay(chosen: list | None, x: str | None, y: str | None, highlight: list | None,
                route: dict | None) -> tuple:
        visible(route, "overlay")
        picked = [v.split("|", 1) for v in chosen or ()]
        sweeps = [reader.sweep(exp, run_id) for exp, run_id in picked]
        if len(sweeps) < 2:
            return (empty_figure(""), [], "pick two or more sweeps to set side by side", [], [],
                    None, None)
        common = [m for m in sweeps[0].metrics() if all(m in s.metrics() for s in sweeps[1:])]
        if not common:
            raise DataError("the sweeps picked share no metric")
        objectives = [o.name for o in sweeps[0].objectives if o.name in common]
        y = y if y in common else (objectives or common)[0]
        x = x if x in common and x != y else next((m for m in objectives + common if m != y), y)
        info = overlay_info(sweeps, x, y)
        options = [dict(label=m, value=m) for m in common]
        fig = _render_overlay(info, highlight or ())
        fig.update_layout(uirevision="|".join(v for v in chosen or ()) + f"|{x}|{y}")
        return (fig, table(format_overlay(info), id="overlay-rows"), "", options, options, x, y)
